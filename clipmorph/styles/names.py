"""Style and backbone names, and which backbone a blend runs on: plain text rules, no torch."""

from __future__ import annotations

import re

from clipmorph.errors import BadInput, UnknownStyle

NAME_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,38}[a-z0-9])?$")


def validate_name(name: str, what: str = "style id") -> str:
    """Names become store tags and file names: lower-case letters, digits, '-' and '_' only."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise BadInput(f"invalid {what} {name!r}: use 1-40 lower-case letters, digits, '-' or '_'")
    return name


def backbone_for_mix(style_ids: list[str], backbone_of: dict[str, str]) -> str:
    """The one backbone a set of styles shares (a blend cannot cross backbones)."""
    for style_id in style_ids:
        if style_id not in backbone_of:
            raise UnknownStyle(style_id, list(backbone_of))
    keys = {backbone_of[style_id] for style_id in style_ids}
    if len(keys) != 1:
        raise BadInput(f"cannot blend {', '.join(style_ids)}: the styles belong to different backbones")
    return keys.pop()
