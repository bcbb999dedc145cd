"""Replicas that share one job folder (a ReadWriteMany volume): who owns which job, and who is alive.

Every service process that starts is a new replica with its own id; it stamps the jobs it
creates with that id and touches a heartbeat file under ``<jobs>/.replicas/`` on a timer. A
job whose owner has stopped beating is an orphan: nothing will finish it, so a live replica
marks it failed (``recovery``). Jobs of live replicas, restarted neighbours included, are left
alone. Progress, results and cancel flags are files in the job's folder, so any replica answers
for any job.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path

from clipmorph import locations
from clipmorph.errors import ClipMorphError

log = logging.getLogger(__name__)

FOLDER = ".replicas"


def host_name() -> str:
    """This machine's (a pod's) name, safe in a file name."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in socket.gethostname())[:40]


def new_replica_id() -> str:
    """Unique per process start: a restarted replica is a new one (its old jobs are orphans)."""
    return f"{host_name()}-{os.getpid()}-{time.time_ns()}"


class Replicas:
    """Heartbeats in the shared job folder, and in the jobs bucket when there is one
    (``remote``: replicas that share only the bucket see each other there)."""

    def __init__(self, jobs_root: Path, replica_id: str, timeout_seconds: float, remote=None) -> None:
        self.folder = Path(jobs_root) / FOLDER
        self.id = replica_id
        self.timeout_seconds = timeout_seconds  # a heartbeat older than this: the replica is gone
        self.remote = remote or None
        self._remote_seen: tuple[float, set[str] | None] = (-1e9, None)

    @property
    def beat_seconds(self) -> float:
        return max(self.timeout_seconds / 4, 0.5)

    def beat(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / self.id).touch()
        if self.remote:
            locations.upload(self.folder / self.id, locations.join(self.remote, FOLDER, self.id))

    def alive(self) -> set[str]:
        """Ids whose heartbeat is recent (this replica's own always counts)."""
        cutoff = time.time() - self.timeout_seconds
        alive = {self.id}
        try:
            entries = list(self.folder.iterdir())
        except FileNotFoundError:
            return alive
        for entry in entries:
            try:
                beat = entry.stat().st_mtime
            except FileNotFoundError:
                continue
            if beat >= cutoff:
                alive.add(entry.name)
            elif beat < cutoff - 24 * 3600:
                entry.unlink(missing_ok=True)  # long gone: forget it
        return alive | (self.remote_alive() or set())

    def remote_alive(self) -> set[str] | None:
        """Ids beating in the jobs bucket; None when it cannot be read (then nobody is gone)."""
        if not self.remote:
            return None
        if time.monotonic() - self._remote_seen[0] < 1.0:  # a poll of every job does not list the bucket
            return self._remote_seen[1]
        cutoff = time.time() - self.timeout_seconds
        try:
            beats = locations.modified(locations.join(self.remote, FOLDER))
        except ClipMorphError as error:
            log.warning("replica heartbeats unreadable: %s", error)
            return None
        alive = {self.id} | {name for name, stamp in beats.items() if stamp >= cutoff}
        self._remote_seen = (time.monotonic(), alive)
        return alive

    def start(self, on_beat=None) -> threading.Thread:
        """Beat now and then every ``beat_seconds``; ``on_beat`` (orphan recovery) runs after each."""
        self.beat()

        def loop() -> None:
            while True:
                time.sleep(self.beat_seconds)
                try:
                    self.beat()
                    if on_beat:
                        on_beat()
                except (OSError, ClipMorphError):
                    log.exception("replica heartbeat failed")

        thread = threading.Thread(target=loop, name="replica-heartbeat", daemon=True)
        thread.start()
        return thread
