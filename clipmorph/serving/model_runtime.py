"""The model service's state: every stored style on one device, reloaded when the store changes.

Importing this module loads no torch: the API workers import ``service.py`` too, and only the
model workers, which build a ``ModelRuntime``, pay for torch and the networks.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

import numpy as np

from clipmorph.errors import ClipMorphError
from clipmorph.inference.options import check_frame, dtype_name
from clipmorph.serving import metrics
from clipmorph.serving.instant_preview import InstantPainter
from clipmorph.serving.schema import FrameItem, ItemError, Picture
from clipmorph.serving.settings import ServiceSettings
from clipmorph.styles import index

if TYPE_CHECKING:
    from clipmorph.inference.engine import Engine
    from clipmorph.styles.library import StyleLibrary

LIVE = "live"  # FrameItem.kind of live camera frames
IMAGE = "image"  # FrameItem.kind of uploaded images (the third kind: "video")
LOG = logging.getLogger(__name__)


def live_backend(settings: ServiceSettings, engine: Engine) -> str:
    """What runs live frames: CLIPMORPH_LIVE_BACKEND, where ``auto`` is OpenVINO on a CPU that
    has it (a camera's frames all have one size: the export is paid once per machine and kept
    on disk; measured faster than eager PyTorch by 2x here, bench/RESULTS.md), else the
    service's own backend."""
    if settings.live_backend != "auto":
        return settings.live_backend
    from clipmorph.inference.engine import pick_backend

    return pick_backend("auto", engine.device)


class ModelRuntime:
    """The engine for the store as it is now: styles created or deleted while the service runs
    are picked up at the next batch (one stat call per batch when nothing changed)."""

    def __init__(self, settings: ServiceSettings, warm_up: bool = True) -> None:
        self.settings = settings
        self._reload_lock = threading.Lock()
        self.generation = -1
        self.engine: Engine
        self.live_engine: Engine | None = None  # built at the first live frame (see live_backend)
        self.current()
        self.instant = InstantPainter()
        if warm_up:
            self.engine.warm_up()  # before the service says ready: the first upload does not wait
            self.instant.warm_up_in_background()  # the instant-preview network, by the first style job
        metrics.sample_resources("model")

    def current(self) -> Engine:
        generation = index.styles_generation()
        if generation == self.generation:
            return self.engine
        with self._reload_lock:
            if generation != self.generation:
                self._load(generation)
        return self.engine

    def _load(self, generation: int) -> None:
        from clipmorph.styles import store

        started = time.perf_counter()
        self.engine = self._build(store.load_library(), self.settings.backend)
        self.live_engine = None  # rebuilt from the new library at the next live frame
        self.load_seconds = time.perf_counter() - started
        self.known = set(self.engine.style_ids)
        self.generation = generation
        board = metrics.get()
        board.model_load_seconds.set(self.load_seconds)
        board.styles_loaded.set(len(self.known))
        board.model_info.labels(str(self.engine.device), dtype_name(self.engine.dtype)).set(1)

    def _build(self, library: StyleLibrary, backend: str) -> Engine:
        from clipmorph.inference.engine import AUTO, Engine, pick_backend, pick_device  # torch: model workers only

        s = self.settings
        if backend == AUTO:  # --compile asks for torch.compile by name
            backend = "torch" if s.compile else pick_backend(AUTO, pick_device(s.device))
        return Engine(library, device=s.device, batch_size=s.batch_size, compile=s.compile, backend=backend)

    def live(self) -> Engine:
        """The engine for live camera frames: ``live_backend`` of the settings, built once per
        library (a stream has one frame size, so a per-shape export or compile pays at once).
        If it cannot be built (OpenVINO asked for on a GPU, a missing package), live frames run
        on the service's engine, and the reason is logged once."""
        engine = self.current()
        backend = live_backend(self.settings, engine)
        if backend == engine.backend:
            return engine
        with self._reload_lock:
            if self.live_engine is None:
                try:  # the library the service engine holds: the store is not read twice
                    self.live_engine = self._build(engine.library, backend)
                except Exception as error:
                    LOG.warning("live frames run on the service's %s engine: %s", engine.backend, error)
                    self.live_engine = engine
            return self.live_engine

    def stylize(self, items: list[FrameItem]) -> list[np.ndarray | ItemError]:
        """The batchable call: frames of any styles, sizes and requests in one batch. Each item
        is checked on its own first, and fails on its own: an item BentoML batched with others
        never takes their requests down with it. Live camera frames run on the live engine."""
        board = metrics.get()
        started = time.perf_counter()
        results: list[np.ndarray | ItemError | None] = [None] * len(items)
        for kind in sorted({item.kind for item in items}):
            group = [position for position, item in enumerate(items) if item.kind == kind]
            engine = self.live() if kind == LIVE else self.current()
            # Uploads come in every size: the any-size model; a video or a camera has one size.
            checked = self._checked_run(engine, [items[p] for p in group], any_size=kind == IMAGE)
            for position, result in zip(group, checked, strict=True):
                results[position] = result
        board.stage_seconds.labels("inference").observe(time.perf_counter() - started)
        board.batch_size.observe(len(items))
        for item in items:
            board.frames.labels(metrics.style_label(item.style, self.known), item.kind).inc()
        metrics.sample_resources("model")
        return results

    def _checked_run(self, engine: Engine, items: list[FrameItem], any_size: bool) -> list[np.ndarray | ItemError]:
        results: list[np.ndarray | ItemError | None] = [None] * len(items)
        good, frames, options = [], [], []
        for position, item in enumerate(items):
            try:
                frame, option = item.frame(), item.options()
                check_frame(frame)
                engine.resolve(option.style)
            except ClipMorphError as error:
                results[position] = ItemError.of(error)
                continue
            good.append(position)
            frames.append(frame)
            options.append(option)
        for position, result in zip(good, self._run(engine, frames, options, any_size), strict=True):
            results[position] = result
        return results

    @staticmethod
    def _run(engine: Engine, frames: list[np.ndarray], options: list, any_size: bool) -> list[np.ndarray | ItemError]:
        """One forward pass for the checked items; if it fails anyway, each item alone."""
        if not frames:
            return []
        try:
            return list(engine.stylize_frames(frames, options, any_size))
        except Exception:
            pass
        results: list[np.ndarray | ItemError] = []
        for frame, option in zip(frames, options, strict=True):
            try:
                [out] = engine.stylize_frames([frame], [option], any_size)
                results.append(out)
            except ClipMorphError as error:
                results.append(ItemError.of(error))
            except Exception as error:  # this item's own failure: a 500 for its request alone
                results.append(ItemError(f"stylizing failed: {type(error).__name__}", "internal"))
        return results

    def instant_preview(self, photo: Picture, painting: Picture) -> np.ndarray | ItemError:
        """The photo in the manner of any painting, from the arbitrary-style network (no training)."""
        started = time.perf_counter()
        answer = self.instant.paint(photo, painting)
        metrics.get().stage_seconds.labels("instant_preview").observe(time.perf_counter() - started)
        return answer

    def info(self) -> dict:
        engine = self.current()
        return {
            "device": str(engine.device),
            "dtype": dtype_name(engine.dtype),
            "backend": engine.backend,
            "live_backend": self.live_engine.backend if self.live_engine else live_backend(self.settings, engine),
            "styles": engine.style_ids,
            "load_seconds": round(self.load_seconds, 3),
        }
