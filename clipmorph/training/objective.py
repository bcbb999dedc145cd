"""The one perceptual objective (Johnson et al. 2016): what training minimises and what
evaluation measures, over the same VGG19 features.

Content is the squared difference of ``relu2_2`` features; style is the squared difference of
Gram matrices over four layers, against each image's own painting (a batch mixes styles, each
with its own weight); total variation smooths. Training adds the temporal terms
(``clipmorph.training.temporal``).
"""

from __future__ import annotations

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


class PerceptualObjective:
    """Gram targets of N paintings (stacked: layer -> (N, C, C)) and their style weights."""

    def __init__(self, vgg: VGGFeatures, targets: dict[str, Tensor], style_weights: Tensor | None = None) -> None:
        self.vgg = vgg
        self.targets = targets
        count = next(iter(targets.values())).shape[0]
        self.style_weights = style_weights if style_weights is not None else torch.ones(count)

    @classmethod
    def for_paintings(
        cls, vgg: VGGFeatures, paintings: list[Tensor], style_weights: Tensor | None = None
    ) -> PerceptualObjective:
        """Targets from paintings given as (1, 3, H, W) tensors in [0, 1]."""
        per_painting = []
        with torch.no_grad():
            for painting in paintings:
                per_painting.append(grams(vgg(painting, STYLE_LAYERS)))
        stacked = {k: torch.cat([g[k] for g in per_painting]) for k in STYLE_LAYERS}
        return cls(vgg, stacked, style_weights)

    def features(self, images: Tensor) -> dict[str, Tensor]:
        return self.vgg(images, ALL_LAYERS)

    def losses(self, output: Tensor, content: Tensor, styles: Tensor, weights: LossWeights) -> dict[str, Tensor]:
        """Weighted content, style and TV terms for a batch whose image i was stylized with
        painting ``styles[i]``; ``per_image_style`` (unweighted, detached) is for logs."""
        out_feats = self.features(output)
        with torch.no_grad():
            content_feats = self.vgg(content, [CONTENT_LAYER])
        per_image = style_distance(out_feats, {k: self.targets[k][styles] for k in STYLE_LAYERS})
        weight = self.style_weights.to(per_image.device)[styles]
        return {
            "content": weights.content * content_distance(out_feats, content_feats),
            "style": weights.style * (per_image * weight).mean(),
            "tv": weights.tv * total_variation(output),
            "per_image_style": per_image.detach(),
        }
