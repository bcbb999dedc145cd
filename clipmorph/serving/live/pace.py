"""The live stream's painting size, chosen by measurement.

One viewer is painted one frame at a time, so its frames/s is one over the time a frame takes
(decode, model, encode). A CPU without bf16 paints a 640x360 frame with the `lite` network in
150-300 ms; a GPU in a few. ``Pace`` watches that time and picks the network's long side from
a short ladder so that the stream keeps ``target_fps``: smaller on a slow machine or under
load, back up when there is room (the page scales the painting to the camera's size). A
ladder, not any size: each new size costs the compiled backends an export or compile once.
"""

from __future__ import annotations

import math
import statistics

RUNGS = (1280, 960, 800, 640, 512, 448, 384, 320, 256, 192)  # long sides the network may run at
WINDOW = 5  # frames measured before a change
SLOW, ROOM = 1.15, 0.45  # change when a frame takes over 115% of the budget, or under 45%


class Pace:
    def __init__(self, target_fps: float) -> None:
        self.budget = 1.0 / target_fps if target_fps > 0 else 0.0
        self.side: int | None = None  # None: the frame's own size
        self._times: list[float] = []

    def max_side(self, long_side: int) -> int:
        """The network's long side for a frame whose long side is ``long_side``."""
        return long_side if self.side is None else min(self.side, long_side)

    def observe(self, seconds: float, long_side: int) -> bool:
        """One painted frame took ``seconds``; True when the painting size changed. ``long_side``:
        the most the network may run at (the frame's long side, or the service's cap below it)."""
        if not self.budget:
            return False
        self._times = [*self._times[-(WINDOW - 1) :], seconds]
        if len(self._times) < WINDOW:
            return False
        typical = statistics.median(self._times)
        if self.budget * ROOM <= typical <= self.budget * SLOW:
            return False
        current = self.max_side(long_side)
        ideal = current * math.sqrt(self.budget * 0.9 / typical)  # time grows with the pixels: side squared
        wanted = None if ideal >= long_side else max([r for r in RUNGS if r <= ideal] or [RUNGS[-1]])
        if wanted is not None and wanted >= long_side:
            wanted = None
        if wanted == self.side or (wanted is None and self.side is None):
            return False
        if typical < self.budget * ROOM and wanted is not None and wanted < current:
            return False  # measured room never makes it smaller
        self.side = wanted
        self._times = []
        return True
