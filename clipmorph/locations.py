"""Where run artefacts live: a local path, or any fsspec URL (``s3://bucket/run``, ``gs://…``).

A URL's file system comes from fsspec (``s3fs`` for S3: the ``clipmorph[s3]`` extra), configured
the usual ways: ``AWS_*`` variables and files for S3 credentials, ``AWS_ENDPOINT_URL`` or
``FSSPEC_S3_ENDPOINT_URL`` for a non-AWS server. Writes never leave a half-written file behind:
a local file is renamed into place, an object store publishes an upload only when it completes.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from clipmorph.errors import BadInput
from clipmorph.fsutil import atomic_path

Location = str | Path
# What a remote file system raises when it cannot be reached or refuses: each fsspec backend has
# its own exception types (botocore's EndpointConnectionError is not an OSError), so all of them.
RemoteError = Exception
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def is_url(location: Location) -> bool:
    return isinstance(location, str) and bool(_URL.match(location)) and not location.startswith("file://")


def local_or_url(text: Location) -> Location:
    """A command line's location: a URL stays text, anything else becomes a Path."""
    if isinstance(text, str) and text.startswith("file://"):
        return Path(text.removeprefix("file://"))
    return text if is_url(text) else Path(text)


def join(location: Location, *names: str) -> Location:
    if is_url(location):
        return "/".join([str(location).rstrip("/"), *names])
    return Path(location).joinpath(*names)


def _filesystem(url: str):
    try:
        import fsspec
    except ImportError:  # pragma: no cover - fsspec comes with the training dependencies
        raise BadInput(f"{url}: install fsspec to use URLs") from None
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as error:
        scheme = url.split("://", 1)[0]
        extra = " (pip install 'clipmorph[s3]')" if scheme in ("s3", "s3a") else ""
        raise BadInput(f"{url}: no file system for {scheme}://{extra}: {error}") from None


def exists(location: Location) -> bool:
    if not is_url(location):
        return Path(location).exists()
    fs, path = _filesystem(str(location))
    try:
        return fs.exists(path)
    except RemoteError as error:
        raise BadInput(f"cannot reach {location}: {error}") from error


def upload(local: Path, location: Location) -> Location:
    """Publish the file ``local`` at ``location`` in one step."""
    if not is_url(location):
        with atomic_path(Path(location)) as partial:
            shutil.copyfile(local, partial)
        return location
    fs, path = _filesystem(str(location))
    try:
        fs.put_file(str(local), path)
    except RemoteError as error:
        raise BadInput(f"cannot write {location}: {error}") from error
    return location


def put_bytes(data: bytes, location: Location) -> Location:
    """Publish ``data`` as the file at ``location`` in one step (small records and flags)."""
    with tempfile.TemporaryDirectory(prefix="clipmorph-put-") as folder:
        local = Path(folder) / "data"
        local.write_bytes(data)
        return upload(local, location)


def remove(location: Location) -> None:
    """Delete the file at ``location``; one that is not there is fine."""
    if not is_url(location):
        Path(location).unlink(missing_ok=True)
        return
    fs, path = _filesystem(str(location))
    try:
        if fs.exists(path):
            fs.rm_file(path)
    except FileNotFoundError:
        return
    except RemoteError as error:
        raise BadInput(f"cannot delete {location}: {error}") from error


def modified(location: Location) -> dict[str, float]:
    """Name -> last-modified time (seconds) of each file directly under ``location``."""
    if not is_url(location):
        folder = Path(location)
        return {p.name: p.stat().st_mtime for p in folder.iterdir() if p.is_file()} if folder.is_dir() else {}
    fs, path = _filesystem(str(location))
    try:
        entries = fs.ls(path, detail=True, refresh=True)
    except FileNotFoundError:
        return {}
    except RemoteError as error:
        raise BadInput(f"cannot list {location}: {error}") from error
    found = {}
    for entry in entries:
        stamp = entry.get("LastModified") or entry.get("mtime") or entry.get("created")
        if entry.get("type") == "file" and stamp is not None:
            found[entry["name"].rsplit("/", 1)[-1]] = stamp.timestamp() if hasattr(stamp, "timestamp") else float(stamp)
    return found


def read_chunks(location: Location, size: int = 1 << 20) -> Iterator[bytes]:
    """The bytes at ``location`` in pieces (a download streamed on, never held whole)."""
    if not is_url(location):
        with open(location, "rb") as handle:
            yield from iter(lambda: handle.read(size), b"")
        return
    fs, path = _filesystem(str(location))
    try:
        with fs.open(path, "rb") as handle:
            yield from iter(lambda: handle.read(size), b"")
    except RemoteError as error:
        raise BadInput(f"cannot read {location}: {error}") from error


def upload_folder(local: Path, location: Location, last: str | None = None) -> Location:
    """Every file under ``local`` to the same names under ``location``; ``last`` (the folder's
    index, e.g. catalogue.json) goes after the rest, so a reader who sees it sees them all."""
    files = sorted(p for p in Path(local).rglob("*") if p.is_file())
    files.sort(key=lambda p: p.relative_to(local).as_posix() == last)
    for file in files:
        upload(file, join(location, *file.relative_to(local).parts))
    return location


@contextmanager
def fetched(location: Location) -> Iterator[Path]:
    """A local path holding the file at ``location`` (a temporary copy for a URL)."""
    if not is_url(location):
        yield Path(location)
        return
    fs, path = _filesystem(str(location))
    with tempfile.TemporaryDirectory(prefix="clipmorph-fetch-") as folder:
        local = Path(folder) / Path(path).name
        try:
            fs.get_file(path, str(local))
        except RemoteError as error:
            raise BadInput(f"cannot read {location}: {error}") from error
        yield local
