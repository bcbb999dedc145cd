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
    return state
