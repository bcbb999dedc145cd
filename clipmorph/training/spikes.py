"""The mechanism behind "droplet" artifacts, measured inside the network.

Under instance normalisation a network can steer a feature map's mean and variance with one
strong local spike (Karras et al. 2020, StyleGAN2 section 2): the spike dominates the statistics,
so normalising by them shrinks everything else, and after the decoder it shows as a bright oval
at the same place for every style. A spike is a pixel whose z-score within its own feature map
is far above what any natural feature reaches; penalising z-scores above a threshold takes away
the trick without touching ordinary features.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from clipmorph.model.network import ConditionalInstanceNorm2d

SPIKE_THRESHOLD = 6.0  # z-score; the shipped catalogue reached 40+ in its decoder norms


def peak_zscores(x: Tensor, eps: float = 1e-5) -> Tensor:
    """(B, C): how many standard deviations each feature map's most extreme pixel lies from its mean."""
    var, mean = torch.var_mean(x.float(), dim=(2, 3), keepdim=True, unbiased=False)
    return ((x.float() - mean).abs() * torch.rsqrt(var + eps)).amax(dim=(2, 3))


class SpikeMonitor:
    """Records the peak z-score of every conditional-instance-norm input during forward passes."""

    def __init__(self, net: nn.Module, threshold: float = SPIKE_THRESHOLD) -> None:
        self.threshold = threshold
        self.peaks: list[Tensor] = []
        self._handles = [
            module.register_forward_pre_hook(self._record)
            for module in net.modules()
            if isinstance(module, ConditionalInstanceNorm2d)
        ]

    def _record(self, _module: nn.Module, inputs: tuple) -> None:
        if torch.is_grad_enabled():
            self.peaks.append(peak_zscores(inputs[0]))

    def penalty(self) -> Tensor:
        """Mean squared excess over the threshold, summed over layers; clears the record."""
        if not self.peaks:
            return torch.zeros(())
        excess = [torch.relu(p - self.threshold).square().mean() for p in self.peaks]
        self.peaks = []
        return torch.stack(excess).sum()

    def largest(self) -> float:
        return max((float(p.detach().max()) for p in self.peaks), default=0.0)

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
