"""The child process of a style creation job: ``python -m clipmorph.serving.jobs.style_worker FOLDER``.

It trains (add-a-style on the served backbone), reports progress and a preview into the job
folder, scores the new style and saves it to the model store, where every model worker picks
it up without a restart. Run apart from the service so a training never blocks a request.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

from clipmorph.errors import without_paths
from clipmorph.fsutil import atomic_path
from clipmorph.serving.jobs.store import Job
from clipmorph.serving.jobs.style_files import PREVIEW_FILE, SPEC_FILE, StyleJobSpec, finish_cancelled
from clipmorph.training.presets import TEACHER_PHOTOS, TEACHER_WEIGHT, preset_config

log = logging.getLogger(__name__)


def _save_preview(job: Job, grid) -> None:
    from PIL import Image

    with atomic_path(job.folder / PREVIEW_FILE) as temporary:
        Image.fromarray(grid).save(temporary, format="JPEG", quality=85)


class PreviewColours:
    """The live preview in the colours the finished style will have: its colour treatment,
    estimated on the preview's own photos (the style proper is calibrated on eight training
    photos when training ends), so the user does not watch one palette and receive another."""

    def __init__(self, painting: Path, side: int) -> None:
        from clipmorph.training import colour

        self.side = side  # the preview's tiles: one row per photo, the photo then the new style
        self.painting_colour = colour.painting_colourfulness(colour.fitted(painting, colour.PAINTING_SIDE))
        self.keep = colour.photo_colour_for(self.painting_colour)

    def pairs(self, grid):
        """(photo, painted) per row of a preview grid."""
        side = self.side
        return [
            (grid[top : top + side, :side], grid[top : top + side, side : 2 * side])
            for top in range(0, grid.shape[0] - side + 1, side)
        ]

    def __call__(self, grid):
        from clipmorph.model.color import ColourTreatment
        from clipmorph.training import colour

        pairs = self.pairs(grid)
        photos, painted = [p for p, _ in pairs], [q for _, q in pairs]
        treatment = ColourTreatment(self.keep, colour.gain_to_match(painted, photos, self.painting_colour, self.keep))
        treated = grid.copy()
        for row, (photo, picture) in enumerate(pairs):
            treated[row * self.side : (row + 1) * self.side, self.side : 2 * self.side] = treatment.apply(
                picture, photo
            )
        return treated


def run_job(folder: Path) -> int:
    """The child process: train, evaluate, save to the store, report."""
    from clipmorph.styles import store
    from clipmorph.training.config import StyleSource
    from clipmorph.training.trainer import train

    spec = StyleJobSpec(**json.loads((folder / SPEC_FILE).read_text()))
    job = Job(folder.name, folder, spec.mirror or None)
    source = StyleSource(
        spec.style_id,
        folder / spec.painting,
        metadata={
            "display_name": spec.display_name,
            "author": spec.author,
            "user_made": True,
            "created_at": spec.created_at,
            "preset": spec.preset,
        },
    )
    config = preset_config(
        source, spec.preset, [Path(c) for c in spec.content], spec.base, folder / "checkpoint",
        wandb=spec.wandb, wandb_dir=Path(spec.wandb_dir) if spec.wandb_dir else None,
    )  # fmt: skip
    job.write("running", step=0, steps=config.steps, phase="preparing")
    teacher = prepare_teacher(folder / "teacher", source, config.content, config.steps * config.batch_size)
    if teacher is not None:
        config = replace(config, teacher_dir=teacher, teacher_weight=TEACHER_WEIGHT)
    started = time.monotonic()
    job.write("running", step=0, steps=config.steps)
    in_colour = PreviewColours(folder / spec.painting, config.image_size)
    last_grid = []  # the network's own colours: the thumbnail gets the calibrated treatment

    def on_progress(step: int, steps: int, losses: dict[str, float], grid) -> None:
        if grid is not None:
            last_grid[:] = [grid]
            _save_preview(job, in_colour(grid))
        elapsed = time.monotonic() - started
        eta = elapsed / step * (steps - step) if step else None
        shown = {k: round(v, 2) for k, v in losses.items() if "/" not in k}
        fields = {"step": step, "steps": steps, "losses": shown, "eta_seconds": eta and round(eta, 1)}
        if (job.folder / PREVIEW_FILE).exists():
            fields["preview_url"] = f"/jobs/{job.id}/preview?step={step}"
        job.write("running", **fields)

    try:
        result = train(config, progress=on_progress, should_stop=lambda: job.cancel_requested, show_bar=False)
    except Exception as error:
        job.write("failed", error=without_paths(str(error)))
        raise
    if not result.finished:
        finish_cancelled(job)
        return 0
    job.write("running", step=result.step, steps=config.steps, eta_seconds=0, phase="evaluating")
    library = calibrated_colour(result.library, spec, folder / spec.painting)
    style = library.styles[spec.style_id]
    style.metadata["evaluation"] = quick_evaluation(library, spec, folder / spec.painting)
    style.thumbnail = _thumbnail(in_colour.pairs(last_grid[0]), style.metadata) if last_grid else None
    saved = store.save_style(style)
    outcome = {"style": spec.style_id, "tag": saved.tag, "steps": result.step, "seconds": round(result.seconds, 1)}
    if spec.models_url:
        outcome |= publish(spec.models_url)
    job.write(
        "succeeded",
        result=outcome,
        step=result.step,
        steps=config.steps,
        eta_seconds=0,
    )
    return 0


def prepare_teacher(root: Path, source, content: list[Path], images: int) -> Path | None:
    """The teacher's renderings of a few training photos in the new painting, or None (the style
    then trains on the Gram terms alone) where the arbitrary-style network is not fetched."""
    from clipmorph.inference.arbitrary import ArbitraryModelMissing
    from clipmorph.training.teacher import render_for

    photos = spread_photos(content, min(TEACHER_PHOTOS, images))
    try:
        render_for([source], photos, root, threads=1)
    except ArbitraryModelMissing as error:
        log.warning("style job without the teacher anchor: %s", error)
        return None
    return root


def publish(url: str) -> dict:
    """Push the new style to the bucket every replica serves from (their pollers pull it). A
    failed push leaves the style served here; the job says so instead of failing."""
    from clipmorph.styles import bucket

    try:
        bucket.push(url)
    except Exception as error:
        logging.getLogger(__name__).exception("could not push the new style to %s", url)
        return {"published": False, "publish_error": without_paths(f"not pushed to the models bucket: {error}")}
    return {"published": True}


def calibrated_colour(library, spec: StyleJobSpec, painting: Path):
    """The new style with its colour treatment measured on a few of its training photos, as the
    catalogue's styles are (clipmorph.training.colour): the subject keeps some of its colours."""
    from clipmorph.training import colour

    photos = spread_photos([Path(folder) for folder in spec.content], colour.CALIBRATION_PHOTOS)
    return colour.calibrate(library, {spec.style_id: painting}, photos)


