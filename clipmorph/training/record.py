"""Provenance: what a finished run hands back, as store-ready styles whose metadata says how
they were trained (steps, device, losses, weights, the runs they continued)."""

from __future__ import annotations

import copy
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import torch

from clipmorph.fsutil import sha256_file
from clipmorph.inference.options import dtype_name
from clipmorph.styles.library import Style, StyleLibrary
from clipmorph.training.config import StyleSource, TrainConfig
from clipmorph.training.distributed import World
from clipmorph.training.penalties import PENALTY_SETTINGS


class Trainer(Protocol):
    """What a record is made of: the state of a run (``clipmorph.training.trainer.Trainer``),
    named here so that the loop and its provenance do not import each other."""

    config: TrainConfig
    step: int
    seconds: float
    device: torch.device
    world: World
    amp_dtype: torch.dtype
    content_images: int
    earlier: dict | None
    started_from: str | None
    net: torch.nn.Module
    averages: dict[str, float]
    base: StyleLibrary | None
    style_records: dict[str, dict]


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({cpu_model()}, {torch.get_num_threads()} threads)"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def total_steps(training: dict) -> int:
    """All steps behind a training record, counting the runs it was continued from."""
    return training.get("total_steps", training["steps"])


def run_record(trainer: Trainer) -> dict:
    """How this run trained, with the record of the weights it started from."""
    cfg = trainer.config
    trained = {
        "mode": "add-style" if cfg.add_to else "from-scratch",
        "steps": trainer.step,
        "seconds": round(trainer.seconds, 1),
        "device": describe_device(trainer.device),
        "processes": trainer.world.size,  # data-parallel processes (torchrun), 1 alone
        "precision": dtype_name(trainer.amp_dtype),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "torch": str(torch.__version__),
        "content_images": trainer.content_images,
        **cfg.hyperparameters(),
    }
    if trainer.earlier:  # steps before this run count too; how they were trained stays on record
        trained["total_steps"] = total_steps(trainer.earlier) + trainer.step
        trained["started_from"] = {"catalogue": trainer.started_from, "training": trainer.earlier}
    return trained


def result_library(trainer: Trainer) -> StyleLibrary:
    """The trained styles (and new backbone) as store-ready data with full metadata."""
    cfg = trainer.config
    # A copy in plain layout on the CPU: safetensors stores contiguous tensors only.
    net = copy.deepcopy(trainer.net).float().cpu().to(memory_format=torch.contiguous_format)
    trained = run_record(trainer)
    averages = trainer.averages
    metas = []
    for source in cfg.styles:
        meta = {"display_name": source.id, **source.metadata}
        meta |= {
            "style_image": source.image.name,
            "style_image_sha256": sha256_file(source.image),
            **own_multipliers(source),
            # Each run on record keeps the style's own multipliers then (a refinement's differ).
            "training": style_record(trainer, source.id, trained | own_multipliers(source)),
            "final_losses": {
                "style": round(averages.get(f"style/{source.id}", float("nan")), 4),
                **{k: round(v, 4) for k, v in averages.items() if "/" not in k},
            },
        }
        metas.append(meta)
    if not cfg.add_to:
        backbone_meta = {"training": trained, "styles": [s.id for s in cfg.styles]}
        return StyleLibrary.from_network(net, cfg.backbone_name, [s.id for s in cfg.styles], backbone_meta, metas)
    library = StyleLibrary()
    (backbone,) = trainer.base.backbones.values()
    library.add_backbone(backbone)
    for row, (source, meta) in enumerate(zip(cfg.styles, metas, strict=True)):
        library.add_style(Style(source.id, backbone.key, net.style_state(row), meta))
    return library


def own_multipliers(source: StyleSource) -> dict:
    """The style's own multipliers of the run's style, temporal and teacher weights, and its own
    painting size, coarse style scales, stroke directions, penalty weights where it has them (they
    replace the run's in the style's record)."""
    own = {
        "style_loss_weight": source.style_weight,
        "temporal_loss_weight": source.temporal_weight,
        "teacher_loss_weight": source.teacher_weight,
    }
    if source.coarse_scales is not None:
        own["coarse_scales"] = list(source.coarse_scales)
    if source.any_direction is not None:
        own["any_direction"] = source.any_direction
    for setting in PENALTY_SETTINGS:
        if getattr(source, setting) is not None:
            own[setting] = getattr(source, setting)
    return own | ({"style_size": source.style_size} if source.style_size else {})


def style_record(trainer: Trainer, style_id: str, trained: dict) -> dict:
    """A style's own record: this run, continuing what its vectors went through before (a
    refinement on a frozen backbone, or the runs of the catalogue a new run started from)."""
    earlier = trainer.style_records.get(style_id)
    if earlier and "steps" in earlier:
        return trained | {
            "total_steps": total_steps(earlier) + trainer.step,
            "started_from": {"catalogue": trainer.started_from, "training": earlier},
        }
    return refined_record(trainer.base, style_id, trained, trainer.step)


def refined_record(base: StyleLibrary, style_id: str, trained: dict, steps: int) -> dict:
    """A re-learned style keeps the record of how it was trained before, as a resumed
    from-scratch run does; its steps count on from there."""
    known = base.styles.get(style_id)  # base holds styles only when adding to a backbone
    earlier = known.metadata.get("training") if known else None
    if not earlier or "steps" not in earlier:
        return trained
    return trained | {
        "mode": "refine",
        "total_steps": total_steps(earlier) + steps,
        "started_from": {"style": style_id, "training": earlier},
    }
