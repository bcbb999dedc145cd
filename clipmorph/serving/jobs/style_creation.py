"""``POST /create_style``: who may ask, what is checked, the instant preview, then the queued
training of the painting on the served backbone."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from clipmorph.errors import BadInput, UnknownStyle
from clipmorph.serving.jobs.style_files import StyleJobSpec
from clipmorph.serving.jobs.style_queue import StyleTrainingQueue
from clipmorph.training.presets import PRESETS

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np

    from clipmorph.serving.schema import ItemError, Picture

    PaintPreview = Callable[[Picture, Picture], np.ndarray | ItemError]


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


def training_photos(settings) -> list[Path]:
    """CLIPMORPH_TRAIN_CONTENT's folders, else the store's training photos (``clipmorph content
    import``, packed into a bento), else none: style creation is unavailable."""
    from clipmorph.styles import assets

    if settings.train_content:
        return list(settings.train_content)
    stored = assets.content_folder()
    return [stored] if stored else []


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
