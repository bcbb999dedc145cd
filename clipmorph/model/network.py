"""The feed-forward style network (Johnson et al. 2016) with conditional instance norm.

One network (the *backbone*) carries N styles. A style is nothing but the per-channel
scale and shift of every norm layer (Dumoulin et al. 2017), so one forward pass can serve
a batch that mixes styles, and blending styles is a weighted mix of those vectors.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# The encoder halves the resolution twice, the decoder doubles it twice.
SIZE_MULTIPLE = 4
NORMS = ("instance", "mean", "mean-after-encoder")


@dataclass(frozen=True)
class NetworkSpec:
    """Shape of a backbone: channel widths of the three encoder stages and residual depth."""

    channels: tuple[int, int, int] = (32, 64, 128)
    residual_blocks: int = 5
    # "instance": each feature map divided by its own spread (Ulyanov et al.), which lets a
    # network steer the statistics with one local spike: the "droplet". "mean": only the map's
    # mean is removed and the style's scale sets the spread, so a spike has nothing to steer.
    # "mean-after-encoder": instance norm in the three encoder layers (they even out the
    # photo's own contrast), mean-only in the residual blocks and the decoder.
    norm: str = "instance"

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise ValueError(f"unknown normalisation {self.norm!r}; choose from {', '.join(NORMS)}")

    def to_dict(self) -> dict:
        data = {"channels": list(self.channels), "residual_blocks": self.residual_blocks}
        if self.norm != "instance":  # absent in older backbones: their versions stay the same
            data["norm"] = self.norm
        return data

    @classmethod
    def from_dict(cls, data: dict) -> NetworkSpec:
        return cls(
            channels=tuple(int(c) for c in data["channels"]),
            residual_blocks=int(data["residual_blocks"]),
            norm=str(data.get("norm", "instance")),
        )

    def with_norm(self, norm: str) -> NetworkSpec:
        return NetworkSpec(self.channels, self.residual_blocks, norm)

    def describe(self) -> dict:
        return asdict(self)


WIDTHS: dict[str, NetworkSpec] = {
    "full": NetworkSpec((32, 64, 128), 5),
    "lite": NetworkSpec((16, 32, 64), 3),
}


class ConditionalInstanceNorm2d(nn.Module):
    """Instance norm whose affine scale/shift are looked up (or mixed) per image.

    ``scale`` and ``shift`` have one row per style. ``style_weights`` (batch x styles)
    selects a row with a one-hot vector or blends rows with any convex weights.
    """

    def __init__(self, channels: int, num_styles: int, eps: float = 1e-5, norm: str = "instance") -> None:
        super().__init__()
        self.eps = eps
        self.mean_only = norm == "mean"
        self.scale = nn.Parameter(torch.ones(num_styles, channels))
        self.shift = nn.Parameter(torch.zeros(num_styles, channels))

    def forward(self, x: Tensor, style_weights: Tensor) -> Tensor:
        scale = (style_weights @ self.scale.float())[:, :, None, None]
        shift = (style_weights @ self.shift.float())[:, :, None, None]
        if self.mean_only:
            mean = x.float().mean(dim=(2, 3), keepdim=True)
            return torch.addcmul((shift - mean * scale).to(x.dtype), x, scale.to(x.dtype))
        # Statistics in float32 even when x is bf16/fp16: variance is precision sensitive.
        var, mean = torch.var_mean(x.float(), dim=(2, 3), keepdim=True, unbiased=False)
        # Fold normalisation and affine into a single multiply-add over the big tensor.
        gain = scale * torch.rsqrt(var + self.eps)
        bias = shift - mean * gain
        return torch.addcmul(bias.to(x.dtype), x, gain.to(x.dtype))


class ConvLayer(nn.Module):
    """Reflection-padded convolution: avoids the dark borders that zero padding paints."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.pad(x))


