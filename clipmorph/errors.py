"""Errors a user can act on. The CLI prints them without a traceback; the service maps them to HTTP."""

import re

# An absolute path: what decoders, encoders and the OS put in their messages (temp files...).
_PATH = re.compile(r"""(?<![\w.:/])/(?:[^\s'"():,]+/?)+""")


def without_paths(message: str) -> str:
    """A message fit for a client: what went wrong, never where a file lives on the server."""
    return _PATH.sub("<file>", message)


class ClipMorphError(Exception):
    """Base class: something the user can fix (bad input, missing style, missing weights)."""


class BadInput(ClipMorphError):
    """The input file or value cannot be used (corrupt, wrong type, too large, too small).

    ``reason`` is a short fixed word (a metric label), e.g. ``corrupt``, ``too_large``.
    """

    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


class UnknownStyle(ClipMorphError):
    """A style name that is not in the library; the message lists the available ones."""

    def __init__(self, name: str, available: list[str]) -> None:
        listing = ", ".join(sorted(available)) or "none (run `clipmorph styles import models/`)"
        super().__init__(f"unknown style {name!r}; available styles: {listing}")
        self.reason = "unknown_style"
        self.name = name
        self.available = sorted(available)


class MediaError(ClipMorphError):
    """Encoding the output failed (codec or container problem), not the user's input."""


class TrainingStopped(ClipMorphError):
    """Training was interrupted or cancelled; its checkpoint holds everything needed to resume."""
