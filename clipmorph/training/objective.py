"""The one perceptual objective (Johnson et al. 2016): what training minimises and what
evaluation measures, over the same VGG19 features.

Content is the squared difference of ``relu2_2`` features; style is the squared difference of
Gram matrices over four layers, against each image's own painting (a batch mixes styles, each
with its own weight); total variation smooths. Training adds the temporal terms
(``clipmorph.training.temporal``).

Optionally the style term is also taken at coarser scales: the output shrunk by a factor
against the painting shrunk by the same factor. VGG's layers see marks of a few pixels, so at
one scale the network learns the painting's finest texture only; at half scale the same
layers ask for marks twice as large, while the full-scale term keeps the fine texture honest
(only shrinking the painting asks for larger marks *and* finer banding: docs/training.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from clipmorph.model.vgg import VGGFeatures

CONTENT_LAYER = "relu2_2"
STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
ALL_LAYERS = frozenset(STYLE_LAYERS) | {CONTENT_LAYER}


@dataclass(frozen=True)
class LossWeights:
    """Starting points: with Caffe-scaled features, unweighted content and style losses are of
    the same order (~1e5) on natural photos; TV is a mean absolute difference (~0.1)."""

    content: float = 1.0
    style: float = 5.0
    tv: float = 1e3


def gram_matrix(features: Tensor) -> Tensor:
    """Channel correlations normalised by C*H*W, so the value does not grow with image size."""
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w).float()
    return flat @ flat.transpose(1, 2) / (c * h * w)


def grams(features: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: gram_matrix(features[k]) for k in STYLE_LAYERS}


def style_distance(features: dict[str, Tensor], target_grams: dict[str, Tensor]) -> Tensor:
    """Per image (B,): the sum over style layers of the mean squared Gram difference; targets
    are (B, C, C), or (1, C, C) for one painting shared by the batch."""
    return sum(((gram_matrix(features[k]) - target_grams[k]) ** 2).mean((1, 2)) for k in STYLE_LAYERS)


def content_distance(features: dict[str, Tensor], target: dict[str, Tensor]) -> Tensor:
    """The mean squared difference of the content layer's features (over the whole batch)."""
    return F.mse_loss(features[CONTENT_LAYER].float(), target[CONTENT_LAYER].float())


def total_variation(image: Tensor) -> Tensor:
    """Mean absolute difference between horizontal plus vertical neighbours (size independent)."""
    dx = (image[..., :, 1:] - image[..., :, :-1]).abs().mean()
    dy = (image[..., 1:, :] - image[..., :-1, :]).abs().mean()
    return dx + dy


def shrink(image: Tensor, factor: float) -> Tensor:
    """An image (or batch) scaled by ``factor`` < 1 with an antialiasing filter, so the coarse
    style term sees the marks, not aliases of the finer texture."""
    height, width = image.shape[-2:]
    size = (max(1, round(height * factor)), max(1, round(width * factor)))
    return F.interpolate(image.float(), size=size, mode="bilinear", antialias=True, align_corners=False)


TURNS = (0, 45, 90, 135)  # degrees: a stroke's direction in every quarter of the half-turn


