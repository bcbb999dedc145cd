"""Style creation jobs inside the service: a painting in, a served style out, minutes later.

The API process queues jobs (at most ``max_parallel`` trainings per device: ``TrainingSlots``)
and runs each in a child process at lower CPU priority (``style_child``), so image and video
requests keep their cores first. The child (``clipmorph.serving.jobs.style_worker``) runs the
same add-a-style training as ``clipmorph train --add-to``.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import threading
import uuid
from dataclasses import asdict, replace
from pathlib import Path

from clipmorph.errors import BadInput, without_paths
from clipmorph.serving.jobs.store import ENDED, Job, JobStore
from clipmorph.serving.jobs.style_child import LOG_FILE, run_training_child
from clipmorph.serving.jobs.style_files import SPEC_FILE, StyleJobSpec, finish_cancelled, remove_training_files
from clipmorph.serving.jobs.training_slots import TrainingSlots

log = logging.getLogger(__name__)


def active_style_ids(jobs: JobStore) -> set[str]:
    """Style ids that queued or running creation jobs will produce."""
    records = [job.read() for job in jobs.jobs()]
    return {r.get("style") for r in records if r.get("kind") == "style" and r.get("state") not in ENDED}


class StyleTrainingQueue:
    """Accepts creation jobs and runs them one device slot at a time."""

    def __init__(self, jobs: JobStore, max_parallel: int = 1, nice: int = 10) -> None:
        self.jobs = jobs
        self.slots = TrainingSlots(jobs.root, max_parallel)
        self.nice = nice
        self._submit_lock = threading.Lock()

    def submit(
        self,
        painting: Path,
        spec: StyleJobSpec,
        files: dict[str, bytes] | None = None,
        job_id: str | None = None,
        **fields,
    ) -> tuple[Job, str]:
        """Queue a job (with extra ``files`` in its folder and ``fields`` in its record); returns
        it and its owner key (needed to cancel it when a token is set)."""
        with self._submit_lock:  # two uploads of one name: the second is refused
            from clipmorph.styles import index

            if spec.style_id in index.style_models() or spec.style_id in active_style_ids(self.jobs):
                raise BadInput(f"a style named {spec.style_id!r} already exists or is being created", "exists")
            job = self.jobs.create(job_id or self.new_job_id())
            shutil.copyfile(painting, job.folder / spec.painting)
            for name, data in (files or {}).items():
                (job.folder / name).write_bytes(data)
            spec = replace(spec, mirror=str(job.remote or ""))
            (job.folder / SPEC_FILE).write_text(json.dumps(asdict(spec)))
            owner_key = secrets.token_urlsafe(24)
            (job.folder / "owner_key").write_text(owner_key)
            job.write("queued", kind="style", style=spec.style_id, preset=spec.preset, step=0, steps=0, **fields)
        threading.Thread(target=self._run, args=(job,), name=f"train-{job.id}", daemon=True).start()
        return job, owner_key

    @staticmethod
    def new_job_id() -> str:
        return f"style-{uuid.uuid4().hex}"

    def _run(self, job: Job) -> None:
        slot = self.slots.acquire(lambda: job.cancel_requested)
        if slot is None:
            finish_cancelled(job)
            return
        try:
            returncode = run_training_child(job, self.nice)
            if job.read().get("state") not in ENDED:  # the child died without saying why
                tail = (job.folder / LOG_FILE).read_text()[-500:]
                job.write("failed", error=without_paths(f"training stopped with exit code {returncode}: {tail}"))
        except Exception as error:  # never let a job thread die silently
            log.exception("style job %s failed", job.id)
            job.write("failed", error=without_paths(str(error)))
        finally:
            self.slots.release(slot)
            remove_training_files(job)
