"""What the BentoML services exchange, and how engine errors become HTTP errors.

The model service exposes one batchable method over ``FrameItem`` lists; the API service
and video jobs reach it through ``RemoteStylizer``, which looks like the in-process Engine
to the file pipeline, so images and video frames share the same batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from http import HTTPStatus
from typing import Any

import numpy as np
from pydantic import BaseModel

from clipmorph.errors import BadInput, ClipMorphError, MediaError, UnknownStyle
from clipmorph.inference.engine import StyleMix, StylizeOptions, options_per_frame


class FrameItem(BaseModel):
    """One frame to stylize and its options (each item may use a different style).

    Pixels travel as raw bytes plus shape: BentoML pickles internal calls, so this costs no
    base64, and pydantic can describe it (it cannot describe an ndarray field).
    """

    pixels: bytes  # (height, width, 3) uint8, C order
    height: int
    width: int
    kind: str = "image"  # or "video": a metric label
    style: str  # StyleMix text: "monet" or "monet=0.7,scream=0.3"
    strength: float = 1.0
    preserve_color: bool = False
    max_side: int | None = None
    keep_size: bool = True

    @classmethod
    def of(cls, pixels: np.ndarray, options: StylizeOptions, kind: str = "image") -> FrameItem:
        return cls(
            kind=kind,
            pixels=np.ascontiguousarray(pixels, dtype=np.uint8).tobytes(),
            height=pixels.shape[0],
            width=pixels.shape[1],
            style=str(options.style),
            strength=options.strength,
            preserve_color=options.preserve_color,
            max_side=options.max_side,
            keep_size=options.keep_size,
        )

    def frame(self) -> np.ndarray:
        expected = self.height * self.width * 3
        if len(self.pixels) != expected:
            raise BadInput(f"frame has {len(self.pixels)} bytes, expected {expected} for {self.width}x{self.height}")
        return np.frombuffer(self.pixels, dtype=np.uint8).reshape(self.height, self.width, 3)

    def options(self) -> StylizeOptions:
        return StylizeOptions(
            StyleMix.parse(self.style), self.strength, self.preserve_color, self.max_side, self.keep_size
        )


class RemoteStylizer:
    """Adapts the model service's batchable method to the pipeline's FrameStylizer protocol.

    A call that finds its pooled keep-alive connection closed by the model server (aiohttp's
    ServerDisconnectedError, seen under load) is retried: stylizing is idempotent.
    """

    def __init__(
        self,
        call: Callable[[list[FrameItem]], list[np.ndarray]],
        batch_size: int,
        attempts: int = 3,
        kind: str = "image",
        in_flight: Any = None,
    ) -> None:
        self.call = call
        self.batch_size = batch_size
        self.attempts = attempts
        self.kind = kind
        self.in_flight = in_flight  # a Prometheus gauge of frames awaiting the model, or None

    def for_video(self, in_flight: Any = None) -> RemoteStylizer:
        return RemoteStylizer(self.call, self.batch_size, self.attempts, "video", in_flight)

    def _call(self, items: list[FrameItem]) -> list[np.ndarray]:
        from aiohttp import ClientConnectionError

        for attempt in range(1, self.attempts + 1):
            try:
                return list(self.call(items))
            except ClientConnectionError:
                if attempt == self.attempts:
                    raise
        raise AssertionError("unreachable")

    def stylize_frames(
        self, frames: Sequence[np.ndarray], options: StylizeOptions | Sequence[StylizeOptions]
    ) -> list[np.ndarray]:
        items = [FrameItem.of(f, o, self.kind) for f, o in zip(frames, options_per_frame(frames, options), strict=True)]
        if self.in_flight is None:
            return self._call(items)
        self.in_flight.inc(len(items))
        try:
            return self._call(items)
        finally:
            self.in_flight.dec(len(items))


REASON_STATUS = {
    "forbidden": HTTPStatus.FORBIDDEN,
    "protected": HTTPStatus.FORBIDDEN,
    "exists": HTTPStatus.CONFLICT,
    "unavailable": HTTPStatus.SERVICE_UNAVAILABLE,
}


@contextmanager
def http_errors() -> Iterator[None]:
    """Map engine errors to BentoML exceptions, which BentoML answers with the right 4xx."""
    from bentoml import exceptions

    try:
        yield
    except (UnknownStyle, BadInput) as error:
        from clipmorph.serving import metrics

        metrics.rejected(error.reason)
        if isinstance(error, UnknownStyle):
            raise exceptions.NotFound(str(error)) from error
        status = REASON_STATUS.get(error.reason)
        if status:
            raise exceptions.BentoMLException(str(error), error_code=status) from error
        raise exceptions.InvalidArgument(str(error)) from error
    except MediaError as error:
        raise exceptions.UnprocessableEntity(str(error)) from error
    except ClipMorphError as error:
        raise exceptions.InvalidArgument(str(error)) from error


def parse_options(
    style: str, strength: float, preserve_color: bool, max_side: int | None, limit: int, keep_size: bool = True
) -> StylizeOptions:
    """Request fields -> engine options, with the service's resolution cap applied."""
    if max_side is not None and max_side > limit:
        raise BadInput(f"max_side {max_side} is over this server's limit of {limit}", "bad_value")
    return StylizeOptions(StyleMix.parse(style), strength, preserve_color, max_side or limit, keep_size)