class UpsampleConvLayer(ConvLayer):
    """Nearest-neighbour upsample then convolve: no checkerboard artifacts of transposed convs."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(F.interpolate(x, scale_factor=2, mode="nearest"))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, num_styles: int, norm: str = "instance") -> None:
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3)
        self.norm1 = ConditionalInstanceNorm2d(channels, num_styles, norm=norm)
        self.conv2 = ConvLayer(channels, channels, 3)
        self.norm2 = ConditionalInstanceNorm2d(channels, num_styles, norm=norm)

    def forward(self, x: Tensor, style_weights: Tensor) -> Tensor:
        y = F.relu(self.norm1(self.conv1(x), style_weights))
        return x + self.norm2(self.conv2(y), style_weights)


def padding_to_multiple(height: int, width: int) -> tuple[int, int]:
    """Rows and columns to mirror in at the bottom and right so both sides are multiples of
    SIZE_MULTIPLE (what ``paint`` needs): the network pads so itself, and so do callers of its
    exported ``paint``."""
    return -height % SIZE_MULTIPLE, -width % SIZE_MULTIPLE


class TransformerNet(nn.Module):
    """Image in [0, 1] -> stylized image in [0, 1], any size (padded to a multiple of 4)."""

    def __init__(self, spec: NetworkSpec = WIDTHS["full"], num_styles: int = 1) -> None:
        super().__init__()
        if num_styles < 1:
            raise ValueError("a backbone needs at least one style")
        self.spec = spec
        c1, c2, c3 = spec.channels

        inner = "mean" if spec.norm == "mean-after-encoder" else spec.norm
        encoder = "instance" if spec.norm == "mean-after-encoder" else spec.norm

        def norm(channels: int, kind: str = inner) -> ConditionalInstanceNorm2d:
            return ConditionalInstanceNorm2d(channels, num_styles, norm=kind)

        self.conv1 = ConvLayer(3, c1, 9)
        self.norm1 = norm(c1, encoder)
        self.conv2 = ConvLayer(c1, c2, 3, stride=2)
        self.norm2 = norm(c2, encoder)
        self.conv3 = ConvLayer(c2, c3, 3, stride=2)
        self.norm3 = norm(c3, encoder)
        self.residuals = nn.ModuleList(ResidualBlock(c3, num_styles, inner) for _ in range(spec.residual_blocks))
        self.up1 = UpsampleConvLayer(c3, c2, 3)
        self.norm4 = norm(c2)
        self.up2 = UpsampleConvLayer(c2, c1, 3)
        self.norm5 = norm(c1)
        self.out = ConvLayer(c1, 3, 9)

    @property
    def num_styles(self) -> int:
        return self.norm1.scale.shape[0]

    def norm_layers(self) -> dict[str, ConditionalInstanceNorm2d]:
        return {name: m for name, m in self.named_modules() if isinstance(m, ConditionalInstanceNorm2d)}

    def style_weights(self, styles: Tensor) -> Tensor:
        """Turn style indices (B,) into one-hot rows; pass mixing weights (B, N) through."""
        if styles.dim() == 1:
            return F.one_hot(styles.long(), self.num_styles).float()
        if styles.dim() != 2 or styles.shape[1] != self.num_styles:
            raise ValueError(f"style weights must be (batch, {self.num_styles}), got {tuple(styles.shape)}")
        return styles.float()

    def forward(self, x: Tensor, styles: Tensor) -> Tensor:
        w = self.style_weights(styles).to(x.device)
        if w.shape[0] != x.shape[0]:
            raise ValueError(f"{x.shape[0]} images but {w.shape[0]} style selections")
        height, width = x.shape[-2:]
        pad_h, pad_w = padding_to_multiple(height, width)
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        return self.paint(x, w)[..., :height, :width]

    def paint(self, x: Tensor, w: Tensor) -> Tensor:
        """The network proper: ``x`` with sides that are multiples of SIZE_MULTIPLE, ``w`` style
        weight rows (B, N). Exported alone, it serves every frame size (clipmorph.inference.openvino)."""
        y = F.relu(self.norm1(self.conv1(x), w))
        y = F.relu(self.norm2(self.conv2(y), w))
        y = F.relu(self.norm3(self.conv3(y), w))
        for block in self.residuals:
            y = block(y, w)
        y = F.relu(self.norm4(self.up1(y), w))
        y = F.relu(self.norm5(self.up2(y), w))
        return torch.sigmoid(self.out(y))

    # --- splitting the weights into the shared backbone and the per-style vectors ---

    def backbone_state(self) -> dict[str, Tensor]:
        """Every weight except the style vectors: what all styles of this backbone share."""
        return {k: v for k, v in self.state_dict().items() if not _is_style_key(k)}

    def style_state(self, index: int) -> dict[str, Tensor]:
        """One style's vectors: ``<norm layer>.scale`` / ``.shift`` of shape (C,)."""
        return {k: v[index].clone() for k, v in self.state_dict().items() if _is_style_key(k)}

    def load_styles(self, styles: list[dict[str, Tensor]]) -> None:
        """Replace the style tables with the given styles (resizes to len(styles))."""
        if not styles:
            raise ValueError("a backbone needs at least one style")
        for name, norm in self.norm_layers().items():
            for attr in ("scale", "shift"):
                key = f"{name}.{attr}"
                rows = [_require(style, key, norm.scale.shape[1]) for style in styles]
                setattr(norm, attr, nn.Parameter(torch.stack(rows).to(norm.scale.device)))


def _is_style_key(key: str) -> bool:
    return key.endswith(".scale") or key.endswith(".shift")


def _require(style: dict[str, Tensor], key: str, channels: int) -> Tensor:
    if key not in style:
        raise ValueError(f"style is missing {key}: it belongs to a different backbone shape")
    value = style[key]
    if value.shape != (channels,):
        raise ValueError(f"style vector {key} has shape {tuple(value.shape)}, expected ({channels},)")
    return value.float()


def build_network(spec: NetworkSpec, backbone: dict[str, Tensor], styles: list[dict[str, Tensor]]) -> TransformerNet:
    """Assemble a network from a backbone state and its styles' vectors."""
    net = TransformerNet(spec, num_styles=len(styles))
    try:
        missing, unexpected = net.load_state_dict(backbone, strict=False)
    except RuntimeError as error:  # tensor shapes differ
        raise ValueError(f"backbone weights do not fit {spec}: {error}") from error
    missing = [k for k in missing if not _is_style_key(k)]
    if missing or unexpected:
        raise ValueError(f"backbone weights do not fit {spec}: missing {missing}, unexpected {unexpected}")
    net.load_styles(styles)
    return net
