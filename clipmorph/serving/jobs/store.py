"""Jobs on disk (video jobs and style creations): input, output, progress and a cancel flag per job.

BentoML tasks report only "in_progress", and the local server cannot cancel a running task.
Keeping this state in files makes progress and cancel work across every worker process.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from clipmorph.errors import BadInput, ClipMorphError
from clipmorph.fsutil import atomic_write

JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ENDED = ("succeeded", "failed", "cancelled")  # final states: no more progress, sweepable


class JobCancelled(ClipMorphError):
    """Raised inside a job when its cancel flag is set; the pipeline then cleans up."""


@dataclass(frozen=True)
class Job:
    id: str
    folder: Path

    @property
    def progress_file(self) -> Path:
        return self.folder / "progress.json"

    @property
    def cancel_flag(self) -> Path:
        return self.folder / "cancel"

    def output(self, suffix: str) -> Path:
        return self.folder / f"result{suffix}"

    def result_file(self) -> Path | None:
        return next(iter(sorted(self.folder.glob("result.*"))), None)

    def write(self, state: str, **fields) -> dict:
        """Atomically replace the progress record (readers never see half a file)."""
        record = {**self.read(), "id": self.id, "state": state, "updated": time.time(), **fields}
        atomic_write(self.progress_file, json.dumps(record))
        return record

    def read(self) -> dict:
        try:
            return json.loads(self.progress_file.read_text())
        except (OSError, json.JSONDecodeError):  # not written yet, or not a job folder at all
            return {}

    def request_cancel(self) -> None:
        self.cancel_flag.touch()

    @property
    def cancel_requested(self) -> bool:
        return self.cancel_flag.exists()

    def tracker(self, started: float):
        """A pipeline ``on_frames`` callback: record progress, stop when cancelled."""

        def on_frames(done: int, total: int) -> None:
            if self.cancel_requested:
                raise JobCancelled("the job was cancelled")
            elapsed = max(time.monotonic() - started, 1e-6)
            fps = done / elapsed
            eta = (total - done) / fps if total and fps > 0 else None
            self.write("running", done=done, total=total, fps=round(fps, 2), eta_seconds=eta and round(eta, 1))

        return on_frames


class JobStore:
    def __init__(self, root: Path, ttl_seconds: float, owner: str = "") -> None:
        self.root = root
        self.ttl_seconds = ttl_seconds  # the root is made on first use: importing the service writes nothing
        self.owner = owner  # the replica whose jobs these are (see ``replicas``); recorded in each job

    def _path(self, job_id: str) -> Path:
        if not JOB_ID.match(job_id or ""):
            raise BadInput(f"invalid job id {job_id!r}")
        return self.root / job_id

    def create(self, job_id: str) -> Job:
        self.sweep()
        folder = self._path(job_id)
        folder.mkdir(parents=True, exist_ok=True)
        job = Job(job_id, folder)
        if not job.progress_file.exists():
            job.write("queued", done=0, total=0, owner=self.owner)
        return job

    def get(self, job_id: str) -> Job | None:
        folder = self._path(job_id)
        return Job(job_id, folder) if folder.is_dir() else None

    def jobs(self) -> list[Job]:
        """Every job folder (lock files and other dot-entries in the root are not jobs)."""
        if not self.root.is_dir():
            return []
        return [Job(p.name, p) for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")]

    def sweep(self) -> None:
        """Remove jobs that finished longer than the TTL ago (results included)."""
        cutoff = time.time() - self.ttl_seconds
        for job in self.jobs():
            record = job.read()
            if record.get("state") in ENDED and record.get("updated", 0) < cutoff:
                shutil.rmtree(job.folder, ignore_errors=True)
