"""Every change ClipMorph makes to BentoML's and uvicorn's internals, in one place.

Three faults of the servers under us have no setting or supported hook in the versions below,
so each is fixed by replacing one internal function (each module says why, and what it patched):

- ``uploads``: BentoML fetches an address sent in a file field, and answers a malformed body
  with 500 (``_bentoml_impl.serde``).
- ``request_timer``: BentoML's ``TimeoutMiddleware`` keeps every request for the whole traffic
  timeout (``bentoml._internal.server.http.traffic``).
- ``header_deadline``: uvicorn never times a request head (``uvicorn.protocols.http.h11_impl``).

A patch of internals is only safe on the code it was written against, so ``install`` refuses to
start the service on any other version of the two packages, saying which and why; the versions
are pinned in pyproject.toml, and ``tests/test_upstream.py`` fails when the source of any
patched function changes. To move to a new release: read the patched functions' new source,
adapt (or drop) the patch, then update ``WRITTEN_FOR`` and ``FINGERPRINTS`` together.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect

from clipmorph.errors import ClipMorphError

# The exact releases whose internals the three patches were read against.
WRITTEN_FOR = {"bentoml": "1.4.39", "uvicorn": "0.55.0"}

# Each upstream function a patch replaces, wraps or calls, by patch (module of this package),
# with its source as released, hashed by ``fingerprint``.
FINGERPRINTS = {
    "uploads": {
        "_bentoml_impl.serde:MultipartSerde.ensure_file": "962fb19eb99f95a5",
        "_bentoml_impl.serde:Serde.parse_request": "c1ca947b3c99dfdf",
        "_bentoml_impl.serde:MultipartSerde.parse_request": "65de1b4c289aac56",
        "_bentoml_impl.serde:JSONSerde.parse_request": "3ea0d77b4084d1be",
    },
    "request_timer": {
        "bentoml._internal.server.http.traffic:TimeoutMiddleware.__call__": "fd8b9e3da28ed2b4",
        "bentoml._internal.server.http.traffic:TimeoutMiddleware._set_timer_out": "adfa8eb6f3b2de7d",
    },
    "header_deadline": {
        "uvicorn.protocols.http.h11_impl:H11Protocol.connection_made": "6efb565ff3d36b91",
        "uvicorn.protocols.http.h11_impl:H11Protocol.data_received": "e03b145518ca44aa",
        "uvicorn.protocols.http.h11_impl:H11Protocol.connection_lost": "dbb688fa2b386000",
    },
}


class UnsupportedUpstream(ClipMorphError):
    """The installed BentoML or uvicorn is not the release ClipMorph's patches were written for."""


def installed_versions() -> dict[str, str]:
    return {name: importlib.metadata.version(name) for name in WRITTEN_FOR}


def check_versions(found: dict[str, str] | None = None) -> None:
    """Raise, naming each package, unless exactly the releases the patches were written for are here."""
    found = installed_versions() if found is None else found
    wrong = [f"{name} {found.get(name)} (written for {want})" for name, want in WRITTEN_FOR.items()
             if found.get(name) != want]  # fmt: skip
    if wrong:
        raise UnsupportedUpstream(
            "ClipMorph patches internals of BentoML and uvicorn and was not checked against "
            + ", ".join(wrong)
            + ": install the pinned versions (pip install -e .), or review clipmorph/serving/upstream/"
        )


def fingerprint(qualified_name: str) -> str:
    """An upstream function's source, hashed (``module:Class.attribute``): 16 hex digits of sha256."""
    module_name, _, attribute_path = qualified_name.partition(":")
    target = importlib.import_module(module_name)
    for part in attribute_path.split("."):
        target = inspect.unwrap(getattr(target, part))
    return hashlib.sha256(inspect.getsource(target).encode()).hexdigest()[:16]


def install(header_timeout_seconds: float) -> None:
    """Check the versions, then apply the three patches (each idempotent) in this process."""
    check_versions()
    from clipmorph.serving.upstream import header_deadline, request_timer, uploads

    uploads.refuse_addresses_in_file_fields()  # a text value in a file field is never fetched
    request_timer.install()  # each request is let go when it ends, not a traffic timeout later
    header_deadline.install(header_timeout_seconds)  # a request head trickled in (slowloris): closed