def spread_photos(content: list[Path], count: int) -> list[Path]:
    """``count`` of the job's training photos, spread evenly over its content folders."""
    from clipmorph.training.data import find_images
    from clipmorph.training.teacher import spread

    return spread([path for folder in content for path in find_images(folder)], count)


def quick_evaluation(library, spec: StyleJobSpec, painting: Path) -> dict:
    """Style and content distances (``clipmorph eval``'s) on a few of the training photos."""
    from clipmorph.inference.engine import Engine
    from clipmorph.training.data import find_images
    from clipmorph.training.evaluate import EvalSettings, evaluate_library, scores_metadata
    from clipmorph.training.loss_network import load_vgg

    photos = [p for folder in spec.content for p in find_images(Path(folder))][:4]
    settings = EvalSettings(photo_side=256)
    paintings = {spec.style_id: painting}
    [score], run = evaluate_library(library, Engine(library), load_vgg(), photos, paintings, None, settings)
    return scores_metadata(score, run)


def _thumbnail(pairs, metadata: dict) -> bytes:
    """The first preview photo painted in the new style, with the style's calibrated colour
    treatment, as the engine will paint it."""
    from PIL import Image

    from clipmorph.inference import media
    from clipmorph.model.color import ColourTreatment

    photo, painted = pairs[0]
    return media.jpeg_tile(Image.fromarray(ColourTreatment.from_metadata(metadata).apply(painted, photo)))


if __name__ == "__main__":
    import os

    from clipmorph.serving.jobs.style_child import CHILD_STORE_VARIABLE
    from clipmorph.styles import index

    logging.basicConfig(level=logging.INFO)
    if store := os.environ.get(CHILD_STORE_VARIABLE):
        index.use_store(store)  # the parent's (a served bento's own store)
    sys.exit(run_job(Path(sys.argv[1])))
