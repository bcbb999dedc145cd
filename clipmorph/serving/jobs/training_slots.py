"""Device slots for style trainings: at most N at once per machine, agreed by every worker
and every replica on the host through lock files in the job folder."""

from __future__ import annotations

import fcntl
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO


class TrainingSlots:
    """``max_parallel`` lock files per host: holding one is the right to train on its device.
    Replicas on one host share its slots; replicas on other hosts that share the job folder
    have their own (the files are named by host)."""

    def __init__(self, root: Path, max_parallel: int = 1) -> None:
        self.root = root
        self.max_parallel = max(1, max_parallel)

    def acquire(self, give_up: Callable[[], bool], poll_seconds: float = 0.5) -> IO | None:
        """Wait for a free slot and hold it; None when ``give_up`` says so while waiting."""
        from clipmorph.serving.jobs.replicas import host_name

        self.root.mkdir(parents=True, exist_ok=True)
        while True:
            for slot in range(self.max_parallel):
                handle = (self.root / f".training-slot-{host_name()}-{slot}.lock").open("w")
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return handle
                except BlockingIOError:
                    handle.close()
            if give_up():
                return None
            time.sleep(poll_seconds)

    @staticmethod
    def release(handle: IO) -> None:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
