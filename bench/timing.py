"""Warm up, then repeat until enough time has passed; report median and spread."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass


@dataclass
class Timing:
    median_s: float
    min_s: float
    max_s: float
    runs: int

    def rate(self, items: int) -> float:
        return items / self.median_s if self.median_s > 0 else 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def measure(work: Callable[[], object], warmup: int = 1, min_runs: int = 3, max_runs: int = 7,
            min_seconds: float = 2.0) -> Timing:  # fmt: skip
    for _ in range(warmup):
        work()
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < min_runs or (time.perf_counter() - started < min_seconds and len(times) < max_runs):
        begin = time.perf_counter()
        work()
        times.append(time.perf_counter() - begin)
    return Timing(statistics.median(times), min(times), max(times), len(times))
