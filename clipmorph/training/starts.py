"""Where a run's weights start: a fresh backbone, an exported catalogue's weights (a new run
that goes on from them), or a frozen stored backbone whose new styles alone learn."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from clipmorph.errors import BadInput
from clipmorph.model.network import TransformerNet, build_network
from clipmorph.styles.library import StyleLibrary
from clipmorph.training.config import TrainConfig
from clipmorph.training.renorm import to_mean_norm


@dataclass
class Start:
    net: TransformerNet
    base: StyleLibrary  # the frozen backbone (and its styles) when adding styles, else empty
    earlier: dict | None = None  # training record of the weights the run started from (init_from)
    started_from: str | None = None  # where those weights were read
    style_records: dict[str, dict] = field(default_factory=dict)  # id -> how its vectors were trained before


def mean_style(styles: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """The average of styles' vectors: where a style new to a backbone starts."""
    return {k: torch.stack([p[k] for p in styles]).mean(0) for k in styles[0]}


def starting_network(config: TrainConfig, base: StyleLibrary | None = None) -> Start:
    """``base``: the backbone (and its styles) that ``config.add_to`` names, when the caller
    already holds it (a catalogue folder, say); else it is looked up in the store."""
    base = base or StyleLibrary()
    if config.init_from:
        return from_catalogue(config, config.init_from)
    if not config.add_to:
        return Start(TransformerNet(config.spec, len(config.styles)), base)
    if not base.backbones:
        from clipmorph.styles import store

        base = store.backbone_library(config.add_to)
    return Start(on_frozen_backbone(config, base), base)


def on_frozen_backbone(config: TrainConfig, base: StyleLibrary) -> TransformerNet:
    """The stored backbone with only the new styles' vectors trainable."""
    (backbone,) = base.backbones.values()
    existing = {s.id: s.params for s in base.styles.values()}
    if existing:
        # A style the backbone already has goes on from its own vectors (refining it, e.g.
        # with a stronger style weight, without touching the others); a new one starts from
        # the average of the backbone's styles: a neutral point between them.
        mean = mean_style(list(existing.values()))
        starts = [{k: v.float() for k, v in existing.get(s.id, mean).items()} for s in config.styles]
        net = build_network(backbone.spec, backbone.state, starts)
    else:
        net = TransformerNet(backbone.spec, len(config.styles))
        net.load_state_dict(backbone.state, strict=False)
    for name, param in net.named_parameters():
        param.requires_grad = name.endswith((".scale", ".shift"))
    return net


def from_catalogue(config: TrainConfig, folder: Path) -> Start:
    """Go on from exported weights (a new optimiser, possibly new loss weights): the
    backbone of this width, each style's vectors where the catalogue has that id."""
    from clipmorph.styles.catalogue import read_catalogue

    library = read_catalogue(folder)
    spec = config.spec  # the shape must match; the normalisation may change (see renorm)
    backbones = [b for b in library.backbones.values() if b.spec.with_norm(spec.norm) == spec]
    if len(backbones) != 1:
        raise BadInput(f"{folder} holds {len(backbones)} backbones of width {config.width}, need one")
    backbone = backbones[0]
    known = {s.id: s.params for s in library.styles.values() if s.backbone == backbone.key}
    if not known:
        raise BadInput(f"{folder}: backbone {backbone.name} has no styles")
    mean = mean_style(list(known.values()))
    params = [known.get(source.id, mean) for source in config.styles]
    net = build_network(backbone.spec, backbone.state, [{k: v.float() for k, v in p.items()} for p in params])
    if backbone.spec.norm != spec.norm:  # instance -> mean: the scales take the typical spreads
        net = to_mean_norm(net, renorm_photos(config), spec.norm)
    records = {s.id: s.metadata["training"] for s in library.styles_of(backbone.key) if "training" in s.metadata}
    return Start(net, StyleLibrary(), backbone.metadata.get("training"), str(folder), records)


def renorm_photos(config: TrainConfig, count: int = 16) -> Tensor:
    """Training crops (the first ``count`` samples of the run's own stream) to measure spreads on."""
    from clipmorph.training.data import RandomCrops, find_images

    crops = RandomCrops(
        [p for folder in config.content for p in find_images(folder)], config.image_size, seed=config.seed
    )
    return torch.stack([crops[i] for i in range(count)])
