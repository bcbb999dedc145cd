"""Colour preservation by luminance transfer (Gatys et al. 2016, "Preserving Color in NST")."""

from __future__ import annotations

import torch
from torch import Tensor

# ITU-R BT.601 RGB <-> YCbCr on [0, 1] values (offsets omitted: they cancel out).
_TO_YCC = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def rgb_to_ycc(rgb: Tensor) -> Tensor:
    return torch.einsum("ij,bjhw->bihw", _TO_YCC.to(rgb), rgb)


def ycc_to_rgb(ycc: Tensor) -> Tensor:
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(_TO_YCC).to(ycc), ycc)


def transfer_luminance(stylized: Tensor, original: Tensor) -> Tensor:
    """Keep the stylized brush work (luma) but the original colours (chroma)."""
    ycc = rgb_to_ycc(original)
    ycc[:, 0] = rgb_to_ycc(stylized)[:, 0]
    return ycc_to_rgb(ycc).clamp(0.0, 1.0)
