"""Distillation: teach a smaller backbone (e.g. ``lite``) to copy a trained one, style by style.

The student sees the same photos and style rows as the teacher and matches the teacher's
output in pixels and in VGG relu2_2 features. No Gram targets, no temporal passes: per step
it is several times cheaper than training the student on the perceptual losses directly,
and it inherits the teacher's stability.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from clipmorph.inference.engine import pick_device, pick_dtype
from clipmorph.model.network import WIDTHS, TransformerNet, build_network
from clipmorph.styles.library import Style, StyleLibrary
from clipmorph.training.data import RandomCrops, SampleStream, find_images
from clipmorph.training.loss_network import load_vgg
from clipmorph.training.record import describe_device

FEATURE_LAYER = "relu2_2"


@dataclass
class DistillResult:
    library: StyleLibrary
    steps: int
    seconds: float
    loss: float


def distill(
    teacher_library: StyleLibrary,
    content: list[Path],
    width: str = "lite",
    name: str | None = None,
    steps: int = 2000,
    batch_size: int = 4,
    image_size: int = 192,
    lr: float = 1e-3,
    feature_weight: float = 2e-5,
    max_minutes: float | None = None,
    seed: int = 0,
    device: str = "auto",
    workers: int = 1,
    start: StyleLibrary | None = None,
) -> DistillResult:
    """Train a ``width`` student of the (single) backbone in ``teacher_library``; ``start``: an
    earlier student of the same styles (a shipped lite catalogue) to go on from, when it fits."""
    (backbone,) = teacher_library.backbones.values()
    styles = teacher_library.styles_of(backbone.key)
    torch.manual_seed(seed)
    target = pick_device(device)
    amp = pick_dtype(target, "auto")
    teacher = build_network(backbone.spec, backbone.state, [s.params for s in styles]).to(target).eval()
    teacher.requires_grad_(False)
    # the student takes the teacher's normalisation, only narrower
    spec = WIDTHS[width].with_norm(backbone.spec.norm)
    earlier = earlier_student(start, spec, [s.id for s in styles])
    student = (earlier[0] if earlier else TransformerNet(spec, len(styles))).to(target)
    vgg = load_vgg().to(target)
    optimizer = torch.optim.Adam(student.parameters(), lr=lr)
    paths = [p for folder in content for p in find_images(folder)]
    loader = DataLoader(
        RandomCrops(paths, image_size, seed=seed), batch_size=batch_size, sampler=SampleStream(), num_workers=workers
    )
    started = time.monotonic()
    step, smoothed = 0, None
    for batch in loader:
        if step >= steps or (max_minutes and time.monotonic() - started > max_minutes * 60):
            break
        x = batch.to(target)
        rows = torch.arange(step * batch_size, step * batch_size + x.shape[0], device=target) % len(styles)
        with torch.autocast(target.type, dtype=amp, enabled=amp != torch.float32):
            with torch.no_grad():
                wanted = teacher(x, rows)
                wanted_feats = vgg(wanted, [FEATURE_LAYER])[FEATURE_LAYER]
            got = student(x, rows)
            got_feats = vgg(got, [FEATURE_LAYER])[FEATURE_LAYER]
        loss = F.l1_loss(got.float(), wanted.float()) + feature_weight * F.mse_loss(
            got_feats.float(), wanted_feats.float()
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        value = float(loss.detach())
        smoothed = value if smoothed is None else 0.95 * smoothed + 0.05 * value
    seconds = time.monotonic() - started
    student = copy.deepcopy(student).float().cpu().eval()
    trained = {
        "mode": "distilled",
        "teacher": backbone.key,
        "steps": step,
        "seconds": round(seconds, 1),
        "device": describe_device(target),
        "image_size": image_size,
        "batch_size": batch_size,
        "width": width,
        "final_loss": round(smoothed or float("nan"), 5),
    }
    if earlier:
        trained["continued_from_steps"] = earlier[1]
        trained["total_steps"] = earlier[1] + step
    # The student's own record (its steps, device); how the teacher was trained stays beside it.
    metas = [{**s.metadata, "training": trained | {"teacher_training": s.metadata.get("training", {})}} for s in styles]
    library = StyleLibrary.from_network(
        student, name or f"{backbone.name}-{width}", [s.id for s in styles], {"training": trained}, metas
    )
    return DistillResult(library, step, seconds, smoothed or float("nan"))


def earlier_student(start: StyleLibrary | None, spec, style_ids: list[str]) -> tuple[TransformerNet, int] | None:
    """The network of an earlier student with this shape and these styles (by their full ids),
    and its steps; None when there is none that fits."""
    if start is None or len(start.backbones) != 1:
        return None
    (backbone,) = start.backbones.values()
    by_full_id = {s.metadata.get("full_id", s.id): s for s in start.styles_of(backbone.key)}
    if backbone.spec != spec or not all(i in by_full_id for i in style_ids):
        print(f"not continuing from {backbone.name}: its shape or styles differ", flush=True)
        return None
    net = build_network(spec, backbone.state, [by_full_id[i].params for i in style_ids])
    record = backbone.metadata.get("training", {})
    return net, int(record.get("total_steps", record.get("steps", 0)))


def rename_styles(library: StyleLibrary, suffix: str) -> StyleLibrary:
    """The same styles under ids with ``suffix`` (so full and lite versions can sit side by side)."""
    renamed = StyleLibrary()
    for backbone in library.backbones.values():
        renamed.add_backbone(backbone)
    for style in library.styles.values():
        meta = style.metadata | {"display_name": f"{style.display_name} ({suffix.strip('-')})", "full_id": style.id}
        renamed.add_style(Style(f"{style.id}{suffix}", style.backbone, style.params, meta))
    return renamed


def plain_ids(library: StyleLibrary, suffix: str) -> StyleLibrary:
    """``rename_styles`` undone: the styles under their full ids again (to train them by those)."""
    plain = StyleLibrary()
    for backbone in library.backbones.values():
        plain.add_backbone(backbone)
    shown = f" ({suffix.strip('-')})"
    for style in library.styles.values():
        meta = {k: v for k, v in style.metadata.items() if k != "full_id"}
        if isinstance(meta.get("display_name"), str):
            meta["display_name"] = meta["display_name"].removesuffix(shown)
        plain.add_style(
            Style(
                style.metadata.get("full_id", style.id.removesuffix(suffix)),
                style.backbone,
                style.params,
                meta,
                style.thumbnail,
            )
        )
    return plain
