"""The model store in a bucket (or any fsspec URL): push what the local store holds, pull what
it lacks, so that images and replicas carry no weights of their own.

Layout under the URL: each backbone and style as BentoML's own export
(``bentoml.models.export_model``), ``<model name>/<version>.bentomodel``, and ``index.json``
naming every export with its sha256, written last. Versions are content hashes, so pushing or
pulling what is already there does nothing. A pull checks each download against the index
before ``bentoml.models.import_model`` sees it, so a broken transfer leaves the store as it was
(models already imported are whole; the failed one is not there at all).

A style deleted through a service that serves the bucket is withdrawn: its entry moves to the
index's ``withdrawn`` list, pulls delete it from the stores that have it, and pushes skip it, so
no replica brings it back. (The index is read, changed and written whole: two replicas changing
it at the same instant can lose one change; S3 offers no lock to prevent that.)
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import bentoml
from bentoml.exceptions import BentoMLException

from clipmorph import locations
from clipmorph.errors import BadInput
from clipmorph.fsutil import sha256_file
from clipmorph.locations import Location
from clipmorph.styles import assets
from clipmorph.styles.index import KIND_LABEL, list_models, stored_model, styles_changed

INDEX = "index.json"
INDEX_FORMAT = "clipmorph-bucket"
# Pulled in this order: a style never arrives before its backbone.
KINDS = (*assets.KINDS.values(), "backbone", "style")


@dataclass(frozen=True)
class Transfer:
    tag: str
    copied: bool  # False: it was already there, or withdrawn
    withdrawn: bool = False  # the bucket withdrew it: a push skipped it, a pull deleted it here


def _stored(kind: str) -> list[str]:
    return sorted(str(m.tag) for m in list_models() if m.info.labels.get(KIND_LABEL) == kind)


def _in_store(tag: str) -> bool:
    return stored_model(tag) is not None


def read_index(url: Location) -> dict:
    """The bucket's index ({"models": {tag: {"kind", "file", "sha256"}}, "withdrawn": [tag]}),
    empty if there is none."""
    target = locations.join(url, INDEX)
    if not locations.exists(target):
        return {"format": INDEX_FORMAT, "models": {}, "withdrawn": []}
    with locations.fetched(target) as local:
        try:
            index = json.loads(local.read_text())
        except (OSError, ValueError) as error:
            raise BadInput(f"{target} is not a clipmorph bucket index: {error}") from None
    if index.get("format") != INDEX_FORMAT or not isinstance(index.get("models"), dict):
        raise BadInput(f"{target} is not a clipmorph bucket index")
    if not isinstance(index.setdefault("withdrawn", []), list):
        raise BadInput(f"{target} is not a clipmorph bucket index")
    return index


def _write_index(url: Location, index: dict) -> None:
    locations.put_bytes((json.dumps(index, indent=2, sort_keys=True) + "\n").encode(), locations.join(url, INDEX))


def push(url: Location) -> list[Transfer]:
    """Every backbone, style and training asset of the local store to ``url`` (what the bucket lacks)."""
    index = read_index(url)
    done = []
    with tempfile.TemporaryDirectory(prefix="clipmorph-push-") as folder:
        for kind in KINDS:
            for tag in _stored(kind):
                if tag in index["models"] or tag in index["withdrawn"]:
                    done.append(Transfer(tag, False, withdrawn=tag in index["withdrawn"]))
                    continue
                name, version = tag.split(":")
                local = Path(folder) / f"{version}.bentomodel"
                bentoml.models.export_model(tag, str(local))
                relative = f"{name}/{version}.bentomodel"
                locations.upload(local, locations.join(url, *relative.split("/")))
                index["models"][tag] = {"kind": kind, "file": relative, "sha256": sha256_file(local)}
                local.unlink()
                done.append(Transfer(tag, True))
        if any(t.copied for t in done):
            _write_index(url, index)
    return done


def withdraw(url: Location, tags: list[str]) -> list[str]:
    """Take styles out of the bucket for every replica: their entries move to ``withdrawn``
    (pulls delete them, pushes skip them) and their exports are removed. Returns the tags that
    were there."""
    index = read_index(url)
    there = [tag for tag in tags if tag in index["models"]]
    for tag in tags:
        entry = index["models"].pop(tag, None)
        if entry is not None and entry.get("kind") != "style":
            raise BadInput(f"{tag} is not a style: only styles are withdrawn")
        if tag not in index["withdrawn"]:
            index["withdrawn"].append(tag)
    _write_index(url, index)  # first: from now on no pull imports them
    for tag in there:
        name, version = tag.split(":")
        locations.remove(locations.join(url, name, f"{version}.bentomodel"))
    return there


def pull(url: Location) -> list[Transfer]:
    """Every model of the bucket's index that the local store lacks, each checked, then imported."""
    index = read_index(url)
    done = []
    entries = sorted(index["models"].items(), key=lambda item: (KINDS.index(item[1].get("kind", "style")), item[0]))
    for tag, entry in entries:
        if _in_store(tag):
            done.append(Transfer(tag, False))
            continue
        relative = str(entry.get("file", ""))
        if not relative or relative.startswith("/") or ".." in relative.split("/"):
            raise BadInput(f"the bucket index names a file outside the bucket: {relative!r}")
        with locations.fetched(locations.join(url, *relative.split("/"))) as local:
            if sha256_file(local) != entry.get("sha256"):
                raise BadInput(f"{tag} in {url} does not match its sha256 in the index: not imported")
            try:
                bentoml.models.import_model(str(local))
            except BentoMLException as error:
                if not _in_store(tag):  # another process of this service imported it meanwhile
                    raise BadInput(f"cannot import {tag} from {url}: {error}") from error
        done.append(Transfer(tag, True))
    for tag in index["withdrawn"]:
        model = stored_model(tag)
        if model is not None and model.info.labels.get(KIND_LABEL) == "style":
            bentoml.models.delete(tag)
            done.append(Transfer(tag, False, withdrawn=True))
    if any((t.copied and index["models"][t.tag].get("kind") == "style") or t.withdrawn for t in done):
        styles_changed()
    return done
