"""Where the benchmarks find the repository and the shared data ($CLIPMORPH_DATA overrides)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CREATION_PAINTING = "muse.jpg"  # any painting works; this one is learned again under a new name


def data_root() -> Path:
    from clipmorph.environment import data_root as configured_root

    return configured_root(None, REPO.parent / "shared" / "data").resolve()
