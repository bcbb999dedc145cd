"""Video jobs with admission control: checked at submission, queued in order, a few at a time.

BentoML's tasks ran every submitted job at once (each holding an API thread and a
concurrency slot, so long jobs could starve ``/stylize``), offered a ``retry`` route that
re-ran any finished job and a synchronous twin nobody asked for, and kept every request body
in their SQLite store. Here the upload is checked before the job exists (a bad one gets its
4xx at once), copied into the job's folder, and run by one of ``max_running`` threads; at
most ``max_queued`` wait, and past that the answer is 429 at once. The input is removed when
the job ends, however it ends.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from clipmorph.errors import BadInput
from clipmorph.serving import metrics
from clipmorph.serving.jobs.store import ENDED, Job, JobCancelled, JobStore

log = logging.getLogger(__name__)

RunJob = Callable[[Job, Path], dict]  # (job, the input in its folder) -> result; raises on failure
Spawn = Callable[..., None]  # spawn(function, *args): run it in a worker thread, in order, bounded


class ThreadPoolSpawner:
    """Jobs in a plain thread pool (FIFO): for callers outside an event loop."""

    def __init__(self, workers: int) -> None:
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="video-job")

    def __call__(self, function: Callable, *args) -> None:
        self._pool.submit(function, *args)


class AnyioSpawner:
    """Jobs in AnyIO worker threads of the server's event loop, at most ``workers`` at once (FIFO):
    BentoML's calls to another service work only from such threads. Call it from one too (a
    sync API handler runs in one)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._limiter = None  # made on the loop, at first use
        self._tasks: set = set()

    def __call__(self, function: Callable, *args) -> None:
        import anyio.from_thread

        anyio.from_thread.run_sync(self._schedule, function, args)

    def _schedule(self, function: Callable, args: tuple) -> None:
        import asyncio

        import anyio
        import anyio.to_thread

        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.workers)
        task = asyncio.get_running_loop().create_task(anyio.to_thread.run_sync(function, *args, limiter=self._limiter))
        self._tasks.add(task)  # keep a reference until it is done
        task.add_done_callback(self._tasks.discard)


def queue_position(store: JobStore, job: Job) -> int | None:
    """1 for the next video job to start, None when the job is not waiting."""
    record = job.read()
    if record.get("kind") != "video" or record.get("state") != "queued":
        return None
    mine = record.get("queued_at", 0.0)
    waiting = [r for r in (other.read() for other in store.jobs()) if r.get("kind") == "video"]
    return 1 + sum(1 for r in waiting if r.get("state") == "queued" and r.get("queued_at", 0.0) < mine)


class VideoJobQueue:
    def __init__(self, store: JobStore, max_running: int, max_queued: int, spawn: Spawn | None = None) -> None:
        self.store = store
        self.max_running = max(1, max_running)
        self.max_queued = max(0, max_queued)
        self._spawn = spawn or ThreadPoolSpawner(self.max_running)
        self._lock = threading.Lock()

    def active(self) -> int:
        """Video jobs queued or running, as their records say (what clients see, too)."""
        records = (job.read() for job in self.store.jobs())
        return sum(1 for r in records if r.get("kind") == "video" and r.get("state") in ("queued", "running"))

    def submit(self, upload: Path, run: RunJob) -> dict:
        """Admit a checked upload as a new job, or refuse it (429) when the queue is full."""
        with self._lock:
            active = self.active()
            if active >= self.max_running + self.max_queued:
                raise BadInput(f"the video queue is full ({active} jobs running or waiting): try again later", "busy")
            job = self.store.create(f"video-{uuid.uuid4().hex}")
            source = job.folder / f"input{upload.suffix.lower()[:10]}"
            try:
                shutil.copyfile(upload, source)
            except OSError:
                shutil.rmtree(job.folder, ignore_errors=True)
                raise
            job.write("queued", kind="video", queued_at=time.time(), done=0, total=0)
        metrics.get().jobs_active.labels("queued").inc()
        self._spawn(self._run, job, source, run)
        return {
            "task_id": job.id,  # the name BentoML's tasks used: clients that read it keep working
            "job_id": job.id,
            "state": "queued",
            "position": queue_position(self.store, job),
            "status_url": f"/jobs/{job.id}",
            "cancel_url": f"/jobs/{job.id}/cancel",
        }

    def _run(self, job: Job, source: Path, run: RunJob) -> None:
        metrics.get().jobs_active.labels("queued").dec()
        try:
            if job.cancel_requested:  # cancelled while it waited
                source.unlink(missing_ok=True)
                job.write("cancelled")
                return
            run(job, source)
        except (JobCancelled, BadInput):
            pass  # recorded in the job by the run itself
        except Exception:  # recorded too; logged here so a job thread never dies silently
            log.exception("video job %s failed", job.id)
            if job.read().get("state") not in ENDED:
                job.write("failed", error="the job failed on the server")
        finally:
            source.unlink(missing_ok=True)
