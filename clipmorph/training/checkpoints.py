"""A run's checkpoint: everything needed to resume it exactly (weights, optimiser, step, the
smoothed losses, the W&B run), written atomically so a crash never spoils the previous one.
The folder may be a URL (``s3://bucket/run``): a pod that is preempted resumes from the bucket."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from clipmorph import locations
from clipmorph.errors import BadInput
from clipmorph.locations import Location
from clipmorph.training.config import TrainConfig
from clipmorph.training.penalties import PENALTY_SETTINGS

CHECKPOINT_FILE = "checkpoint.pt"
CHECKPOINT_FORMAT = 1


def checkpoint_path(config: TrainConfig) -> Location:
    return locations.join(config.checkpoint_dir, CHECKPOINT_FILE)


def has_checkpoint(config: TrainConfig) -> bool:
    return locations.exists(checkpoint_path(config))


def save_checkpoint(config: TrainConfig, **state) -> Location:
    """``state``: step, seconds, averages, model, optimizer, wandb_id, earlier."""
    target = checkpoint_path(config)
    with tempfile.TemporaryDirectory(prefix="clipmorph-checkpoint-") as folder:
        local = Path(folder) / CHECKPOINT_FILE
        torch.save({"format": CHECKPOINT_FORMAT, "config": config.to_dict(), **state}, local)
        return locations.upload(local, target)


def load_checkpoint(config: TrainConfig, device: torch.device) -> dict:
    """The saved state, after checking that it belongs to a run like ``config``."""
    path = checkpoint_path(config)
    with locations.fetched(path) as local:
        state = torch.load(local, map_location=device, weights_only=False)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise BadInput(f"{path} is not a clipmorph checkpoint of format {CHECKPOINT_FORMAT}")
    saved, mine = state["config"], config.to_dict()
    for key in ("width", "add_to", "backbone_name"):
        if saved[key] != mine[key]:
            raise BadInput(f"checkpoint was trained with {key}={saved[key]!r}, not {mine[key]!r}")
    if [s["id"] for s in saved["styles"]] != [s.id for s in config.styles]:
        raise BadInput("checkpoint holds different styles: " + ", ".join(s["id"] for s in saved["styles"]))
    changed = objective_changes(saved, mine)
    if changed:
        raise BadInput(
            f"checkpoint {path} was trained with other loss settings ({'; '.join(changed)}): resume with "
            "the same settings, or move the checkpoint's folder away to start again"
        )
    return state


# What the loss is made of: a run resumed with other values would go on with a different objective
# and record the new values for weights trained mostly under the old ones. Steps, minutes, the
# learning rate and the machine may change between chunks.
OBJECTIVE_SETTINGS = (
    "image_size", "style_size", "coarse_scales", "any_direction", "content_weight", "style_weight", "tv_weight",
    "noise_weight", "noise_sigma", "warp_weight", "spot_weight", "teacher_weight", *PENALTY_SETTINGS,
)  # fmt: skip
STYLE_OBJECTIVE_SETTINGS = (
    "style_weight", "temporal_weight", "teacher_weight", "style_size", "coarse_scales", "any_direction",
    *PENALTY_SETTINGS,
)  # fmt: skip


def objective_changes(saved: dict, mine: dict) -> list[str]:
    """``key: saved -> mine`` for each loss setting of two run configs (``TrainConfig.to_dict``) that
    differs; settings an older checkpoint did not record are not compared."""

    def differences(old: dict, new: dict, keys: tuple[str, ...], prefix: str = "") -> list[str]:
        return [f"{prefix}{k}: {old[k]!r} -> {new[k]!r}" for k in keys if k in old and _differ(old[k], new.get(k))]

    changed = differences(saved, mine, OBJECTIVE_SETTINGS)
    for old, new in zip(saved["styles"], mine["styles"], strict=True):
        changed += differences(old, new, STYLE_OBJECTIVE_SETTINGS, f"{new['id']} ")
    return changed


def _differ(a, b) -> bool:
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return list(a) != list(b)
    return a != b
