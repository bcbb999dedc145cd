"""File in, file out: decode -> engine -> encode, for images and streamed video.

For video three stages overlap: a decoder thread, inference on the calling thread, and an
encoder thread, joined by small bounded queues (memory stays flat for any video length).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import av
from tqdm import tqdm

from clipmorph.errors import BadInput, MediaError
from clipmorph.fsutil import atomic_path
from clipmorph.inference import media
from clipmorph.inference.options import FrameStylizer, StylizeOptions

if TYPE_CHECKING:  # the API workers run this module without torch
    from clipmorph.inference.engine import Engine

_DONE = object()
VIDEO_GROUP = 4  # frames handed to the engine per call (it splits them into its own batch size)


@dataclass(frozen=True)
class Report:
    kind: str
    output: Path
    frames: int
    seconds: float
    width: int
    height: int
    encoder: str | None = None  # video only: the encoder that wrote it
    # video only: seconds each stage was busy (decode, stylize, encode). They overlap on their own
    # threads, so the slowest sets the pace when cores are free; on a busy CPU they add up.
    stage_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def stylize_file(
    engine: Engine,
    source: Path,
    target: Path,
    options: StylizeOptions,
    progress: bool = True,
    encoding: media.VideoEncoding = media.DEFAULT_ENCODING,
) -> Report:
    """Stylize an image or a video (told apart by content) into ``target``'s format."""
    source, target = Path(source), Path(target)
    engine.resolve(options.style)  # fail on an unknown style before any decoding
    kind = media.detect_kind(source)
    wanted = media.output_kind(target)
    if kind != wanted:
        raise BadInput(
            f"{source.name} is {'an' if kind == 'image' else 'a'} {kind} but {target.name} names a {wanted} format"
        )
    if target.exists() and target.resolve() == source.resolve():
        raise BadInput("the output would overwrite the input: choose another output path")
    if kind == media.IMAGE_KIND:
        return stylize_image_file(engine, source, target, options)
    return stylize_video_file(engine, source, target, options, progress=progress, encoding=encoding)


StageObserver = Callable[[str, float], None]  # (stage, seconds): for metrics


def _no_observer(stage: str, seconds: float) -> None:
    pass


def stylize_images(
    engine: FrameStylizer,
    sources: list[bytes | Path],
    options: StylizeOptions,
    fmt: str,
    max_pixels: int | None = None,
    observe: StageObserver = _no_observer,
    max_total_pixels: int | None = None,
) -> list[tuple[bytes, int, int]]:
    """Decode, stylize (all in one engine call, so they batch) and encode images.

    Returns each encoded image with its output width and height. A bad image fails the call
    with its position in the list. ``max_total_pixels``: every header is read first, and a
    request over that budget is refused before anything is decoded.
    """
    started = time.perf_counter()
    if max_total_pixels is not None:
        media.check_total_pixels(sources, max_total_pixels)
    images = []
    for index, source in enumerate(sources):
        try:
            images.append(media.load_image(source, max_pixels))
        except BadInput as error:
            message = f"image {index + 1}: {error}" if len(sources) > 1 else str(error)
            raise BadInput(message, error.reason) from None
    observe("decode", time.perf_counter() - started)
    frames = engine.stylize_frames([image.rgb for image in images], options, any_size=True)  # sizes vary
    started = time.perf_counter()
    encoded = [
        (media.encode_image(rgb, image.alpha, fmt, image.icc_profile), rgb.shape[1], rgb.shape[0])
        for rgb, image in zip(frames, images, strict=True)
    ]
    observe("encode", time.perf_counter() - started)
    return encoded


def stylize_image_file(engine: FrameStylizer, source: Path, target: Path, options: StylizeOptions) -> Report:
    start = time.perf_counter()
    [(encoded, width, height)] = stylize_images(engine, [source], options, media.image_format_for(target))
    with atomic_path(target) as temporary:
        temporary.write_bytes(encoded)
    return Report(media.IMAGE_KIND, target, 1, time.perf_counter() - start, width, height)


