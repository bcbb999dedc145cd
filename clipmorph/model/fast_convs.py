"""Inference-only rewrites of the network's thin RGB convolutions into shapes that GPU
tensor-core kernels take (the same sums, regrouped; exact up to rounding). The benchmarks
measure them; the engine does not use them where they do not pay (see bench/RESULTS.md)."""

from __future__ import annotations

import copy
import itertools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clipmorph.model.network import ConvLayer, TransformerNet


class ChannelPaddedConv(nn.Module):
    """A convolution with its thin side (3 RGB channels in or out) zero-padded to ``multiple``
    channels. Same output (the extra weights are zero), but GPU libraries only pick their fast
    tensor-core kernels for channel counts that are multiples of 8, and the GPU profile
    (bench/gpu-profile.md) shows the two 3-channel 9x9 convolutions as a large share of a pass."""

    def __init__(self, conv: nn.Conv2d, multiple: int = 8) -> None:
        super().__init__()
        out_ch, in_ch = conv.out_channels, conv.in_channels
        self.in_channels, self.out_channels = in_ch, out_ch
        padded_in, padded_out = -(-in_ch // multiple) * multiple, -(-out_ch // multiple) * multiple
        self.conv = nn.Conv2d(padded_in, padded_out, conv.kernel_size, conv.stride).to(conv.weight)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.bias.zero_()
            self.conv.weight[:out_ch, :in_ch] = conv.weight
            self.conv.bias[:out_ch] = conv.bias

    def forward(self, x: Tensor) -> Tensor:
        extra = self.conv.in_channels - self.in_channels
        if extra:
            x = torch.cat([x, x.new_zeros(x.shape[0], extra, *x.shape[2:])], dim=1)
        return self.conv(x)[:, : self.out_channels]


def with_padded_rgb_convs(net: TransformerNet, multiple: int = 8) -> TransformerNet:
    """A copy of ``net`` whose first and last convolutions run channel-padded (inference only)."""
    padded = copy.deepcopy(net)
    padded.conv1.conv = ChannelPaddedConv(net.conv1.conv, multiple)
    padded.out.conv = ChannelPaddedConv(net.out.conv, multiple)
    return padded


class SpaceToDepthConv(nn.Module):
    """A reflection-padded stride-1 convolution computed on ``block`` x ``block`` pixel blocks:
    the padded input is folded into channels (pixel_unshuffle), one convolution with a smaller
    kernel gives every output phase, and pixel_shuffle unfolds them. The same sums, regrouped
    (exact up to rounding). With blocks of 4 the thin 9x9 RGB layers become 3x3 layers with
    channel counts in multiples of 8 (3 -> 32 becomes 48 -> 512), the shapes GPU tensor-core
    kernels take. On the CPU it does not pay (docs/performance.md)."""

    def __init__(self, layer: ConvLayer, block: int = 4) -> None:
        super().__init__()
        conv = layer.conv
        if conv.stride != (1, 1) or conv.kernel_size[0] != conv.kernel_size[1]:
            raise ValueError("only square stride-1 convolutions fold into blocks")
        k, r = conv.kernel_size[0], block
        self.pad, self.block = k // 2, r
        self.taps = (k - 1 + r - 1) // r + 1
        out_ch, in_ch = conv.out_channels, conv.in_channels
        # folded[o, a, b, i, p, q, u, v] = weight[o, i, r*u + p - a, r*v + q - b] where that tap exists
        folded = conv.weight.new_zeros(out_ch, r, r, in_ch, r, r, self.taps, self.taps)
        for a, b, p, q in itertools.product(range(r), repeat=4):
            for u, v in itertools.product(range(self.taps), repeat=2):
                dy, dx = r * u + p - a, r * v + q - b
                if 0 <= dy < k and 0 <= dx < k:
                    folded[:, a, b, :, p, q, u, v] = conv.weight[:, :, dy, dx]
        self.conv = nn.Conv2d(in_ch * r * r, out_ch * r * r, self.taps).to(conv.weight)
        with torch.no_grad():
            self.conv.weight.copy_(folded.reshape(out_ch * r * r, in_ch * r * r, self.taps, self.taps))
            self.conv.bias.copy_(conv.bias.repeat_interleave(r * r))

    def forward(self, x: Tensor) -> Tensor:
        height, width = x.shape[-2:]
        r = self.block
        x = F.pad(x, (self.pad,) * 4, mode="reflect")
        # zeros below and right so whole blocks cover every output; they only reach cropped outputs
        rows, cols = (-(-height // r) + self.taps - 1) * r, (-(-width // r) + self.taps - 1) * r
        if (rows, cols) != tuple(x.shape[-2:]):
            x = F.pad(x, (0, cols - x.shape[-1], 0, rows - x.shape[-2]))
        y = F.pixel_shuffle(self.conv(F.pixel_unshuffle(x, r)), r)
        return y[..., :height, :width]


def with_blocked_rgb_convs(net: TransformerNet, block: int = 4) -> TransformerNet:
    """A copy of ``net`` whose first and last (RGB) convolutions run as :class:`SpaceToDepthConv`."""
    blocked = copy.deepcopy(net)
    blocked.conv1 = SpaceToDepthConv(net.conv1, block)
    blocked.out = SpaceToDepthConv(net.out, block)
    return blocked
