"""The API side of the model service's batchable method.

``RemoteStylizer`` looks like the in-process Engine to the file pipeline (the FrameStylizer
protocol), so images and video frames from every request share the model's batches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from clipmorph.inference.options import StylizeOptions, check_frame, options_per_frame
from clipmorph.serving.schema import FrameItem, ItemError

CONNECTION_CLOSED = "Connection closed."  # aiohttp's StreamReader, when the peer closed mid-answer


class RemoteStylizer:
    """Adapts the model service's batchable method to the pipeline's FrameStylizer protocol.

    A call that finds its pooled keep-alive connection closed by the model server (aiohttp's
    ServerDisconnectedError, seen under load; or "Connection closed." while the answer was
    being read, seen once in 22,750 soak requests) is retried: stylizing is idempotent.
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
        return self.for_kind("video", in_flight)

    def for_kind(self, kind: str, in_flight: Any = None) -> RemoteStylizer:
        return RemoteStylizer(self.call, self.batch_size, self.attempts, kind, in_flight)

    def _call(self, items: list[FrameItem]) -> list[np.ndarray]:
        from aiohttp import ClientConnectionError

        for attempt in range(1, self.attempts + 1):
            try:
                results = list(self.call(items))
                for result in results:
                    if isinstance(result, ItemError):
                        result.throw()
                return results
            except (ClientConnectionError, RuntimeError) as error:
                transport = isinstance(error, ClientConnectionError) or str(error) == CONNECTION_CLOSED
                if not transport or attempt == self.attempts:
                    raise
        raise AssertionError("unreachable")

    def stylize_frames(
        self,
        frames: Sequence[np.ndarray],
        options: StylizeOptions | Sequence[StylizeOptions],
        any_size: bool = False,
    ) -> list[np.ndarray]:
        """``any_size`` is the model service's choice, by the frames' kind: images run through
        its any-size model, video and live frames through their own shape."""
        for frame in frames:  # a bad frame fails its own request here, before it can join a batch
            check_frame(frame)
        items = [FrameItem.of(f, o, self.kind) for f, o in zip(frames, options_per_frame(frames, options), strict=True)]
        if self.in_flight is None:
            return self._call(items)
        self.in_flight.inc(len(items))
        try:
            return self._call(items)
        finally:
            self.in_flight.dec(len(items))
