"""The portable catalogue folder (``models/``): safetensors files plus ``manifest.json``.

This is what ships in the repository and what ``clipmorph styles export`` writes, so styles
move between machines and stores without BentoML's own export format. Every file is
checked against the sha256 in the manifest, and manifest paths cannot leave the folder.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from safetensors.torch import load_file, save_file

from clipmorph.errors import BadInput
from clipmorph.fsutil import atomic_write, sha256_file
from clipmorph.locations import Location, is_url, join, upload_folder
from clipmorph.model.network import NetworkSpec
from clipmorph.styles.library import Backbone, Style, StyleLibrary
from clipmorph.styles.names import validate_name

MANIFEST = "manifest.json"
FORMAT = "clipmorph-catalogue"
FORMAT_VERSION = 1


def _inside(folder: Path, relative: str) -> Path:
    """Resolve a manifest path, refusing anything that escapes the catalogue folder."""
    path = (folder / relative).resolve()
    if folder.resolve() not in path.parents:
        raise BadInput(f"catalogue path {relative!r} points outside {folder}")
    return path


def _checked(folder: Path, entry: dict) -> dict:
    path = _inside(folder, entry["file"])
    if not path.is_file():
        raise BadInput(f"catalogue file {entry['file']} is missing")
    if sha256_file(path) != entry["sha256"]:
        raise BadInput(f"catalogue file {entry['file']} does not match its sha256 in {MANIFEST}")
    return load_file(str(path))


def read_catalogue(folder: Path) -> StyleLibrary:
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise BadInput(f"{folder} is not a style catalogue: {MANIFEST} is missing")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as error:
        raise BadInput(f"{manifest_path} is not valid JSON: {error}") from error
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise BadInput(f"{manifest_path}: expected format {FORMAT} version {FORMAT_VERSION}")
    library = StyleLibrary()
    for entry in manifest.get("backbones", []):
        backbone = Backbone(
            entry["name"], NetworkSpec.from_dict(entry["spec"]), _checked(folder, entry), entry.get("metadata", {})
        )
        if backbone.version != entry["version"]:
            raise BadInput(f"backbone {entry['name']}: weights do not match version {entry['version']}")
        library.add_backbone(backbone)
    for entry in manifest.get("styles", []):
        thumbnail = None
        if "thumbnail" in entry:
            path = _inside(folder, entry["thumbnail"]["file"])
            if not path.is_file() or sha256_file(path) != entry["thumbnail"]["sha256"]:
                raise BadInput(f"catalogue thumbnail {entry['thumbnail']['file']} is missing or altered")
            thumbnail = path.read_bytes()
        style = Style(entry["id"], entry["backbone"], _checked(folder, entry), entry.get("metadata", {}), thumbnail)
        if style.version != entry["version"]:
            raise BadInput(f"style {entry['id']}: weights do not match version {entry['version']}")
        library.add_style(style)
    return library


def write_catalogue(library: StyleLibrary, folder: Path) -> Path:
    """Write (or overwrite) a catalogue folder holding exactly ``library``."""
    (folder / "backbones").mkdir(parents=True, exist_ok=True)
    (folder / "styles").mkdir(parents=True, exist_ok=True)
    manifest: dict = {"format": FORMAT, "format_version": FORMAT_VERSION, "backbones": [], "styles": []}
    for backbone in sorted(library.backbones.values(), key=lambda b: b.key):
        relative = f"backbones/{validate_name(backbone.name, 'backbone name')}-{backbone.version}.safetensors"
        save_file(backbone.state, str(folder / relative))
        manifest["backbones"].append(
            {
                "name": backbone.name,
                "version": backbone.version,
                "spec": backbone.spec.to_dict(),
                "file": relative,
                "sha256": sha256_file(folder / relative),
                "metadata": backbone.metadata,
            }
        )
    for style in sorted(library.styles.values(), key=lambda s: s.id):
        relative = f"styles/{validate_name(style.id)}.safetensors"
        save_file(style.params, str(folder / relative))
        entry = {
            "id": style.id,
            "version": style.version,
            "backbone": style.backbone,
            "file": relative,
            "sha256": sha256_file(folder / relative),
            "metadata": style.metadata,
        }
        if style.thumbnail:
            picture = folder / "thumbnails" / f"{style.id}.jpg"
            picture.parent.mkdir(exist_ok=True)
            picture.write_bytes(style.thumbnail)
            entry["thumbnail"] = {"file": f"thumbnails/{style.id}.jpg", "sha256": sha256_file(picture)}
        manifest["styles"].append(entry)
    atomic_write(folder / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
    return folder / MANIFEST


def export_catalogue(library: StyleLibrary, location: Location) -> Location:
    """``write_catalogue`` to a folder or a URL (s3://...): the manifest goes last, so a reader
    who finds it finds every file it names."""
    if not is_url(location):
        return write_catalogue(library, Path(location))
    with tempfile.TemporaryDirectory(prefix="clipmorph-export-") as folder:
        write_catalogue(library, Path(folder))
        upload_folder(Path(folder), location, last=MANIFEST)
    return join(location, MANIFEST)
