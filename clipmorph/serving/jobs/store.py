"""Jobs on disk (video jobs and style creations): input, output, progress and a cancel flag per job.

BentoML tasks report only "in_progress", and the local server cannot cancel a running task.
Keeping this state in files makes progress and cancel work across every worker process, and
across replicas that share the folder (a ReadWriteMany volume). Replicas with no shared folder
share a bucket instead (``CLIPMORPH_JOBS_URL``): a job runs in its replica's own folder, which
mirrors what others read (``SHARED_FILES``) to ``<url>/<job id>/``; another replica answers for
the job from there, and a cancel written there reaches the replica that runs it.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from clipmorph import locations
from clipmorph.errors import BadInput, ClipMorphError
from clipmorph.fsutil import atomic_write

log = logging.getLogger(__name__)

JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ENDED = ("succeeded", "failed", "cancelled")  # final states: no more progress, sweepable
# What another replica reads of a job: progress, the cancel flag, the owner's key, pictures, the result.
SHARED_FILES = ("owner_key", "instant.jpg", "preview.jpg", "result.mp4", "result.webm", "cancel", "progress.json")
MIRROR_SECONDS = 1.0  # progress reaches the bucket at most this often (and at every end)
_mirrored: dict[tuple[str, str], float] = {}  # (job folder, file) -> the mtime last uploaded
_mirrored_at: dict[str, float] = {}  # job folder -> when its progress was last uploaded
_cancel_seen: dict[str, tuple[float, bool]] = {}  # remote -> (when looked, cancelled)


class JobCancelled(ClipMorphError):
    """Raised inside a job when its cancel flag is set; the pipeline then cleans up."""


@dataclass(frozen=True)
class Job:
    id: str
    folder: Path  # this replica's folder for it (missing for a job another replica runs)
    remote: locations.Location | None = None  # its mirror, ``CLIPMORPH_JOBS_URL/<id>``, if any

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
        if self.remote is not None:
            self.mirror(final=state in ENDED)
        return record

    def mirror(self, final: bool = False) -> None:
        """Upload the shared files that changed since their last upload, progress last; at most
        every ``MIRROR_SECONDS`` unless ``final``. A bucket that fails is logged: the job goes on."""
        key = str(self.folder)
        if not final and time.monotonic() - _mirrored_at.get(key, -1e9) < MIRROR_SECONDS:
            return
        _mirrored_at[key] = time.monotonic()
        try:
            for name in SHARED_FILES:
                path = self.folder / name
                try:
                    mtime = path.stat().st_mtime_ns
                except FileNotFoundError:
                    continue
                if _mirrored.get((key, name)) != mtime or name == "progress.json":
                    locations.upload(path, locations.join(self.remote, name))
                    _mirrored[(key, name)] = mtime
        except ClipMorphError as error:
            log.warning("job %s: could not mirror to %s: %s", self.id, self.remote, error)
        if final:
            for entry in [k for k in _mirrored if k[0] == key]:
                del _mirrored[entry]
            _mirrored_at.pop(key, None)

    def read(self) -> dict:
        try:
            return json.loads(self.progress_file.read_text())
        except (OSError, json.JSONDecodeError):  # not written yet, or not a job folder at all
            pass
        if self.remote is None or self.folder.exists():
            return {}
        try:
            with locations.fetched(locations.join(self.remote, "progress.json")) as local:
                return json.loads(local.read_text())
        except (ClipMorphError, OSError, json.JSONDecodeError):
            return {}

    def shared_file(self, name: str) -> Path | locations.Location | None:
        """Where to read one of ``SHARED_FILES``: this replica's copy, else the mirror's."""
        if (self.folder / name).is_file():
            return self.folder / name
        if self.remote is not None and not self.folder.exists():
            target = locations.join(self.remote, name)
            try:
                return target if locations.exists(target) else None
            except ClipMorphError:
                return None
        return None

    def request_cancel(self) -> None:
        if self.folder.exists():
            self.cancel_flag.touch()
        if self.remote is not None:
            locations.put_bytes(b"", locations.join(self.remote, "cancel"))

    @property
    def cancel_requested(self) -> bool:
        if self.cancel_flag.exists():
            return True
        if self.remote is None:
            return False
        looked, cancelled = _cancel_seen.get(str(self.remote), (-1e9, False))
        if not cancelled and time.monotonic() - looked >= MIRROR_SECONDS:  # another replica's cancel
            try:
                cancelled = locations.exists(locations.join(self.remote, "cancel"))
            except ClipMorphError:
                cancelled = False
            _cancel_seen[str(self.remote)] = (time.monotonic(), cancelled)
        return cancelled

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


def settle_orphan(job: Job, record: dict) -> None:
    """Mark failed, in the bucket, a job whose replica is gone (what ``recovery`` does on disk)."""
    settled = {**record, "state": "failed", "updated": time.time()}
    settled["error"] = "the replica running this job stopped before it ended: submit it again"
    try:
        locations.put_bytes(json.dumps(settled).encode(), locations.join(job.remote, "progress.json"))
    except ClipMorphError as error:
        log.warning("job %s: could not mark it failed in the bucket: %s", job.id, error)
    log.warning("job %s: its replica %s stopped beating; marked failed", job.id, record.get("owner"))


class JobStore:
    def __init__(self, root: Path, ttl_seconds: float, owner: str = "", remote: locations.Location = "") -> None:
        self.root = root
        self.ttl_seconds = ttl_seconds  # the root is made on first use: importing the service writes nothing
        self.owner = owner  # the replica whose jobs these are (see ``replicas``); recorded in each job
        self.remote = remote or None  # CLIPMORPH_JOBS_URL: every replica's jobs, mirrored
        self.remote_alive: Callable[[], set[str] | None] | None = None  # the replicas beating there

    def _remote(self, job_id: str) -> locations.Location | None:
        return locations.join(self.remote, job_id) if self.remote else None

    def _path(self, job_id: str) -> Path:
        if not JOB_ID.match(job_id or ""):
            raise BadInput(f"invalid job id {job_id!r}")
        return self.root / job_id

    def create(self, job_id: str) -> Job:
        self.sweep()
        folder = self._path(job_id)
        folder.mkdir(parents=True, exist_ok=True)
        job = Job(job_id, folder, self._remote(job_id))
        if not job.progress_file.exists():
            job.write("queued", done=0, total=0, owner=self.owner)
        return job

    def get(self, job_id: str) -> Job | None:
        """A job of this replica, or of another one whose mirror the bucket holds (failed here
        when that replica stopped beating before the job ended: nothing will finish it)."""
        folder = self._path(job_id)
        job = Job(job_id, folder, self._remote(job_id))
        if folder.is_dir():
            return job
        record = job.read() if self.remote else {}
        if not record:
            return None
        alive = self.remote_alive() if self.remote_alive else None
        if record.get("state") not in ENDED and alive is not None and record.get("owner") not in alive:
            settle_orphan(job, record)
        return job

    def jobs(self) -> list[Job]:
        """Every job folder (lock files and other dot-entries in the root are not jobs)."""
        if not self.root.is_dir():
            return []
        return [
            Job(p.name, p, self._remote(p.name))
            for p in self.root.iterdir()
            if p.is_dir() and not p.name.startswith(".")
        ]

    def sweep(self) -> None:
        """Remove jobs that finished longer than the TTL ago (results included)."""
        cutoff = time.time() - self.ttl_seconds
        for job in self.jobs():
            record = job.read()
            if record.get("state") in ENDED and record.get("updated", 0) < cutoff:
                shutil.rmtree(job.folder, ignore_errors=True)
                if job.remote is not None:
                    try:
                        for name in SHARED_FILES:
                            locations.remove(locations.join(job.remote, name))
                    except ClipMorphError as error:
                        log.warning("job %s: could not remove its mirror: %s", job.id, error)
