"""Moving trained weights from instance norm to mean-only norm (``NetworkSpec.norm``).

Instance norm divides each feature map by its own spread; mean-only norm leaves the spread to
the style's scale. Dividing every style's scale by the spread its feature maps typically have
(the median over a set of photos) gives a mean-only network that starts close to the trained
one, except where a droplet spike inflated the spread: what the fine-tuning then unlearns.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from clipmorph.model.network import ConditionalInstanceNorm2d, TransformerNet


@torch.no_grad()
def typical_spreads(net: TransformerNet, photos: Tensor) -> dict[str, Tensor]:
    """Per norm layer: (styles, channels) median over ``photos`` of each feature map's spread."""
    seen: dict[str, list[Tensor]] = {}

    def recorder(name: str):
        def record(module: nn.Module, inputs: tuple) -> None:
            var = inputs[0].float().var(dim=(2, 3), unbiased=False)
            seen.setdefault(name, []).append(torch.sqrt(var + module.eps).median(dim=0).values)

        return record

    layers = net.norm_layers()
    handles = [layer.register_forward_pre_hook(recorder(name)) for name, layer in layers.items()]
    try:
        net.eval()
        for style in range(net.num_styles):
            net(photos, torch.full((photos.shape[0],), style))
    finally:
        for handle in handles:
            handle.remove()
    return {name: torch.stack(rows) for name, rows in seen.items()}


def to_mean_norm(net: TransformerNet, photos: Tensor, norm: str = "mean") -> TransformerNet:
    """A copy of an instance-norm ``net`` whose layers run ``norm`` (``mean``, or
    ``mean-after-encoder``); ``photos``: (B, 3, H, W) in [0, 1]."""
    if net.spec.norm != "instance":
        raise ValueError(f"the network already uses {net.spec.norm} normalisation")
    spreads = typical_spreads(net, photos)
    moved = TransformerNet(net.spec.with_norm(norm), net.num_styles)
    moved.load_state_dict(net.state_dict())
    layers: dict[str, ConditionalInstanceNorm2d] = moved.norm_layers()
    with torch.no_grad():
        for name, layer in layers.items():
            if layer.mean_only:
                layer.scale.div_(spreads[name])
    return moved
