"""What a style creation job's folder holds, written by the API side and read by its child:
the job's spec, the newest training preview, and which files go when the job ends."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime

from clipmorph.serving.jobs.store import Job

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
