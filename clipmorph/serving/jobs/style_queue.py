"""Style creation jobs inside the service: a painting in, a served style out, minutes later.

The API process queues jobs (at most ``max_parallel`` trainings per device, enforced with
file locks so every worker agrees) and runs each in a child process at lower CPU priority, so
image and video requests keep their cores first. The child (``clipmorph.serving.jobs.style_worker``)
runs the same add-a-style training as ``clipmorph train --add-to``.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from clipmorph.errors import BadInput, UnknownStyle, without_paths
from clipmorph.serving.jobs.recovery import CHILD_PID_FILE
from clipmorph.serving.jobs.store import ENDED, Job, JobStore
from clipmorph.training.presets import PRESETS

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np

    from clipmorph.serving.schema import ItemError, Picture

    PaintPreview = Callable[[Picture, Picture], np.ndarray | ItemError]

log = logging.getLogger(__name__)

SPEC_FILE = "spec.json"
PREVIEW_FILE = "preview.jpg"


@dataclass
class StyleJobSpec:
    style_id: str
    display_name: str
    author: str
    preset: str
    base: str  # style id or backbone name the new style is added to
    content: list[str]  # photo folders
    painting: str  # file name inside the job folder
    wandb: bool = True
    wandb_dir: str | None = None
    models_url: str = ""  # CLIPMORPH_MODELS_URL: the new style is pushed there, for every replica
    mirror: str = ""  # the job's mirror in CLIPMORPH_JOBS_URL (the child's progress goes there too)
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


def active_style_ids(jobs: JobStore) -> set[str]:
    """Style ids that queued or running creation jobs will produce."""
    records = [job.read() for job in jobs.jobs()]
    return {r.get("style") for r in records if r.get("kind") == "style" and r.get("state") not in ENDED}


def default_base(preferred: str) -> str:
    """The backbone new styles go on: ``preferred`` when stored, else the first style's backbone."""
    from clipmorph.styles import index

    try:
        index.backbone_key(preferred)
        return preferred
    except UnknownStyle:
        models = index.style_models()
        if not models:
            raise BadInput("no styles in the store to build a new style on", "unavailable") from None
        return sorted(models)[0]


def may_cancel(job: Job, headers, admin_token: str) -> None:
    """With an admin token configured, a style job is cancelled by its owner (X-Owner-Key, given
    when it was created) or an admin. Video jobs: knowing the random job id is the capability."""
    from clipmorph import locations
    from clipmorph.serving.access import is_admin

    key_file = job.shared_file("owner_key")  # this replica's, or the jobs bucket's
    if not admin_token or key_file is None:
        return
    if is_admin(headers, admin_token):
        return
    with locations.fetched(key_file) as local:
        owner_key = local.read_text()
    if secrets.compare_digest(headers.get("x-owner-key", "").encode(), owner_key.encode()):
        return
    raise BadInput("only the job's owner (X-Owner-Key) or an admin can cancel it", "forbidden")


class StyleTrainingQueue:
    """Accepts creation jobs and runs them one device slot at a time."""

    def __init__(self, jobs: JobStore, max_parallel: int = 1, nice: int = 10) -> None:
        self.jobs = jobs
        self.max_parallel = max(1, max_parallel)
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

    def _acquire_slot(self, job: Job):
        """Hold one of ``max_parallel`` lock files; None when the job was cancelled while waiting.
        The files are per machine (its device): replicas on one host share its slots, replicas
        on other hosts that share the job folder have their own."""
        from clipmorph.serving.jobs.replicas import host_name

        self.jobs.root.mkdir(parents=True, exist_ok=True)
        while True:
            for slot in range(self.max_parallel):
                handle = (self.jobs.root / f".training-slot-{host_name()}-{slot}.lock").open("w")
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return handle
                except BlockingIOError:
                    handle.close()
            if job.cancel_requested:
                return None
            time.sleep(0.5)

    def _run(self, job: Job) -> None:
        slot = self._acquire_slot(job)
        if slot is None:
            finish_cancelled(job)
            return
        try:
            command = [sys.executable, "-m", "clipmorph.serving.jobs.style_worker", str(job.folder)]
            niceness = self.nice

            def lower_priority() -> None:
                os.nice(niceness)

            log_file = (job.folder / "train.log").open("w")
            with log_file:
                child = subprocess.Popen(
                    command, stdout=log_file, stderr=subprocess.STDOUT, preexec_fn=lower_priority, env=child_env()
                )
                (job.folder / CHILD_PID_FILE).write_text(str(child.pid))  # a restarted service stops it
                returncode = child.wait()
            (job.folder / CHILD_PID_FILE).unlink(missing_ok=True)
            if job.read().get("state") not in ENDED:  # the child died without saying why
                tail = (job.folder / "train.log").read_text()[-500:]
                job.write("failed", error=without_paths(f"training stopped with exit code {returncode}: {tail}"))
        except Exception as error:  # never let a job thread die silently
            log.exception("style job %s failed", job.id)
            job.write("failed", error=without_paths(str(error)))
        finally:
            fcntl.flock(slot, fcntl.LOCK_UN)
            slot.close()
            remove_training_files(job)


