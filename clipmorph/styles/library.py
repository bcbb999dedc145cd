"""Styles and backbones as plain data: what the model store and the ``models/`` catalogue hold.

A *backbone* is the shared network weights plus its shape; a *style* is one row of every
conditional-instance-norm table of exactly one backbone version. Versions are content
hashes, so saving the same weights twice is a no-op everywhere.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import torch
from torch import Tensor

from clipmorph.errors import BadInput, UnknownStyle
from clipmorph.model.color import ColourTreatment
from clipmorph.model.network import NetworkSpec, TransformerNet
from clipmorph.styles.names import validate_name


def tensors_digest(tensors: dict[str, Tensor], extra: str = "") -> str:
    """A short content hash of named tensors (order independent), used as the version."""
    digest = hashlib.sha256(extra.encode())
    for key in sorted(tensors):
        value = tensors[key].detach().to("cpu", torch.float32).contiguous()
        digest.update(key.encode())
        digest.update(str(tuple(value.shape)).encode())
        digest.update(value.numpy().tobytes())
    return digest.hexdigest()[:16]


@dataclass
class Backbone:
    name: str
    spec: NetworkSpec
    state: dict[str, Tensor]
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_name(self.name, "backbone name")

    @property
    def version(self) -> str:
        return tensors_digest(self.state, extra=repr(self.spec.to_dict()))

    @property
    def key(self) -> str:
        """``name:version`` — what a style records as the backbone it belongs to."""
        return f"{self.name}:{self.version}"


@dataclass
class Style:
    id: str
    backbone: str  # Backbone.key
    params: dict[str, Tensor]
    metadata: dict = field(default_factory=dict)
    thumbnail: bytes | None = None  # JPEG for galleries; not part of the version

    def __post_init__(self) -> None:
        validate_name(self.id)

    @property
    def version(self) -> str:
        colour = ColourTreatment.from_metadata(self.metadata).version_text()  # it changes the pictures
        return tensors_digest(self.params, extra=self.backbone + colour)

    @property
    def display_name(self) -> str:
        return str(self.metadata.get("display_name") or self.id)


@dataclass
class StyleLibrary:
    """Backbones and the styles on them, as loaded from the store or a catalogue folder."""

    backbones: dict[str, Backbone] = field(default_factory=dict)
    styles: dict[str, Style] = field(default_factory=dict)

    def add_backbone(self, backbone: Backbone) -> None:
        self.backbones[backbone.key] = backbone

    def add_style(self, style: Style) -> None:
        if style.backbone not in self.backbones:
            raise BadInput(f"style {style.id!r} needs backbone {style.backbone}, which is not loaded")
        self.styles[style.id] = style

    def style(self, style_id: str) -> Style:
        try:
            return self.styles[style_id]
        except KeyError:
            raise UnknownStyle(style_id, list(self.styles)) from None

    def styles_of(self, backbone_key: str) -> list[Style]:
        """A backbone's styles in a stable order (their row order in the network)."""
        return sorted((s for s in self.styles.values() if s.backbone == backbone_key), key=lambda s: s.id)

    def only_backbone(self, name: str) -> StyleLibrary:
        """The backbone called ``name`` with its styles: the base that new styles go on."""
        found = [b for b in self.backbones.values() if b.name == name]
        if len(found) != 1:
            raise BadInput(f"{len(found)} backbones are called {name!r}; need exactly one")
        part = StyleLibrary()
        part.add_backbone(found[0])
        for style in self.styles_of(found[0].key):
            part.add_style(style)
        return part

    def merge(self, other: StyleLibrary) -> None:
        for backbone in other.backbones.values():
            self.add_backbone(backbone)
        for style in other.styles.values():
            self.add_style(style)

    @classmethod
    def from_network(
        cls,
        net: TransformerNet,
        backbone_name: str,
        style_ids: list[str],
        backbone_metadata: dict | None = None,
        style_metadata: list[dict] | None = None,
    ) -> StyleLibrary:
        """Split a (trained) network into one backbone and its styles, row i -> style_ids[i]."""
        if len(style_ids) != net.num_styles:
            raise ValueError(f"{net.num_styles} styles in the network but {len(style_ids)} ids given")
        library = cls()
        backbone = Backbone(backbone_name, net.spec, net.backbone_state(), dict(backbone_metadata or {}))
        library.add_backbone(backbone)
        metadata = style_metadata or [{} for _ in style_ids]
        for index, (style_id, meta) in enumerate(zip(style_ids, metadata, strict=True)):
            library.add_style(Style(style_id, backbone.key, net.style_state(index), dict(meta)))
        return library
