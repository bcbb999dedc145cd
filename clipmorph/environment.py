"""The environment variables of the CLI, training and the style-creation child, read in one place.

(The service reads its own, ``CLIPMORPH_*`` limits and locations, in ``clipmorph.serving.settings``.)
"""

from __future__ import annotations

import netrc
import os
from pathlib import Path

WANDB_MODES = ("online", "offline", "disabled", "dryrun", "run")


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """Where converted weights live: flag > $CLIPMORPH_CACHE > $XDG_CACHE_HOME/clipmorph."""
    if override:
        return Path(override)
    if value := os.environ.get("CLIPMORPH_CACHE"):
        return Path(value)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "clipmorph"


def data_root(override: str | os.PathLike | None = None, default: Path | None = None) -> Path:
    """Training and evaluation data: flag > $CLIPMORPH_DATA > ``default`` (../shared/data)."""
    return Path(override or os.environ.get("CLIPMORPH_DATA") or default or Path("..") / "shared" / "data")


def has_wandb_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_mode() -> str:
    """The user's WANDB_MODE wins; otherwise online only when there is a key to log in with."""
    mode = os.environ.get("WANDB_MODE")
    if mode:
        if mode not in WANDB_MODES:
            from clipmorph.errors import ClipMorphError

            raise ClipMorphError(f"WANDB_MODE={mode!r}: expected one of {', '.join(WANDB_MODES)}")
        return mode
    return "online" if has_wandb_credentials() else "offline"