CHILD_STORE_VARIABLE = "CLIPMORPH_CHILD_MODEL_STORE"  # parent to child only: not a setting


def child_env() -> dict[str, str]:
    """The training child imports this same package, wherever it was loaded from: inside a
    built bento that is the bento's source folder, which no installed package points to. It
    also uses this process's model store: a served bento reads its own (``index.store_folder``),
    where the child must find the backbone and save the new style."""
    import clipmorph
    from clipmorph.styles import index

    root = str(Path(clipmorph.__file__).resolve().parent.parent)
    paths = [root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    store = str(index.store_folder())
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)), CHILD_STORE_VARIABLE: store}


def training_photos(settings) -> list[Path]:
    """CLIPMORPH_TRAIN_CONTENT's folders, else the store's training photos (``clipmorph content
    import``, packed into a bento), else none: style creation is unavailable."""
    from clipmorph.styles import assets

    if settings.train_content:
        return list(settings.train_content)
    stored = assets.content_folder()
    return [stored] if stored else []


def remove_training_files(job: Job) -> None:
    """What a finished job no longer needs (the checkpoint is the big one)."""
    shutil.rmtree(job.folder / "checkpoint", ignore_errors=True)


def finish_cancelled(job: Job) -> None:
    """A cancelled job keeps only its progress record: no painting, checkpoint or preview."""
    for path in job.folder.iterdir():
        if path == job.progress_file:
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    job.write("cancelled")


def create_style_job(
    training: StyleTrainingQueue, request, settings, folder: Path, headers, paint: PaintPreview | None = None
) -> dict:
    """``POST /create_style``: check who asks and what, paint the instant preview (``paint``: the
    model worker's arbitrary-style network), then queue the training of the request's painting
    on the served backbone; returns what the client needs to follow the job."""
    from clipmorph.inference import media
    from clipmorph.serving.access import require_admin, style_id_from_name
    from clipmorph.serving.instant_preview import INSTANT_FILE, make_instant_preview, preview_photo

    require_admin(headers, settings.admin_token)
    style_id, display_name = style_id_from_name(request.name)
    content = training_photos(settings)
    if not content:
        raise BadInput(
            "style creation has no training photos here: store some with `clipmorph content import DIR` "
            "(a bento packs them) or set CLIPMORPH_TRAIN_CONTENT",
            "unavailable",
        )
    painting = media.load_image(request.painting, settings.max_image_pixels)
    photo_path = request.photo or preview_photo(content)
    photo = media.load_image(photo_path, settings.max_image_pixels) if photo_path else None  # a bad upload: 4xx
    clean = folder / "painting.png"  # re-encoded: whatever the upload was, the job gets a plain PNG
    clean.write_bytes(media.encode_image(painting.rgb, None, "PNG"))
    spec = StyleJobSpec(
        style_id=style_id,
        display_name=display_name,
        author=request.author.strip() or "anonymous",
        preset=request.preset,
        base=default_base(settings.train_base),
        content=[str(p) for p in content],
        painting="painting.png",
        wandb=settings.wandb,
        wandb_dir=str(settings.wandb_dir),
        models_url=settings.models_url or "",
    )
    instant, report = None, {}
    if paint is not None and photo is not None:
        instant, report = make_instant_preview(paint, photo.rgb, painting.rgb)
    files = {INSTANT_FILE: instant} if instant else {}
    job_id = training.new_job_id()
    if instant:
        report["instant_preview_url"] = f"/jobs/{job_id}/instant_preview"
    job, owner_key = training.submit(clean, spec, files, job_id=job_id, **report)
    return {
        **report,
        "job_id": job.id,
        "style": style_id,
        "display_name": display_name,
        "preset": request.preset,
        "steps": PRESETS[request.preset]["steps"],
        "status_url": f"/jobs/{job.id}",
        "cancel_url": f"/jobs/{job.id}/cancel",
        "owner_key": owner_key,
    }
