"""What a caller asks of the engine, as plain data: styles, blends and per-frame options.

Kept free of torch so that the API workers, which only validate and forward requests, never
load it (the model workers do).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from clipmorph.errors import BadInput

# The long side the network paints at unless a caller asks for more. The styles' marks were learned
# on crops of photos a few hundred pixels across: painted at a phone photo's full size they shrink to
# a fine texture over the photo (at 1920 px, seen at screen size, 1.2-2.5x further from the painting's
# statistics than at this size; docs/training.md "The marks' size"). Larger pictures are painted here
# and enlarged, so the marks keep their proportion to the picture; ``max_side`` asks for finer ones.
PAINT_SIDE = 768
MIN_SIDE = 16
# A style's ``mark_scale`` (its metadata; training/catalogue.toml): how much larger than the
# default its marks are painted on large pictures. 1.5 paints a picture that would be painted at
# 768 px at 512 and enlarges it. Only ever larger marks, so no style paints above a caller's size.
MARK_SCALES = (1.0, 4.0)


@dataclass(frozen=True)
class StyleMix:
    """One style, or a weighted blend of several styles of the same backbone."""

    weights: tuple[tuple[str, float], ...]

    @classmethod
    def single(cls, style_id: str) -> StyleMix:
        return cls(((style_id, 1.0),))

    @classmethod
    def parse(cls, text: str) -> StyleMix:
        """``monet`` or ``monet=0.7,scream=0.3`` (weights are normalised to sum to 1)."""
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if not parts:
            raise BadInput("no style given")
        pairs: list[tuple[str, float]] = []
        for part in parts:
            name, _, weight = part.partition("=")
            try:
                value = float(weight) if weight else 1.0
            except ValueError:
                raise BadInput(f"bad blend weight in {part!r}: expected name=number") from None
            if not value >= 0 or value == float("inf"):
                raise BadInput(f"blend weight for {name!r} must be a finite number >= 0")
            pairs.append((name.strip(), value))
        total = sum(w for _, w in pairs)
        if total <= 0:
            raise BadInput("blend weights must not all be zero")
        return cls(tuple((name, w / total) for name, w in pairs))

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.weights]

    def __str__(self) -> str:
        if len(self.weights) == 1:
            return self.weights[0][0]
        return ",".join(f"{name}={weight:g}" for name, weight in self.weights)


@dataclass(frozen=True)
class StylizeOptions:
    style: StyleMix
    strength: float = 1.0  # 0 = the input, 1 = fully stylized
    preserve_color: bool = False  # keep the input's colours, take only the luminance
    max_side: int | None = PAINT_SIDE  # paint at most this large (None: at the input's size)
    keep_size: bool = True  # upscale back to the input size when max_side shrank it
    # A style with larger marks (its mark_scale) paints at max_side divided by it; False paints at
    # max_side itself (a live stream, whose pace has measured the size it can keep up at).
    scale_marks: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise BadInput(f"strength must be between 0 and 1, got {self.strength}")
        if self.max_side is not None and self.max_side < MIN_SIDE:
            raise BadInput(f"max_side must be at least {MIN_SIDE}, got {self.max_side}")


def options_per_frame(
    frames: Sequence[np.ndarray], options: StylizeOptions | Sequence[StylizeOptions]
) -> list[StylizeOptions]:
    """One options object per frame, from shared options or a list of them."""
    per_frame = [options] * len(frames) if isinstance(options, StylizeOptions) else list(options)
    if len(per_frame) != len(frames):
        raise ValueError(f"{len(frames)} frames but {len(per_frame)} options")
    return per_frame


def mark_scale_of(metadata: dict, style_id: str) -> float:
    """A style's mark scale from its metadata (1 where it names none)."""
    value = metadata.get("mark_scale", 1.0)
    low, high = MARK_SCALES
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise BadInput(f"style {style_id}: mark_scale must be a number from {low:g} to {high:g}, got {value!r}")
    return float(value)


def marked_side(max_side: int | None, mark_scale: float) -> int | None:
    """The long side a style paints at when a caller allows ``max_side``: a style with larger
    marks paints a smaller picture, enlarged afterwards (None: at the input's own size)."""
    if max_side is None:
        return None
    return max(MIN_SIDE, round(max_side / mark_scale))


def work_size(height: int, width: int, max_side: int | None) -> tuple[int, int]:
    """The size the network runs at: the input shrunk so its long side fits ``max_side``."""
    if max_side is None or max(height, width) <= max_side:
        return height, width
    scale = max_side / max(height, width)
    return max(MIN_SIDE, round(height * scale)), max(MIN_SIDE, round(width * scale))


class FrameStylizer(Protocol):
    """What the file pipeline needs: the in-process Engine, or the service's model client."""

    batch_size: int

    def stylize_frames(
        self,
        frames: Sequence[np.ndarray],
        options: StylizeOptions | Sequence[StylizeOptions],
        any_size: bool = False,
    ) -> list[np.ndarray]: ...


def dtype_name(dtype: object) -> str:
    """``torch.bfloat16`` -> ``bfloat16``: how reports, records and metrics name a dtype."""
    return str(dtype).removeprefix("torch.")


def check_frame(frame: np.ndarray) -> None:
    """What every frame must be before it joins a batch (checked where it enters, per frame)."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise BadInput("frames must be uint8 arrays of shape (height, width, 3)")
    if min(frame.shape[:2]) < MIN_SIDE:
        raise BadInput(f"image is {frame.shape[1]}x{frame.shape[0]}: both sides must be at least {MIN_SIDE} px")
