"""A training penalty against dark lines the photo does not draw: doubled outlines beside every
edge, windows drawn as rings, rings around small dark things.

Several styles draw thin dark lines where the photo has none (Starry Night's halos around
every edge and its "o" windows, Monet's rings around gondolas, Simpsons' cartoon outlines):
docs/training.md, "Loops: the measure". The Gram terms ask for them, since the paintings have
such lines somewhere; nothing says where a line may go. This term says it: the output's dark
lines (a black top-hat of its luminance: what a closing of ``LINE`` px fills in) above the
photo's own dark lines within ``NEAR`` px, past a small margin. Dark areas wider than a line,
the photo's own outlines (a pixel or two off), and faint marks cost nothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from clipmorph.model.color import rgb_to_ycc

LINE = 7  # px: dark lines up to about 5 px across count; wider dark areas do not
NEAR = 5  # px: the photo's own dark line may be this far off (a window, not its echo)
MARGIN = 0.04  # luminance in [0, 1]: lines fainter than this beyond the photo's are free


def luminance(images: Tensor) -> Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> (B, 1, H, W): the colour treatment's BT.601 luma."""
    return rgb_to_ycc(images.float())[:, :1]


def closing(images: Tensor, size: int) -> Tensor:
    """Grey-level closing (the maximum, then the minimum, over ``size`` x ``size``): dark
    features narrower than ``size`` filled in; edges padded with their own values."""
    pad = size // 2
    dilated = F.max_pool2d(F.pad(images, (pad,) * 4, mode="replicate"), size, 1)
    return -F.max_pool2d(F.pad(-dilated, (pad,) * 4, mode="replicate"), size, 1)


def dark_lines(luma: Tensor) -> Tensor:
    """(B, 1, H, W) -> how much darker each pixel is than the closing around it (0 off lines)."""
    return closing(luma, LINE) - luma


def stray_excess(output: Tensor, content: Tensor) -> Tensor:
    """Per image (B,): the mean over pixels of the output's dark lines beyond the photo's own
    nearby ones and the margin."""
    with torch.no_grad():
        own = F.max_pool2d(dark_lines(luminance(content)), NEAR, 1, NEAR // 2)
    return F.relu(dark_lines(luminance(output)) - own - MARGIN).mean((1, 2, 3))


def stray_penalty(output: Tensor, content: Tensor) -> Tensor:
    """``stray_excess`` over the batch."""
    return stray_excess(output, content).mean()
