"""Styles and backbones in the BentoML model store (``$BENTOML_HOME/models``).

Each backbone and each style is its own store model, labelled ``clipmorph.kind`` so that
other models in the same store are left alone. Versions are content hashes: saving what is
already there does nothing, which makes ``clipmorph styles import`` idempotent.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import bentoml
from bentoml.exceptions import NotFound
from safetensors.torch import load_file, save_file

from clipmorph.errors import BadInput, UnknownStyle
from clipmorph.model.network import NetworkSpec
from clipmorph.styles.library import Backbone, Style, StyleLibrary

KIND_LABEL = "clipmorph.kind"
BACKBONE_LABEL = "clipmorph.backbone"
STYLE_PREFIX = "clipmorph-style-"
BACKBONE_PREFIX = "clipmorph-backbone-"
WEIGHTS_FILE = "weights.safetensors"
THUMBNAIL_FILE = "thumbnail.jpg"
STAMP_FILE = "clipmorph-styles.stamp"


def stamp_path() -> Path:
    """A file touched whenever styles are added or deleted: running services watch it
    (one stat per batch) to serve new styles without a restart."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    return Path(BentoMLContainer.bentoml_home.get()) / STAMP_FILE


def styles_changed() -> None:
    path = stamp_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{time.time_ns()} {os.getpid()}\n")


def styles_generation() -> int:
    """Changes whenever ``styles_changed`` runs (0 before the first change)."""
    try:
        return stamp_path().stat().st_mtime_ns
    except FileNotFoundError:
        return 0


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
    tag = f"{BACKBONE_PREFIX}{backbone.name}:{backbone.version}"
    if _exists(tag):
        return SaveResult(tag, False)
    metadata = _storable({"name": backbone.name, "spec": backbone.spec.to_dict(), **backbone.metadata})
    with bentoml.models.create(tag, labels={KIND_LABEL: "backbone"}, metadata=metadata) as model:
        save_file(backbone.state, model.path_of(WEIGHTS_FILE))
    return SaveResult(tag, True)


def save_style(style: Style) -> SaveResult:
    """Store a style (with its JPEG thumbnail when it has one: the web gallery shows it)."""
    tag = f"{STYLE_PREFIX}{style.id}:{style.version}"
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


def style_models() -> dict[str, bentoml.Model]:
    """The newest store model of every style id."""
    newest: dict[str, bentoml.Model] = {}
    for model in bentoml.models.list():
        if model.info.labels.get(KIND_LABEL) != "style":
            continue
        style_id = model.tag.name.removeprefix(STYLE_PREFIX)
        if style_id not in newest or model.creation_time > newest[style_id].creation_time:
            newest[style_id] = model
    return newest


def load_library(style_ids: list[str] | None = None) -> StyleLibrary:
    """Load styles (all, or the named ones) with the backbones they need."""
    models = style_models()
    wanted = style_ids if style_ids is not None else sorted(models)
    library = StyleLibrary()
    for style_id in wanted:
        if style_id not in models:
            raise UnknownStyle(style_id, list(models))
        model = models[style_id]
        meta = dict(model.info.metadata)
        backbone_key = str(meta["backbone"]).removeprefix(BACKBONE_PREFIX)
        if backbone_key not in library.backbones:
            library.add_backbone(_load_backbone(f"{BACKBONE_PREFIX}{backbone_key}"))
        thumbnail = Path(model.path_of(THUMBNAIL_FILE))
        params = load_file(model.path_of(WEIGHTS_FILE))
        picture = thumbnail.read_bytes() if thumbnail.is_file() else None
        library.add_style(Style(style_id, backbone_key, params, _plain(meta), picture))
    return library


def served_tags() -> list[str]:
    """Tags of the newest version of every style and of the backbones they use."""
    tags: list[str] = []
    for model in style_models().values():
        backbone = str(model.info.metadata["backbone"])
        if backbone not in tags:
            tags.append(backbone)
        tags.append(str(model.tag))
    return tags


def describe_styles() -> list[dict]:
    """What ``clipmorph styles list`` shows: one entry per style id, newest version."""
    rows = []
    for style_id, model in sorted(style_models().items()):
        meta = dict(model.info.metadata)
        rows.append(
            {
                "id": style_id,
                "display_name": meta.get("display_name", style_id),
                "tag": str(model.tag),
                "backbone": meta.get("backbone"),
                "style_image_sha256": meta.get("style_image_sha256"),
                "artist": meta.get("artist"),
                "title": meta.get("title"),
                "year": meta.get("year"),
                "created": model.creation_time.isoformat(),
                "size_bytes": Path(model.path_of(WEIGHTS_FILE)).stat().st_size,
            }
        )
    return rows


def thumbnail_path(style_id: str) -> Path | None:
    """The stored thumbnail of a style (trained styles carry one), if any."""
    model = style_models().get(style_id)
    if model is None:
        return None
    path = Path(model.path_of(THUMBNAIL_FILE))
    return path if path.is_file() else None


def delete_style(style_id: str, user_made_only: bool = False) -> list[str]:
    """Delete every stored version of a style (its backbone stays: other styles may use it).
    ``user_made_only`` refuses styles that were not created through the service."""
    try:
        models = [
            m for m in bentoml.models.list(f"{STYLE_PREFIX}{style_id}") if m.info.labels.get(KIND_LABEL) == "style"
        ]
    except NotFound:
        models = []
    if not models:
        raise UnknownStyle(style_id, list(style_models()))
    if user_made_only and not all(m.info.metadata.get("user_made") for m in models):
        raise BadInput(f"style {style_id!r} belongs to the catalogue and cannot be deleted here", "protected")
    for model in models:
        bentoml.models.delete(model.tag)
    styles_changed()
    return [str(m.tag) for m in models]


def backbone_library(reference: str) -> StyleLibrary:
    """A backbone and all its stored styles, named by a style id on it, a backbone name
    (newest version) or ``name:version``: what adding a style to an existing backbone starts from."""
    models = style_models()
    if reference in models:
        key = str(models[reference].info.metadata["backbone"]).removeprefix(BACKBONE_PREFIX)
    else:
        try:
            model = bentoml.models.get(f"{BACKBONE_PREFIX}{reference}")
        except NotFound:
            raise UnknownStyle(reference, list(models)) from None
        if model.info.labels.get(KIND_LABEL) != "backbone":
            raise UnknownStyle(reference, list(models))
        key = str(model.tag).removeprefix(BACKBONE_PREFIX)
    library = StyleLibrary()
    library.add_backbone(_load_backbone(f"{BACKBONE_PREFIX}{key}"))
    on_backbone = [s for s, m in models.items() if str(m.info.metadata["backbone"]) == f"{BACKBONE_PREFIX}{key}"]
    if on_backbone:
        library.merge(load_library(on_backbone))
    return library
