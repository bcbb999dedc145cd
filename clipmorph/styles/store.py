"""Styles and backbones in the BentoML model store (``$BENTOML_HOME/models``).

Each backbone and each style is its own store model, labelled ``clipmorph.kind`` so that
other models in the same store are left alone. Versions are content hashes: saving what is
already there does nothing, which makes ``clipmorph styles import`` idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import bentoml
from bentoml.exceptions import NotFound
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from clipmorph.errors import UnknownStyle
from clipmorph.model.network import NetworkSpec
from clipmorph.styles.index import (
    BACKBONE_LABEL,
    BACKBONE_PREFIX,
    GONE,
    KIND_LABEL,
    THUMBNAIL_FILE,
    WEIGHTS_FILE,
    backbone_key,
    backbone_tag,
    newest_version,
    style_models,
    style_tag,
    styles_changed,
)
from clipmorph.styles.library import Backbone, Style, StyleLibrary


@dataclass(frozen=True)
class SaveResult:
    tag: str
    created: bool  # False when that exact version was already in the store


def _exists(tag: str) -> bool:
    try:
        bentoml.models.get(tag)
    except NotFound:
        return False
    return True


def _storable(value):
    """BentoML metadata takes basic types only: drop None values (at any depth)."""
    if isinstance(value, dict):
        return {str(k): _storable(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_storable(v) for v in value if v is not None]
    return value


def save_backbone(backbone: Backbone) -> SaveResult:
    tag = backbone_tag(backbone.name, backbone.version)
    if _exists(tag):
        return SaveResult(tag, False)
    metadata = _storable({"name": backbone.name, "spec": backbone.spec.to_dict(), **backbone.metadata})
    with bentoml.models.create(tag, labels={KIND_LABEL: "backbone"}, metadata=metadata) as model:
        save_file(backbone.state, model.path_of(WEIGHTS_FILE))
    return SaveResult(tag, True)


def save_style(style: Style) -> SaveResult:
    """Store a style (with its JPEG thumbnail when it has one: the web gallery shows it)."""
    tag = style_tag(style.id, style.version)
    if _exists(tag):
        return SaveResult(tag, False)
    labels = {KIND_LABEL: "style", BACKBONE_LABEL: style.backbone.replace(":", "-")}
    metadata = _storable({**style.metadata, "id": style.id, "backbone": f"{BACKBONE_PREFIX}{style.backbone}"})
    with bentoml.models.create(tag, labels=labels, metadata=metadata) as model:
        save_file(style.params, model.path_of(WEIGHTS_FILE))
        if style.thumbnail:
            Path(model.path_of(THUMBNAIL_FILE)).write_bytes(style.thumbnail)
    styles_changed()
    return SaveResult(tag, True)


def save_library(library: StyleLibrary) -> list[SaveResult]:
    """Backbones first, so a style never points at a backbone the store lacks."""
    results = [save_backbone(b) for b in library.backbones.values()]
    return results + [save_style(s) for s in library.styles.values()]


def _plain(metadata: dict) -> dict:
    """Store metadata comes back as BentoML's own types; keep the user's keys as plain data."""
    return {k: v for k, v in dict(metadata).items() if k not in ("id", "backbone", "name", "spec")}


def _load_backbone(tag: str) -> Backbone:
    model = bentoml.models.get(tag)
    meta = dict(model.info.metadata)
    return Backbone(
        meta["name"], NetworkSpec.from_dict(meta["spec"]), load_file(model.path_of(WEIGHTS_FILE)), _plain(meta)
    )


def load_library(style_ids: list[str] | None = None) -> StyleLibrary:
    """Load styles (all, or the named ones) with the backbones they need. Named styles are read
    from their own store entries (a whole-store listing parses every model's YAML: seconds on a
    catalogue, paid by every CLI run before its first frame)."""
    if style_ids is None:
        models = style_models()
        wanted = sorted(models)
    else:
        models = {s: m for s in dict.fromkeys(style_ids) if (m := newest_version(s)) is not None}
        wanted = style_ids
    library = StyleLibrary()
    for style_id in wanted:
        if style_id not in models:
            raise UnknownStyle(style_id, list(style_models()))
        try:
            style, backbone = _load_style(style_id, models[style_id], library)
        except (*GONE, SafetensorError):
            if style_ids is not None:  # asked for by name: it is gone now
                raise UnknownStyle(style_id, [s for s in style_models() if s != style_id]) from None
            continue  # deleted by another process while the others load: serve those
        if backbone is not None:
            library.add_backbone(backbone)
        library.add_style(style)
    return library


def _load_style(style_id: str, model: bentoml.Model, library: StyleLibrary) -> tuple[Style, Backbone | None]:
    """A stored style, and its backbone when ``library`` does not hold it yet."""
    meta = dict(model.info.metadata)
    backbone_ref = str(meta["backbone"]).removeprefix(BACKBONE_PREFIX)
    backbone = None
    if backbone_ref not in library.backbones:
        backbone = _load_backbone(f"{BACKBONE_PREFIX}{backbone_ref}")
    thumbnail = Path(model.path_of(THUMBNAIL_FILE))
    params = load_file(model.path_of(WEIGHTS_FILE))
    picture = thumbnail.read_bytes() if thumbnail.is_file() else None
    return Style(style_id, backbone_ref, params, _plain(meta), picture), backbone


def backbone_library(reference: str) -> StyleLibrary:
    """A backbone and all its stored styles, named by a style id on it, a backbone name
    (newest version) or ``name:version``: what adding a style to an existing backbone starts from."""
    models = style_models()
    key = backbone_key(reference)
    library = StyleLibrary()
    library.add_backbone(_load_backbone(f"{BACKBONE_PREFIX}{key}"))
    on_backbone = [s for s, m in models.items() if str(m.info.metadata["backbone"]) == f"{BACKBONE_PREFIX}{key}"]
    if on_backbone:
        library.merge(load_library(on_backbone))
    return library
