"""How a new style is trained on a frozen backbone: the presets of the "create a style" job
(measured on the catalogue backbone: see docs/service.md "Create your own style"), shared by the
service's job, the catalogue's refinements and the bench, so none of them reaches into another
layer for them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clipmorph.training.config import StyleSource, TrainConfig

PRESETS: dict[str, dict] = {
    "tiny": {"steps": 4, "image_size": 64, "style_size": 128, "batch_size": 2, "sample_every": 2},
    "fast": {"steps": 150, "image_size": 192, "style_size": 512, "batch_size": 4, "sample_every": 15},
    "best": {"steps": 300, "image_size": 256, "style_size": 512, "batch_size": 4, "sample_every": 25},
}
STYLE_LR = 0.02  # only the scale/shift vectors learn: they take a large step size well
# The teacher anchor of the catalogue (training/catalogue.toml's recipe): a new style keeps the
# photo's subject too, where the arbitrary-style network is fetched (the instant preview's).
TEACHER_WEIGHT = 3e6
TEACHER_PHOTOS = 48  # rendered before training (a few seconds), at most one per image trained on


def preset_config(
    source: StyleSource, preset: str, content: list[Path], base: str, checkpoint_dir: Path, **options
) -> TrainConfig:
    """The add-a-style training a creation job runs (also timed alone by the bench)."""
    from clipmorph.training.config import TrainConfig

    return TrainConfig(
        styles=[source],
        content=content,
        checkpoint_dir=checkpoint_dir,
        add_to=base,
        lr=STYLE_LR,
        workers=0,
        checkpoint_every=10**9,  # a job that stops is discarded, not resumed
        **PRESETS[preset] | options,
    )
