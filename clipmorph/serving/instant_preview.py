"""The instant preview of a painting's style, on both sides of the services.

The model worker holds the arbitrary-style network (``clipmorph.inference.arbitrary``),
compiled in the background when the worker starts and fetched with pip on first use if the
cache lacks it. The API side asks it for a preview when a style job is created: a preview
that cannot be made (no network offline, a broken upload) never stops the job itself.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from clipmorph.errors import BadInput, ClipMorphError
from clipmorph.serving.schema import ItemError, Picture

log = logging.getLogger(__name__)

PREVIEW_SIDE = 768  # the network paints at 384 px; a larger preview would only be softer
INSTANT_FILE = "instant.jpg"


class InstantPainter:
    """Model-worker side: the arbitrary-style network, built once, on first need or at start."""

    def __init__(self, cache: Path | None = None) -> None:
        self.cache = cache
        self._stylizer = None
        self._error: str | None = None
        self._lock = threading.Lock()

    def warm_up_in_background(self) -> None:
        """Compile at worker start when the models are already cached (no download at start)."""
        from clipmorph.inference import arbitrary

        if arbitrary.is_fetched(self.cache):  # not a daemon: exiting mid-compile aborts the process
            threading.Thread(target=self._warm_up, name="instant-preview-warm-up").start()

    def _warm_up(self) -> None:
        with contextlib.suppress(BadInput):  # already logged; a job's preview reports it
            self._get()

    def _get(self):
        with self._lock:
            if self._stylizer is None and self._error is None:
                from clipmorph.inference import arbitrary

                try:
                    arbitrary.fetch(self.cache)
                    self._stylizer = arbitrary.ArbitraryStylizer(self.cache)
                except (ClipMorphError, OSError, RuntimeError) as error:
                    self._error = f"the instant preview is unavailable here: {error}"
                    log.warning(self._error)
            if self._stylizer is None:
                raise BadInput(self._error or "the instant preview is unavailable", "unavailable")
            return self._stylizer

    def paint(self, photo: Picture, painting: Picture) -> np.ndarray | ItemError:
        """The photo (RGB uint8) in the painting's manner, or the reason it could not be made.
        An array, not a ``Picture``: BentoML pickles arrays back but turns models into dicts."""
        try:
            stylizer = self._get()
            return stylizer.stylize(photo.array(), stylizer.painting_style(painting.array()))
        except ClipMorphError as error:
            return ItemError.of(error)


def preview_photo(folders: list[Path]) -> Path | None:
    """The first photo of the training folders: what a preview shows when the user gave none."""
    from clipmorph.styles.assets import PHOTO_SUFFIXES

    for folder in folders:
        found = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file())
        if found:
            return found[0]
    return None


def make_instant_preview(
    paint: Callable[[Picture, Picture], np.ndarray | ItemError], photo: np.ndarray, painting: np.ndarray
) -> tuple[bytes | None, dict]:
    """API side: ask the model worker for the preview; returns the JPEG (or None) and what to report."""
    from PIL import Image

    from clipmorph.inference import media

    started = time.perf_counter()
    image = Image.fromarray(photo)
    image.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), Image.LANCZOS)  # never larger than the upload
    try:
        answer = ItemError.received(paint(Picture.of(np.asarray(image)), Picture.of(painting)))
    except Exception as error:  # the model worker is busy or down: the job goes on without it
        log.warning("instant preview failed: %s", error)
        return None, {"instant_preview_error": "the instant preview could not be made"}
    if isinstance(answer, ItemError):
        return None, {"instant_preview_error": answer.message}
    if not isinstance(answer, np.ndarray):
        log.warning("instant preview: unexpected answer %r", type(answer))
        return None, {"instant_preview_error": "the instant preview could not be made"}
    encoded = media.encode_image(np.asarray(answer, dtype=np.uint8), None, "JPEG")
    return encoded, {"instant_preview_seconds": round(time.perf_counter() - started, 2)}
