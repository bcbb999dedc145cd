"""The model store in a bucket (or any fsspec URL): push what the local store holds, pull what
it lacks, so that images and replicas carry no weights of their own.

Layout under the URL: each backbone and style as BentoML's own export
(``bentoml.models.export_model``), ``<model name>/<version>.bentomodel``, and ``index.json``
naming every export with its sha256, written last. Versions are content hashes, so pushing or
pulling what is already there does nothing. A pull checks each download against the index
before ``bentoml.models.import_model`` sees it, so a broken transfer leaves the store as it was
(models already imported are whole; the failed one is not there at all).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import bentoml
from bentoml.exceptions import BentoMLException, NotFound

from clipmorph import locations
from clipmorph.errors import BadInput
from clipmorph.fsutil import sha256_file
from clipmorph.locations import Location
from clipmorph.styles import assets
from clipmorph.styles.index import KIND_LABEL, styles_changed

INDEX = "index.json"
INDEX_FORMAT = "clipmorph-bucket"
# Pulled in this order: a style never arrives before its backbone.
KINDS = (*assets.KINDS.values(), "backbone", "style")


@dataclass(frozen=True)
class Transfer:
    tag: str
    copied: bool  # False: it was already there


def _stored(kind: str) -> list[str]:
    return sorted(str(m.tag) for m in bentoml.models.list() if m.info.labels.get(KIND_LABEL) == kind)


def _in_store(tag: str) -> bool:
    try:
        bentoml.models.get(tag)
    except NotFound:
        return False
    return True


def read_index(url: Location) -> dict:
    """The bucket's index ({"models": {tag: {"kind", "file", "sha256"}}}), empty if there is none."""
    target = locations.join(url, INDEX)
    if not locations.exists(target):
        return {"format": INDEX_FORMAT, "models": {}}
    with locations.fetched(target) as local:
        try:
            index = json.loads(local.read_text())
        except (OSError, ValueError) as error:
            raise BadInput(f"{target} is not a clipmorph bucket index: {error}") from None
    if index.get("format") != INDEX_FORMAT or not isinstance(index.get("models"), dict):
        raise BadInput(f"{target} is not a clipmorph bucket index")
    return index


def push(url: Location) -> list[Transfer]:
    """Every backbone, style and training asset of the local store to ``url`` (what the bucket lacks)."""
    index = read_index(url)
    done = []
    with tempfile.TemporaryDirectory(prefix="clipmorph-push-") as folder:
        for kind in KINDS:
            for tag in _stored(kind):
                if tag in index["models"]:
                    done.append(Transfer(tag, False))
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
            index_file = Path(folder) / INDEX
            index_file.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
            locations.upload(index_file, locations.join(url, INDEX))
    return done


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
    if any(t.copied and index["models"][t.tag].get("kind") == "style" for t in done):
        styles_changed()
    return done