def turned(image: Tensor, degrees: int) -> Tensor:
    """The image's central square turned by ``degrees``; for angles off the right angles, the
    largest square inside the turned one (no corners filled in)."""
    height, width = image.shape[-2:]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = image[..., top : top + side, left : left + side]
    if degrees % 90 == 0:
        return torch.rot90(square, degrees // 90, dims=(-2, -1))
    angle = math.radians(degrees)
    theta = torch.tensor([[math.cos(angle), -math.sin(angle), 0.0], [math.sin(angle), math.cos(angle), 0.0]])
    theta = theta[None].expand(square.shape[0], 2, 3).to(square)
    grid = F.affine_grid(theta, list(square.shape), align_corners=False)
    rotated = F.grid_sample(square, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    inner = int(side / math.sqrt(2))
    start = (side - inner) // 2
    return rotated[..., start : start + inner, start : start + inner]


def painting_grams(
    vgg: VGGFeatures, paintings: list[Tensor], any_direction: list[bool] | None = None
) -> dict[str, Tensor]:
    """Gram targets of paintings given as (1, 3, H, W) tensors in [0, 1], stacked per layer.
    Where ``any_direction`` is set, a painting's targets are averaged over it turned by each of
    TURNS: Gram statistics keep a stroke's direction but not its place, so a painting whose strokes
    mostly run one way is otherwise matched by strokes that run that way over the whole photo."""
    turns = any_direction or [False] * len(paintings)
    per_painting = []
    with torch.no_grad():
        for painting, any_way in zip(paintings, turns, strict=True):
            views = [turned(painting, degrees) for degrees in TURNS] if any_way else [painting]
            each = [grams(vgg(view, STYLE_LAYERS)) for view in views]
            per_painting.append({k: sum(g[k] for g in each) / len(each) for k in STYLE_LAYERS})
    return {k: torch.cat([g[k] for g in per_painting]) for k in STYLE_LAYERS}


class PerceptualObjective:
    """Gram targets of N paintings (stacked: layer -> (N, C, C)) and their style weights, and
    optionally the targets of the same paintings at coarser scales (factor -> targets), each
    with the paintings that take it (factor -> (N,) 1 or 0; default: all of them)."""

    def __init__(
        self, vgg: VGGFeatures, targets: dict[str, Tensor], style_weights: Tensor | None = None,
        coarse: dict[float, dict[str, Tensor]] | None = None, coarse_users: dict[float, Tensor] | None = None,
    ) -> None:  # fmt: skip
        self.vgg = vgg
        self.targets = targets
        count = next(iter(targets.values())).shape[0]
        self.style_weights = style_weights if style_weights is not None else torch.ones(count)
        self.coarse = coarse or {}
        for factor in self.coarse:
            if not 0 < factor < 1:
                raise ValueError(f"a coarse style scale must be between 0 and 1, got {factor}")
        users = coarse_users or {}
        self.coarse_users = {factor: users.get(factor, torch.ones(count)).float() for factor in self.coarse}

    @classmethod
    def for_paintings(
        cls, vgg: VGGFeatures, paintings: list[Tensor], style_weights: Tensor | None = None,
        coarse: dict[float, list[Tensor]] | None = None, coarse_users: dict[float, Tensor] | None = None,
        any_direction: list[bool] | None = None,
    ) -> PerceptualObjective:  # fmt: skip
        """Targets from paintings given as (1, 3, H, W) tensors in [0, 1]; ``coarse`` gives, per
        scale factor, the same paintings at that fraction of their size; ``any_direction`` says
        which paintings' strokes may run in any direction (``painting_grams``)."""
        shrunk = {f: painting_grams(vgg, images, any_direction) for f, images in (coarse or {}).items()}
        return cls(vgg, painting_grams(vgg, paintings, any_direction), style_weights, shrunk, coarse_users)

    def features(self, images: Tensor) -> dict[str, Tensor]:
        return self.vgg(images, ALL_LAYERS)

    def losses(self, output: Tensor, content: Tensor, styles: Tensor, weights: LossWeights) -> dict[str, Tensor]:
        """Weighted content, style and TV terms for a batch whose image i was stylized with
        painting ``styles[i]``; ``per_image_style`` (unweighted, detached) is for logs."""
        out_feats = self.features(output)
        with torch.no_grad():
            content_feats = self.vgg(content, [CONTENT_LAYER])
        per_image = style_distance(out_feats, {k: self.targets[k][styles] for k in STYLE_LAYERS})
        styled = per_image
        for factor, targets in self.coarse.items():
            users = self.coarse_users[factor].to(per_image.device)[styles]  # no host sync: always computed
            small = self.vgg(shrink(output, factor).to(output.dtype), STYLE_LAYERS)
            styled = styled + users * style_distance(small, {k: targets[k][styles] for k in STYLE_LAYERS})
        weight = self.style_weights.to(per_image.device)[styles]
        return {
            "content": weights.content * content_distance(out_feats, content_feats),
            "style": weights.style * (styled * weight).mean(),
            "tv": weights.tv * total_variation(output),
            "per_image_style": per_image.detach(),
        }
