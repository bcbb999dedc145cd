"""The one place frames become stylized frames: device, dtype, batching, options.

The CLI, the service and training previews all call ``Engine.stylize_frames``. Frames are
grouped by backbone and size so that a batch mixing styles still runs as one forward pass.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from clipmorph.environment import cache_dir
from clipmorph.errors import BadInput
from clipmorph.inference.options import (
    MIN_SIDE,
    StyleMix,
    StylizeOptions,
    check_frame,
    mark_scale_of,
    marked_side,
    options_per_frame,
    work_size,
)
from clipmorph.model.color import ColourTreatment, treat_colour
from clipmorph.model.network import TransformerNet, build_network
from clipmorph.styles.library import StyleLibrary
from clipmorph.styles.names import backbone_for_mix

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
BACKENDS = ("torch", "openvino")  # what runs the networks: PyTorch (eager or compiled) or OpenVINO
AUTO = "auto"


def pick_backend(requested: str, device: torch.device) -> str:
    """``auto``: OpenVINO on the CPU where it is installed, PyTorch otherwise (GPUs run PyTorch).
    Measured on a 2-core Xeon (AMX), lite at 640x360: 23 ms a frame through OpenVINO, 76 ms
    eager PyTorch; any frame size runs without an export (``stylize_frames(any_size=True)``),
    and a video's one shape is exported once per machine and kept in the cache folder.
    bench/RESULTS.md has the figures."""
    if requested != AUTO:
        return requested
    if device.type == "cpu" and _openvino_installed():
        return "openvino"
    return "torch"


def _openvino_installed() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("openvino", "onnx"))


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BadInput("CUDA was requested but no GPU is available")
    return device


def pick_dtype(device: torch.device, requested: str = "auto") -> torch.dtype:
    """bf16 where the hardware runs it natively (much faster than fp32 there), else fp32."""
    if requested != "auto":
        if requested not in DTYPES:
            raise BadInput(f"unknown dtype {requested!r}; choose from auto, {', '.join(DTYPES)}")
        return DTYPES[requested]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return torch.bfloat16
    return torch.float32


def default_batch_size(device: torch.device) -> int:
    """Frames per forward pass. On CPU bigger batches are slower per frame (cache-bound: the
    batch rows of bench/RESULTS.md); GPUs want batches."""
    return 8 if device.type == "cuda" else 1


class Engine:
    """Loaded styles on one device; thread-safe ``stylize_frames``."""

    def __init__(
        self,
        library: StyleLibrary,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int | None = None,
        compile: bool = False,
        backend: str = "torch",
    ) -> None:
        """``compile`` runs the networks through torch.compile (inductor): several times faster
        than eager after seconds of compiling per input shape, so worth it for videos and
        long-running services, not for one photo (bench/RESULTS.md has the figures).
        ``backend="openvino"`` (CPU only) runs them through OpenVINO instead, also compiled per
        shape (clipmorph.inference.openvino)."""
        if backend not in BACKENDS:
            raise BadInput(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
        self.library = library
        self.device = pick_device(device)
        self.backend = backend
        if backend == "openvino" and self.device.type != "cpu":
            raise BadInput("the openvino backend runs on the CPU: use --device cpu")
        self.dtype = pick_dtype(self.device, dtype)
        # What the PyTorch side hands the network: OpenVINO takes float32 and casts inside.
        self.network_dtype = self.dtype
        if backend == "openvino":
            from clipmorph.inference import openvino as openvino_net

            openvino_net._openvino()  # missing packages: refused here, not at the first frame
            if self.dtype not in (torch.bfloat16, torch.float32):
                raise BadInput("the openvino backend computes in bfloat16 or float32")
            if self.dtype == torch.bfloat16 and not openvino_net.cpu_has_bf16():
                self.dtype = torch.float32
            self.network_dtype = torch.float32
        self.batch_size = batch_size or default_batch_size(self.device)
        if self.batch_size < 1:
            raise BadInput("batch size must be at least 1")
        self.channels_last = backend == "torch" and (self.device.type == "cuda" or self.dtype != torch.float32)
        self._lock = threading.Lock()
        self.compile = compile
        self._compiled: dict[str, Callable] = {}
        self.networks: dict[str, TransformerNet] = {}
        self.rows: dict[str, tuple[str, int]] = {}  # style id -> (backbone key, row)
        # Each backbone's styles' colour treatments, one row per style (clipmorph.model.color).
        self.colour: dict[str, Tensor] = {}  # backbone key -> (styles, 2): photo_colour, colourfulness
        self.mark_scale: dict[str, float] = {}  # style id -> how much larger its marks are painted
        for key, backbone in library.backbones.items():
            styles = library.styles_of(key)
            if not styles:
                continue
            net = build_network(backbone.spec, backbone.state, [s.params for s in styles]).eval()
            net = net.to(self.device, self.network_dtype)
            if self.channels_last:
                net = net.to(memory_format=torch.channels_last)
            self.networks[key] = net
            treatments = [ColourTreatment.from_metadata(s.metadata) for s in styles]
            self.colour[key] = torch.tensor([[t.photo_colour, t.colourfulness] for t in treatments])
            self.rows.update({s.id: (key, row) for row, s in enumerate(styles)})
            self.mark_scale.update({s.id: mark_scale_of(s.metadata, s.id) for s in styles})
        self.backbone_of = {style_id: key for style_id, (key, _) in self.rows.items()}

    @property
    def style_ids(self) -> list[str]:
        return sorted(self.rows)

    def resolve(self, mix: StyleMix) -> tuple[str, Tensor]:
        """Which backbone a mix runs on and its weight row over that backbone's styles."""
        key = backbone_for_mix(mix.names, self.backbone_of)
        weights = torch.zeros(self.networks[key].num_styles)
        for style_id, weight in mix.weights:
            weights[self.rows[style_id][1]] += weight
        return key, weights

    def mix_mark_scale(self, mix: StyleMix) -> float:
        """A blend paints its marks at its styles' scales weighted as the blend is."""
        return sum(weight * self.mark_scale[style_id] for style_id, weight in mix.weights)

    def warm_up(self) -> None:
        """Export and compile what uploads of any size run through, for every backbone, before
        the first request waits for it (OpenVINO: seconds the first time on a machine, then read
        from the cache folder). PyTorch has nothing to prepare that does not depend on the size."""
        if self.backend != "openvino":
            return
        frame = np.zeros((MIN_SIDE * 4, MIN_SIDE * 4, 3), np.uint8)
        for key in self.networks:
            style = next(style_id for style_id, (backbone, _) in self.rows.items() if backbone == key)
            mix = StyleMix.single(style)  # as is, then blended: the two ways a frame goes through
            for options in (StylizeOptions(mix), StylizeOptions(mix, strength=0.5)):
                self.stylize_frames([frame], options, any_size=True)

    def stylize_frames(
        self,
        frames: Sequence[np.ndarray],
        options: StylizeOptions | Sequence[StylizeOptions],
        any_size: bool = False,
    ) -> list[np.ndarray]:
        """Stylize RGB uint8 frames (H, W, 3); ``options`` is shared or one per frame.
        ``any_size`` (OpenVINO, which compiles per shape): frames whose sizes vary, such as
        uploads, run through one model compiled for every size, so no new size waits for an
        export; a stream of one size (a video, a camera) is faster through its own shape."""
        per_frame = options_per_frame(frames, options)
        groups: dict[tuple, list[int]] = defaultdict(list)
        resolved = []
        for index, (frame, opts) in enumerate(zip(frames, per_frame, strict=True)):
            check_frame(frame)
            key, weights = self.resolve(opts.style)
            resolved.append(weights)
            height, width = frame.shape[:2]
            side = marked_side(opts.max_side, self.mix_mark_scale(opts.style)) if opts.scale_marks else opts.max_side
            target = work_size(height, width, side)
            out_size = (height, width) if opts.keep_size else target
            groups[(key, (height, width), target, out_size)].append(index)
        results: list[np.ndarray] = [np.empty(0)] * len(frames)
        for (key, _, target, out_size), indices in groups.items():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                outputs = self._run(
                    key,
                    np.stack([frames[i] for i in chunk]),
                    torch.stack([resolved[i] for i in chunk]),
                    [per_frame[i] for i in chunk],
                    target,
                    out_size,
                    any_size,
                )
                for i, out in zip(chunk, outputs, strict=True):
                    results[i] = out
        return results

    def _run(
        self,
        key: str,
        batch: np.ndarray,
        weights: Tensor,
        options: list[StylizeOptions],
        target: tuple[int, int],
        out_size: tuple[int, int],
        any_size: bool = False,
    ) -> np.ndarray:
        net = self._network(key)
        sized = {"any_size": any_size} if self.backend == "openvino" else {}
        colour = self._colour(key, weights, options)
        if self.backend == "openvino" and _plain(batch, options, target, out_size):
            return net.pixels(batch, weights, colour=colour, **sized)  # uint8 in and out, colour treated inside
        threads = 1 if self.backend == "openvino" else torch.get_num_threads()
        with self._lock, torch.inference_mode(), _torch_threads(threads):
            pixels = torch.from_numpy(batch).to(self.device).permute(0, 3, 1, 2).float().div_(255.0)
            x = _resize(pixels, target)
            x = x.to(self.network_dtype)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = net(x, weights.to(self.device), **sized).float()
            y = _resize(y, out_size)
            original = _resize(pixels, out_size)
            if colour is not None:
                y = treat_colour(y, original, colour[:, 0], colour[:, 1])
            strength = torch.tensor([o.strength for o in options], device=y.device).view(-1, 1, 1, 1)
            y = torch.lerp(original, y, strength)
            out = y.mul_(255.0).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
            return out.contiguous().cpu().numpy()

    def _colour(self, key: str, weights: Tensor, options: list[StylizeOptions]) -> Tensor | None:
        """Per frame (photo_colour, colourfulness): the mix's styles' treatments weighted as the
        mix is, all photo colour where the caller asked to preserve colour; None: nothing to do."""
        colour = weights.float() @ self.colour[key]
        preserve = torch.tensor([o.preserve_color for o in options])
        colour[preserve] = torch.tensor([1.0, 1.0])
        if bool((colour[:, 0] == 0).all() and (colour[:, 1] == 1).all()):
            return None
        return colour

    def _network(self, key: str) -> Callable:
        if self.backend == "openvino":
            with self._lock:  # one OpenVinoNetwork per backbone, however many threads ask at once
                if key not in self._compiled:
                    from clipmorph.inference.openvino import OpenVinoNetwork

                    self._compiled[key] = OpenVinoNetwork(
                        self.networks[key], bf16=self.dtype == torch.bfloat16, cache=cache_dir() / "openvino"
                    )
                return self._compiled[key]
        if not self.compile:
            return self.networks[key]
        if key not in self._compiled:
            # One graph per input shape; allow a service's handful of sizes before eager fallback.
            torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
            self._compiled[key] = torch.compile(self.networks[key], dynamic=False)
        return self._compiled[key]


def _plain(batch: np.ndarray, options: list[StylizeOptions], target: tuple[int, int], out_size: tuple) -> bool:
    """Frames that go through the network as they are: no resizing, no blending (a style's
    colour treatment runs inside the OpenVINO graph too)."""
    size = tuple(batch.shape[1:3])
    return size == tuple(target) == tuple(out_size) and all(o.strength == 1.0 for o in options)


@contextmanager
def _torch_threads(count: int) -> Iterator[None]:
    """PyTorch's threads for this thread's work only (OpenMP keeps the count per thread). Around
    an OpenVINO call PyTorch only converts and blends: one thread does that as fast, and two stall
    whenever another process holds a core (2-core Xeon, one core busy: a 192x108 frame 58 ms with
    two, 4.4 ms with one; 640x360 and 1280x720 within 5% either way when the cores are free)."""
    previous = torch.get_num_threads()
    if count == previous:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrinking = size[0] < x.shape[-2]
    mode = "bilinear" if shrinking else "bicubic"
    return F.interpolate(x, size=size, mode=mode, antialias=shrinking, align_corners=False).clamp_(0.0, 1.0)
