"""What the model store holds, read from its labels and metadata alone (no weights, no torch).

The API workers list, describe and delete styles and watch for new ones; only the model
workers and the training code load weights (``clipmorph.styles.store``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import bentoml
from bentoml.exceptions import BentoMLException, NotFound

from clipmorph.errors import BadInput, UnknownStyle

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


# What reading a model raises while another process deletes it (``shutil.rmtree`` may take its
# model.yaml first: BentoML then refuses to read it, and refuses a whole listing that meets it)
# or is still writing it. Such a model is answered as absent, never as an error.
GONE = (FileNotFoundError, BentoMLException)  # NotFound is a BentoMLException


def stored_model(tag: str) -> bentoml.Model | None:
    """The store model of ``tag`` (``name:version`` or ``name:latest``), or None."""
    try:
        return bentoml.models.get(tag)
    except GONE:
        return None


def list_models(name: str | None = None) -> list[bentoml.Model]:
    """``bentoml.models.list()`` (of one model name, or all), leaving out a model that another
    process deletes or writes meanwhile instead of failing the whole listing."""
    try:
        return bentoml.models.list(name) if name else bentoml.models.list()
    except NotFound:
        return []
    except GONE:
        pass  # one model is mid-change: read the others one by one
    root = store_folder()
    names = [name] if name else sorted(folder.name for folder in root.iterdir() if folder.is_dir())
    models = []
    for model_name in names:
        folder = root / model_name
        versions = sorted(v.name for v in folder.iterdir() if v.is_dir()) if folder.is_dir() else []
        for version in versions:
            model = stored_model(f"{model_name}:{version}")
            if model is not None:
                models.append(model)
    return models


def store_folder() -> Path:
    """The model store this process reads: BENTOML_HOME's, or a served bento's own (in a
    container, the bento's ``models/``). A child process must be told (``use_store``)."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    return Path(BentoMLContainer.model_store.get()._path)  # BentoML exposes no public path


def use_store(folder: str | os.PathLike) -> None:
    """Read and write the model store at ``folder`` from now on, as the parent service does."""
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models.model import ModelStore

    BentoMLContainer.model_store.set(ModelStore(folder))


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


def style_models() -> dict[str, bentoml.Model]:
    """The newest store model of every style id."""
    newest: dict[str, bentoml.Model] = {}
    for model in list_models():
        if model.info.labels.get(KIND_LABEL) != "style":
            continue
        style_id = model.tag.name.removeprefix(STYLE_PREFIX)
        if style_id not in newest or model.creation_time > newest[style_id].creation_time:
            newest[style_id] = model
    return newest


def backbone_tag(name: str, version: str) -> str:
    """A backbone's store tag: the one naming rule, for saving and for naming what a bento packs."""
    return f"{BACKBONE_PREFIX}{name}:{version}"


def style_tag(style_id: str, version: str) -> str:
    """A style's store tag (see ``backbone_tag``)."""
    return f"{STYLE_PREFIX}{style_id}:{version}"


def catalogue_tags(manifest_path: str | os.PathLike) -> list[str]:
    """The store tags of a catalogue folder's backbones and styles (``models/manifest.json``):
    versions are content hashes, so these name exactly the weights the folder holds."""
    import json

    manifest = json.loads(Path(manifest_path).read_text())
    backbones = [backbone_tag(entry["name"], entry["version"]) for entry in manifest["backbones"]]
    return backbones + [style_tag(entry["id"], entry["version"]) for entry in manifest["styles"]]


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
    """What ``clipmorph styles list`` shows: one entry per style id, newest version. A style
    deleted while it is listed (by another process: a delete, a pull of a withdrawn style) is
    left out, not an error."""
    rows = []
    for style_id, model in sorted(style_models().items()):
        try:
            rows.append(_describe(style_id, model))
        except GONE:
            continue
    return rows


def _describe(style_id: str, model: bentoml.Model) -> dict:
    meta = dict(model.info.metadata)
    return {
        "id": style_id,
        "display_name": meta.get("display_name", style_id),
        "tag": str(model.tag),
        "backbone": meta.get("backbone"),
        "style_image_sha256": meta.get("style_image_sha256"),
        "artist": meta.get("artist"),
        "title": meta.get("title"),
        "year": meta.get("year"),
        "colour": meta.get("colour"),  # the photo's colour share and the chroma gain (clipmorph.model.color)
        "created": model.creation_time.isoformat(),
        "size_bytes": Path(model.path_of(WEIGHTS_FILE)).stat().st_size,
    }


def thumbnail_path(style_id: str) -> Path | None:
    """The stored thumbnail of a style (trained styles carry one), if any. Reads that style's
    versions only: a page asks for every tile at once, and listing the whole store per tile
    took 0.7 to 2 s each on a 2-core machine."""
    model = newest_version(style_id)
    if model is None:
        return None
    path = Path(model.path_of(THUMBNAIL_FILE))
    return path if path.is_file() else None


def delete_style(style_id: str, user_made_only: bool = False) -> list[str]:
    """Delete every stored version of a style (its backbone stays: other styles may use it).
    ``user_made_only`` refuses styles that were not created through the service."""
    models = _deletable(style_id, user_made_only)
    for model in models:
        bentoml.models.delete(model.tag)
    styles_changed()
    return [str(m.tag) for m in models]


def style_versions(style_id: str, user_made_only: bool = False) -> list[str]:
    """The tags ``delete_style`` would delete (UnknownStyle, or BadInput when protected)."""
    return [str(m.tag) for m in _deletable(style_id, user_made_only)]


def _deletable(style_id: str, user_made_only: bool) -> list[bentoml.Model]:
    models = _versions_of(style_id)
    if not models:
        raise UnknownStyle(style_id, list(style_models()))
    if user_made_only and not all(m.info.metadata.get("user_made") for m in models):
        raise BadInput(f"style {style_id!r} belongs to the catalogue and cannot be deleted here", "protected")
    return models


def backbone_key(reference: str) -> str:
    """``name:version`` of the backbone that a style id, a backbone name (newest version) or a
    ``name:version`` names; UnknownStyle when there is none."""
    models = style_models()
    if reference in models:
        return str(models[reference].info.metadata["backbone"]).removeprefix(BACKBONE_PREFIX)
    model = stored_model(f"{BACKBONE_PREFIX}{reference}")
    if model is None or model.info.labels.get(KIND_LABEL) != "backbone":
        raise UnknownStyle(reference, list(models))
    return str(model.tag).removeprefix(BACKBONE_PREFIX)


_backbone_of: tuple[int, dict[str, str]] = (-1, {})


def backbone_of() -> dict[str, str]:
    """Style id -> its backbone's store tag, re-read only when the styles change."""
    global _backbone_of
    generation = styles_generation()
    if _backbone_of[0] != generation:
        _backbone_of = (generation, {sid: str(m.info.metadata["backbone"]) for sid, m in style_models().items()})
    return _backbone_of[1]


def newest_version(style_id: str) -> bentoml.Model | None:
    """The newest store model of one style (as ``style_models`` would give it), or None, read
    from that style's own versions: a CLI run or a thumbnail does not parse the whole store.
    A name that no style can have is None before it reaches BentoML (which would read a colon
    as a version, lowercase capitals and refuse spaces)."""
    from clipmorph.styles.names import NAME_PATTERN

    if not NAME_PATTERN.match(style_id):
        return None
    versions = _versions_of(style_id)
    return max(versions, key=lambda m: m.creation_time) if versions else None


def _versions_of(style_id: str) -> list[bentoml.Model]:
    """Every stored version of one style: its own name in the store, not the whole listing."""
    return [m for m in list_models(f"{STYLE_PREFIX}{style_id}") if m.info.labels.get(KIND_LABEL) == "style"]
