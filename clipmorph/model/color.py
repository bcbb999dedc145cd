"""Colour handling after the network: luminance transfer (Gatys et al. 2016, "Preserving Color
in Neural Artistic Style Transfer") and a style's own colour treatment.

A treatment is two numbers per style, applied in YCbCr so the painted luminance (the brush work)
is never touched: ``photo_colour``, the share of the photo's chroma put back (the subject keeps
its colours under the painting's strokes), and ``colourfulness``, a gain on the chroma that
follows, toward the painting's colourfulness (the catalogue's networks paint about 20 % less
colourfully than their paintings: docs/training.md, "Colour"; clipmorph.training.colour
calibrates both). Luminance is left alone on purpose: flicker grows with a contrast gain
(measured in the same place).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

# ITU-R BT.601 RGB <-> YCbCr on [0, 1] values (offsets omitted: they cancel out).
_TO_YCC = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
_FROM_YCC = torch.linalg.inv(_TO_YCC)  # a constant, so an exported graph holds no inversion

MAX_COLOURFULNESS = 1.6  # a calibrated gain beyond this would paint colour the network never had


def rgb_to_ycc(rgb: Tensor) -> Tensor:
    return torch.einsum("ij,bjhw->bihw", _TO_YCC.to(rgb), rgb)


def ycc_to_rgb(ycc: Tensor) -> Tensor:
    return torch.einsum("ij,bjhw->bihw", _FROM_YCC.to(ycc), ycc)


def transfer_luminance(stylized: Tensor, original: Tensor) -> Tensor:
    """Keep the stylized brush work (luma) but the original colours (chroma)."""
    return treat_colour(stylized, original, torch.ones(len(stylized)), torch.ones(len(stylized)))


def treat_colour(stylized: Tensor, original: Tensor, photo_colour: Tensor, colourfulness: Tensor) -> Tensor:
    """Per picture of the batch: chroma = colourfulness * lerp(stylized, original, photo_colour);
    the stylized luma as it is. Written without in-place steps: OpenVINO runs it inside the
    exported graph (clipmorph.inference.openvino)."""
    ycc = rgb_to_ycc(stylized)
    keep = photo_colour.to(ycc).view(-1, 1, 1, 1)
    gain = colourfulness.to(ycc).view(-1, 1, 1, 1)
    chroma = torch.lerp(ycc[:, 1:], rgb_to_ycc(original)[:, 1:], keep) * gain
    return ycc_to_rgb(torch.cat([ycc[:, :1], chroma], dim=1)).clamp(0.0, 1.0)


@dataclass(frozen=True)
class ColourTreatment:
    """What a style does to colour after its network (kept in the style's metadata as ``colour``)."""

    photo_colour: float = 0.0  # 0: the network's colours; 1: the photo's (as preserve_color)
    colourfulness: float = 1.0  # chroma gain after the blend

    def __post_init__(self) -> None:
        if not 0.0 <= self.photo_colour <= 1.0:
            raise ValueError(f"photo_colour must be between 0 and 1, got {self.photo_colour}")
        if not 0.0 < self.colourfulness <= MAX_COLOURFULNESS:
            raise ValueError(f"colourfulness must be in (0, {MAX_COLOURFULNESS}], got {self.colourfulness}")

    @property
    def is_identity(self) -> bool:
        return self.photo_colour == 0.0 and self.colourfulness == 1.0

    @classmethod
    def from_metadata(cls, metadata: dict) -> ColourTreatment:
        entry = metadata.get("colour") or {}
        return cls(float(entry.get("photo_colour", 0.0)), float(entry.get("colourfulness", 1.0)))

    def to_metadata(self) -> dict:
        return {"photo_colour": round(self.photo_colour, 4), "colourfulness": round(self.colourfulness, 4)}

    def apply(self, painted: np.ndarray, photo: np.ndarray) -> np.ndarray:
        """The treatment on one RGB uint8 picture of ``photo`` (a thumbnail, say; the engine treats
        its batches as tensors)."""
        pictures = [torch.from_numpy(np.array(a)).permute(2, 0, 1)[None].float() / 255.0 for a in (painted, photo)]
        share, gain = torch.tensor([self.photo_colour]), torch.tensor([self.colourfulness])
        treated = treat_colour(*pictures, share, gain)[0].permute(1, 2, 0)
        return treated.mul(255.0).round().byte().numpy()

    def version_text(self) -> str:
        """What a style's version hashes beside its tensors: nothing for the identity, so styles
        without a treatment keep the versions they always had."""
        return "" if self.is_identity else f"|colour={self.photo_colour:.4f},{self.colourfulness:.4f}"


def colourfulness(rgb: Tensor) -> Tensor:
    """Hasler and Suesstrunk's colourfulness (2003) per picture of a batch of [0, 1] RGB, on
    their 0-255 scale: the spread and the mean of the red-green and yellow-blue opponents."""
    rgb = rgb.float() * 255.0
    rg = rgb[:, 0] - rgb[:, 1]
    yb = 0.5 * (rgb[:, 0] + rgb[:, 1]) - rgb[:, 2]
    spread = torch.hypot(rg.flatten(1).std(1), yb.flatten(1).std(1))
    mean = torch.hypot(rg.flatten(1).mean(1), yb.flatten(1).mean(1))
    return spread + 0.3 * mean