def stylize_video_file(
    engine: FrameStylizer,
    source: Path,
    target: Path,
    options: StylizeOptions,
    progress: bool = True,
    encoding: media.VideoEncoding = media.DEFAULT_ENCODING,
    on_frames: Callable[[int, int], None] | None = None,
    observe: StageObserver = _no_observer,
    limits: media.DecodeLimits | None = None,
) -> Report:
    """Stream a video through the engine; ``on_frames(done, total)`` reports progress and may
    raise to stop the work (the partial output is removed). ``limits`` are checked on every
    decoded frame, whatever the header said."""
    start = time.perf_counter()
    reader = media.VideoReader(source, limits)
    info = reader.info
    done = 0
    busy = {"decode": 0.0, "stylize": 0.0, "encode": 0.0}  # each stage adds its own (one thread each)
    try:
        with atomic_path(target) as temporary:
            writer = media.VideoWriter(temporary, target.suffix, info, source if info.has_audio else None, encoding)

            def encode(item: tuple) -> None:
                started = time.perf_counter()
                writer.write(*item)
                seconds = time.perf_counter() - started
                busy["encode"] += seconds
                observe("encode", seconds)

            group = max(engine.batch_size, VIDEO_GROUP)
            encoder = _Stage("encode", encode, maxsize=2 * group)
            bar = tqdm(total=info.frames or None, unit="frame", desc=source.name, disable=not progress, smoothing=0.1)
            finished = False
            try:
                for batch in _batches(_background(_timed(reader, busy, "decode"), 2 * group), group):
                    started = time.perf_counter()
                    frames = engine.stylize_frames([frame for frame, _ in batch], options)
                    busy["stylize"] += time.perf_counter() - started
                    for out, (_, pts) in zip(frames, batch, strict=True):
                        encoder.put((out, pts))
                    done += len(batch)
                    bar.update(len(batch))
                    if on_frames:
                        on_frames(done, info.frames)
                encoder.finish()
                if done == 0:
                    raise BadInput(f"{source.name}: the video has no decodable frames")
                writer.close()
                finished = True
            except av.FFmpegError as error:
                raise MediaError(f"video encoding failed: {error}") from error
            finally:
                bar.close()
                if not finished:
                    encoder.stop()
                    writer.abort()
    finally:
        reader.close()
    seconds = time.perf_counter() - start
    return Report(media.VIDEO_KIND, target, done, seconds, writer.width, writer.height, writer.encoder, busy)


def _batches(items: Iterator, size: int) -> Iterator[list]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _timed(iterable, busy: dict[str, float], stage: str) -> Iterator:
    """The items of ``iterable``, adding the time spent producing each to ``busy[stage]``."""
    items = iter(iterable)
    while True:
        started = time.perf_counter()
        item = next(items, _DONE)
        busy[stage] += time.perf_counter() - started
        if item is _DONE:
            return
        yield item


def _background(iterable, maxsize: int) -> Iterator:
    """Run an iterator on a thread, handing items over through a bounded queue."""
    handoff: queue.Queue = queue.Queue(maxsize)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in iterable:
                if stop.is_set():
                    return
                handoff.put(item)
            handoff.put(_DONE)
        except BaseException as error:  # re-raised on the consumer side
            handoff.put(error)

    thread = threading.Thread(target=produce, name="clipmorph-decode", daemon=True)
    thread.start()
    try:
        while (item := handoff.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                handoff.get_nowait()
            except queue.Empty:
                thread.join(0.05)


class _Stage:
    """A consumer thread applying ``work`` to queued items; errors surface on the next put/finish."""

    def __init__(self, name: str, work: Callable, maxsize: int) -> None:
        self.work = work
        self.items: queue.Queue = queue.Queue(maxsize)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._loop, name=f"clipmorph-{name}", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while (item := self.items.get()) is not _DONE:
            if self.error is None:
                try:
                    self.work(item)
                except BaseException as error:
                    self.error = error

    def put(self, item) -> None:
        self._raise()
        self.items.put(item)

    def finish(self) -> None:
        self.items.put(_DONE)
        self.thread.join()
        self._raise()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.error = self.error or RuntimeError("stopped")
            self.items.put(_DONE)
            self.thread.join()

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error
