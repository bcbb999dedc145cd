"""After a crash or restart: jobs that were queued or running when the service stopped.

Nothing will ever finish them, so at start they are marked failed, their inputs removed
(uploads are never kept after their job ends) and a training child still running on its
own is stopped, which also frees the style name the job held. Finished jobs are swept on a
timer, not only when a new job is created. Where replicas share the folder, only jobs whose
owner has stopped its heartbeat are orphans (``replicas``), found at start and on every beat.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import threading
from pathlib import Path

from clipmorph.serving.jobs.store import ENDED, Job, JobStore

log = logging.getLogger(__name__)

CHILD_PID_FILE = "child.pid"  # written by the style queue for the training child
CHILD_MODULE = "clipmorph.serving.jobs.style_worker"
# What an unfinished job leaves: its uploads, previews, the child's pid, and a result still being
# written (``atomic_path``'s hidden partial file).
INPUT_PATTERNS = ("input*", "painting.*", "instant.jpg", "preview.jpg", "owner_key", CHILD_PID_FILE, ".*.partial*")


def stop_orphaned_child(job: Job) -> bool:
    """Stop the job's training child if it is still running (and really is that child)."""
    try:
        pid = int((job.folder / CHILD_PID_FILE).read_text())
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return False
    if CHILD_MODULE.encode() not in command or str(job.folder).encode() not in command:
        return False  # the pid was reused by another process
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        return False
    return True


def recover_orphans(store: JobStore, alive: set[str] | None = None) -> list[str]:
    """Mark every unfinished job failed and clean it, except those owned by an ``alive``
    replica (all of them when None: a service alone on its folder); returns their ids."""
    recovered = []
    for job in store.jobs():
        record = job.read()
        if not record or record.get("state") in ENDED:
            continue
        if alive is not None and record.get("owner") in alive:
            continue
        stopped = stop_orphaned_child(job)
        for pattern in INPUT_PATTERNS:
            for path in job.folder.glob(pattern):
                path.unlink(missing_ok=True)
        shutil.rmtree(job.folder / "checkpoint", ignore_errors=True)
        job.write("failed", error="the service stopped before this job ended: submit it again")
        recovered.append(job.id)
        log.warning("job %s was left %s by an earlier run%s", job.id, record.get("state"), ", child stopped" * stopped)
    return recovered


def start_sweeper(store: JobStore, every_seconds: float) -> threading.Thread:
    """Sweep finished jobs past their TTL every ``every_seconds``, in a daemon thread."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every_seconds):
            try:
                store.sweep()
            except OSError:
                log.exception("sweeping finished jobs failed")

    thread = threading.Thread(target=loop, name="job-sweeper", daemon=True)
    thread.start()
    return thread
