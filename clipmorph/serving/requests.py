"""The request bodies of the HTTP routes, declared once (BentoML ``input_spec`` models).

Every route that stylizes takes the same options, so a blend or a strength works the same
for one image, a batch and a video; each route only adds its upload and output format.
Multipart forms fill these models field by field (``-F style=monet -F image=@photo.jpg``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidatorFunctionWrapHandler, field_validator

from clipmorph.errors import BadInput
from clipmorph.inference.options import PAINT_SIDE, StyleMix, StylizeOptions

IMAGE_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
ImageFormat = Literal["png", "jpeg", "webp"]
VideoFormat = Literal["mp4", "webm"]


class StyleFields(BaseModel):
    """How to stylize: shared by every stylizing route."""

    style: Annotated[str, Field(description="style id, or a blend such as 'monet=0.7,scream=0.3'")]
    strength: Annotated[float, Field(ge=0.0, le=1.0, description="0 = the input, 1 = fully stylized")] = 1.0
    blend_with: Annotated[str | None, Field(description="a second style to blend in")] = None
    blend: Annotated[float, Field(ge=0.0, le=1.0, description="weight of blend_with (0..1)")] = 0.5
    preserve_color: Annotated[
        bool, Field(description="keep all the input's colours (each style otherwise keeps its own share of them)")
    ] = False
    max_side: Annotated[
        int | None,
        Field(
            ge=16,
            description="paint at most this long side (px), then enlarge: smaller = bolder marks "
            "(default: the server's paint side, CLIPMORPH_PAINT_SIDE)",
        ),
    ] = None

    @property
    def mix(self) -> str:
        """The style text the engine parses: the style, or the two-style blend."""
        if self.blend_with:
            return f"{self.style}={1.0 - self.blend},{self.blend_with}={self.blend}"
        return self.style

    def options(self, paint_side: int, max_side_limit: int, keep_size: bool = True) -> StylizeOptions:
        """Engine options: the request's ``max_side`` (within the server's cap) or the server's paint side."""
        return parse_options(
            self.mix, self.strength, self.preserve_color, self.max_side, max_side_limit, keep_size, paint_side
        )


class ImageRequest(StyleFields):
    image: Annotated[Path, Field(description="any image Pillow reads (judged by content)")]
    output_format: ImageFormat = "png"


class BatchRequest(StyleFields):
    images: Annotated[list[Path], Field(description="several images (multipart, one field per file)")]
    output_format: ImageFormat = "png"

    def check_count(self, limit: int) -> None:
        if not self.images:
            raise BadInput("no images uploaded")
        if len(self.images) > limit:
            raise BadInput(f"{len(self.images)} images; at most {limit} per request")


class VideoRequest(StyleFields):
    video: Annotated[Path, Field(description="any video FFmpeg reads (judged by content)")]
    output_format: VideoFormat = "mp4"


class StyleCreationRequest(BaseModel):
    painting: Annotated[Path, Field(description="the painting to learn (any image Pillow reads)")]
    name: Annotated[str, Field(description="style name (letters, digits, spaces; becomes the style id)")]
    preset: Literal["tiny", "fast", "best"] = "fast"
    author: Annotated[str, Field(max_length=60, description="who made it (shown in the metadata)")] = ""
    # Path, not Path | None: BentoML turns an upload into a Path only for a plain Path field.
    photo: Annotated[Path, Field(description="a photo for the instant preview (default: a sample photo)")] = None

    @field_validator("photo", mode="wrap")
    @classmethod
    def _photo_may_be_left_out(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Path | None:
        return None if value is None else handler(value)


def parse_options(
    style: str,
    strength: float,
    preserve_color: bool,
    max_side: int | None,
    limit: int,
    keep_size: bool = True,
    paint_side: int = PAINT_SIDE,
) -> StylizeOptions:
    """Request fields -> engine options: a request's ``max_side`` within the service's cap, else the
    paint side (never above the cap, so a server that lowers the cap needs no second setting)."""
    if max_side is not None and max_side > limit:
        raise BadInput(f"max_side {max_side} is over this server's limit of {limit}", "bad_value")
    side = max_side or min(paint_side, limit)
    return StylizeOptions(StyleMix.parse(style), strength, preserve_color, side, keep_size)


def safe_stem(name: str | None, fallback: str) -> str:
    """A download name from user text (a style or blend), without any path or odd characters."""
    stem = Path((name or "").split("=")[0]).stem
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-")[:60]
    return stem or fallback
