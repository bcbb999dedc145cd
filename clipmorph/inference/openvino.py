"""The CPU network run by OpenVINO instead of PyTorch: the default on a CPU (`--backend auto`).

Faster than eager PyTorch, and as fast as torch.compile or faster, on the CPUs measured (bench/RESULTS.md,
`bf16-openvino` rows). The network goes through ONNX once per input shape (seconds, like
torch.compile's per-shape cost), or once for every shape (the any-size model, for uploads),
then OpenVINO compiles it for this CPU. Both results are kept on disk (``openvino/`` in the
cache folder), keyed by the network's weights, the shape and the library versions, so a second
process, or the service after a restart, pays neither again.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from clipmorph.errors import BadInput
from clipmorph.model.color import treat_colour
from clipmorph.model.network import TransformerNet, padding_to_multiple


def _openvino():
    import importlib.util

    # onnx is only looked for here: torch.onnx.export imports it when a shape is exported, and a
    # run whose shapes are all in the cache folder does not pay its import (0.6 s).
    missing = next((name for name in ("openvino", "onnx") if importlib.util.find_spec(name) is None), None)
    if missing:
        raise BadInput(f"the openvino backend needs `pip install clipmorph[openvino]` ({missing} is missing)")
    import openvino

    return openvino


def cpu_has_bf16() -> bool:
    return "BF16" in _openvino().Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


GRAPH = "x, styles, colour -> y"  # the exported graph's signature: part of the fingerprint
MAX_CACHED_SHAPES = 64  # exported shapes kept per cache folder; the least recently used go first
MAX_COMPILED_SHAPES = 16  # compiled shapes kept in memory per network; the least recently used go first


def network_fingerprint(net: TransformerNet) -> str:
    """A content hash of the network (every weight and style vector) and the versions that
    shape its export: a changed style or an upgraded library never reuses a stale model."""
    import openvino

    digest = hashlib.sha256(f"{torch.__version__} {openvino.__version__} {GRAPH}".encode())
    for name, tensor in sorted(net.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()[:20]


class OpenVinoNetwork:
    """Called like a TransformerNet with style weight rows: ``(x, weights) -> y``, float32 in and out."""

    def __init__(self, net: TransformerNet, bf16: bool, threads: int | None = None, cache: Path | None = None) -> None:
        self.net = net.float().eval()
        self.core = _openvino().Core()
        self.config = {
            "INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32",
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": threads or torch.get_num_threads(),
            # Unpinned: a pinned thread waits behind whatever else holds its core (the API
            # worker, an encoder, a browser), and the whole call with it. Measured on a 2-core
            # Xeon with one core kept busy: 192x108 in 57 ms pinned, 8 ms not; the same when idle.
            "ENABLE_CPU_PINNING": False,
        }
        self.cache = cache
        if cache is not None:  # OpenVINO keeps the compiled blobs there itself
            (cache / "compiled").mkdir(parents=True, exist_ok=True)
            self.config["CACHE_DIR"] = str(cache / "compiled")
        self.fingerprint = network_fingerprint(self.net) if cache is not None else ""
        self.exports = 0  # shapes this process exported itself (the rest came from the cache)
        self._requests: OrderedDict[tuple[int, ...], object] = OrderedDict()  # compiled shapes, newest last
        self._lock = threading.Lock()

    def __call__(self, x: Tensor, weights: Tensor, any_size: bool = False) -> Tensor:
        """``any_size``: through the one model compiled for every size (see ``pixels``)."""
        height, width = x.shape[-2:]
        pad_h, pad_w = padding_to_multiple(height, width) if any_size else (0, 0)
        if pad_h or pad_w:  # as the network pads itself
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        request = self._request(None if any_size else tuple(x.shape), weights, pixels=False)
        inputs = {"x": x.float().numpy(), "styles": weights.float().numpy(), "colour": _untreated(len(x))}
        with self._lock:
            result = request.infer(inputs)
        return torch.from_numpy(np.array(result[0]))[..., :height, :width]

    def pixels(
        self, frames: np.ndarray, weights: Tensor, any_size: bool = False, colour: Tensor | None = None
    ) -> np.ndarray:
        """uint8 frames (N, H, W, 3) in, painted uint8 frames out, with the conversions and the
        styles' colour treatment (``colour``: per frame photo_colour and colourfulness, see
        clipmorph.model.color; None: untreated) compiled into the graph: the plain case (no
        resizing, no blending) skips PyTorch altogether.
        Measured on a 2-core Xeon, 640x360 lite: 23 ms a frame against 38 ms through
        ``__call__`` and PyTorch's conversions.

        ``any_size``: one model compiled for every frame size (and batch) instead of one per
        shape: nothing is exported or compiled for a new size, the pixels are the same, and a
        frame takes 1.2x-1.5x as long (same Xeon, 320x240 to 1024x768). For frames whose sizes
        vary (uploads); a stream of one size (a video, a camera) is faster with its own shape."""
        count, height, width, _ = frames.shape
        pad_h, pad_w = padding_to_multiple(height, width) if any_size else (0, 0)
        if pad_h or pad_w:  # as the network pads itself
            frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="reflect")
        request = self._request(None if any_size else (count, 3, height, width), weights, pixels=True)
        treatment = _untreated(count) if colour is None else colour.float().numpy()
        inputs = {"x": np.ascontiguousarray(frames), "styles": weights.float().numpy(), "colour": treatment}
        with self._lock:
            result = request.infer(inputs)
        return np.array(result[0])[:, :height, :width]

    def _request(self, shape: tuple[int, ...] | None, weights: Tensor, pixels: bool):
        """The compiled model of ``shape`` (None: of every shape), compiled at its first use."""
        key = (shape or ANY_SIZE, pixels)
        with self._lock:
            if key not in self._requests:
                model = self._model(shape, weights)
                model = with_pixel_io(model) if pixels else model
                self._requests[key] = self.core.compile_model(model, "CPU", self.config).create_infer_request()
                while len(self._requests) > MAX_COMPILED_SHAPES:  # memory stays bounded whatever sizes come
                    self._requests.popitem(last=False)
            self._requests.move_to_end(key)
            return self._requests[key]

    def _model(self, shape: tuple[int, ...] | None, weights: Tensor):
        """The shape's model (None: the any-size model) from the cache folder, or exported now
        (and stored there)."""
        if self.cache is None:
            with tempfile.TemporaryDirectory(prefix="clipmorph-onnx-") as tmp:
                return self.core.read_model(str(self._export(shape, weights, Path(tmp))))
        label = "x".join(str(n) for n in shape) if shape else "any"
        stored = self.cache / f"{self.fingerprint}-{label}x{weights.shape[-1]}.xml"
        if stored.is_file() and stored.with_suffix(".bin").is_file():
            os.utime(stored)  # recently used: pruned last
            return self.core.read_model(str(stored))
        with tempfile.TemporaryDirectory(prefix="clipmorph-onnx-", dir=self.cache) as tmp:
            model = self.core.read_model(str(self._export(shape, weights, Path(tmp))))
            staged = Path(tmp) / stored.name
            _openvino().save_model(model, str(staged), compress_to_fp16=False)
            staged.with_suffix(".bin").replace(stored.with_suffix(".bin"))  # the weights first, then
            staged.replace(stored)  # the graph: a reader never finds a graph without its weights
        prune(self.cache, MAX_CACHED_SHAPES)
        return model

    def _export(self, shape: tuple[int, ...] | None, weights: Tensor, folder: Path) -> Path:
        """Export for ``shape`` (the network's own padding to a multiple of 4 is traced in), or
        the network proper with the batch, height and width left open (None)."""
        path = folder / "net.onnx"
        styles = weights.float().clone()
        if shape is None:
            module, x = _Painter(self.net, padded=False), torch.zeros((1, 3, 64, 64))
            styles = styles[:1]
            open_axes = {"x": {0: "n", 2: "h", 3: "w"}, "styles": {0: "n"}, "colour": {0: "n"}}
            open_axes |= {"y": {0: "n", 2: "h", 3: "w"}}
        else:
            module, x, open_axes = _Painter(self.net, padded=True), torch.zeros(shape), None
        colour = torch.from_numpy(_untreated(len(x)))
        # The tracer's warnings concern shape checks that are constants for one exported shape
        # (what this export is for); a user's terminal should not show them. One export at a
        # time in a process: torch's exporter refuses a second one while one runs, and the
        # warning filters are the process's.
        with _EXPORTING, torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module, (x, styles, colour), str(path), input_names=["x", "styles", "colour"], output_names=["y"],
                dynamic_axes=open_axes, dynamo=False, opset_version=17,
            )  # fmt: skip
        self.exports += 1
        return path


ANY_SIZE = ("any",)  # the compiled-model key of the any-size model
_EXPORTING = threading.Lock()  # see _export


def _untreated(count: int) -> np.ndarray:
    """The colour input that leaves the network's colours as they are (photo share 0, gain 1)."""
    return np.tile(np.array([[0.0, 1.0]], np.float32), (count, 1))


class _Painter(torch.nn.Module):
    """The network and the styles' colour treatment, as a module to export. ``padded``: the
    network's own padding to a multiple of 4 traced in (one shape); otherwise ``paint``, with no
    padding or cropping, so the frame size stays open (callers pad)."""

    def __init__(self, net: TransformerNet, padded: bool) -> None:
        super().__init__()
        self.net = net
        self.padded = padded

    def forward(self, x: Tensor, styles: Tensor, colour: Tensor) -> Tensor:
        y = self.net(x, styles) if self.padded else self.net.paint(x, styles)
        return treat_colour(y, x, colour[:, 0], colour[:, 1])


def with_pixel_io(model):
    """The network taking uint8 RGB frames (N, H, W, 3) and giving them back, as the PyTorch
    side does it: divided by 255 in, times 255, rounded half to even and clamped out."""
    from openvino import Layout, Type, opset13
    from openvino.preprocess import PrePostProcessor

    steps = PrePostProcessor(model)
    source = steps.input("x")
    source.tensor().set_element_type(Type.u8).set_layout(Layout("NHWC"))
    source.model().set_layout(Layout("NCHW"))
    source.preprocess().convert_element_type(Type.f32).scale(255.0)
    result = steps.output("y")
    result.model().set_layout(Layout("NCHW"))
    result.tensor().set_layout(Layout("NHWC")).set_element_type(Type.u8)

    def to_pixels(node):
        scaled = opset13.round(opset13.multiply(node, np.float32(255.0)), "half_to_even")
        return opset13.clamp(scaled, 0.0, 255.0).output(0)

    result.postprocess().custom(to_pixels)
    return steps.build()


def prune(cache: Path, keep: int) -> None:
    """Keep the ``keep`` most recently used exported shapes (graph and weights) in ``cache``, and
    as many of OpenVINO's compiled blobs (it never removes its own)."""
    for pattern, folder in (("*.xml", cache), ("*.blob", cache / "compiled")):
        for stale in newest_first(folder.glob(pattern))[keep:]:
            stale.unlink(missing_ok=True)
            if pattern == "*.xml":
                stale.with_suffix(".bin").unlink(missing_ok=True)


def newest_first(paths) -> list[Path]:
    dated = []
    for path in paths:
        try:
            dated.append((path.stat().st_mtime, path))
        except FileNotFoundError:  # another process pruned it meanwhile
            continue
    return [path for _, path in sorted(dated, reverse=True)]
