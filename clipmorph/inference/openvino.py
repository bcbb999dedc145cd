"""The CPU network run by OpenVINO instead of PyTorch (`--backend openvino`).

On some CPUs it is faster than torch.compile at large frame sizes (bench/RESULTS.md,
`bf16-openvino` rows). The network goes through ONNX once per input shape (seconds, like
torch.compile's per-shape cost), then OpenVINO compiles it for this CPU. Both results are kept
on disk (``openvino/`` in the cache folder), keyed by the network's weights, the shape and the
library versions, so a second process, or the service after a restart, pays neither again.
Needs the optional packages: `pip install clipmorph[openvino]`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from clipmorph.errors import BadInput
from clipmorph.model.network import TransformerNet


def _openvino():
    try:
        import onnx  # noqa: F401  (torch.onnx.export writes through it)
        import openvino
    except ImportError as error:
        missing = f"{error.name} is missing"
        raise BadInput(f"the openvino backend needs `pip install clipmorph[openvino]` ({missing})") from None
    return openvino


def cpu_has_bf16() -> bool:
    return "BF16" in _openvino().Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


MAX_CACHED_SHAPES = 64  # exported shapes kept per cache folder; the least recently used go first
MAX_COMPILED_SHAPES = 16  # compiled shapes kept in memory per network; the least recently used go first


def network_fingerprint(net: TransformerNet) -> str:
    """A content hash of the network (every weight and style vector) and the versions that
    shape its export: a changed style or an upgraded library never reuses a stale model."""
    import openvino

    digest = hashlib.sha256(f"{torch.__version__} {openvino.__version__}".encode())
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

    def __call__(self, x: Tensor, weights: Tensor) -> Tensor:
        with self._lock:
            request = self._requests.get(tuple(x.shape)) or self._compile(x, weights)
            self._requests.move_to_end(tuple(x.shape))
            result = request.infer({"x": x.float().numpy(), "styles": weights.float().numpy()})
        return torch.from_numpy(np.array(result[0]))

    def _compile(self, x: Tensor, weights: Tensor):
        model = self._model(x, weights)
        request = self.core.compile_model(model, "CPU", self.config).create_infer_request()
        self._requests[tuple(x.shape)] = request
        while len(self._requests) > MAX_COMPILED_SHAPES:  # memory stays bounded however many sizes come
            self._requests.popitem(last=False)
        return request

    def _model(self, x: Tensor, weights: Tensor):
        """The shape's model from the cache folder, or exported now (and stored there)."""
        if self.cache is None:
            with tempfile.TemporaryDirectory(prefix="clipmorph-onnx-") as tmp:
                return self.core.read_model(str(self._export(x, weights, Path(tmp))))
        shape = "x".join(str(n) for n in (*x.shape, weights.shape[-1]))
        stored = self.cache / f"{self.fingerprint}-{shape}.xml"
        if stored.is_file() and stored.with_suffix(".bin").is_file():
            os.utime(stored)  # recently used: pruned last
            return self.core.read_model(str(stored))
        with tempfile.TemporaryDirectory(prefix="clipmorph-onnx-", dir=self.cache) as tmp:
            model = self.core.read_model(str(self._export(x, weights, Path(tmp))))
            staged = Path(tmp) / stored.name
            _openvino().save_model(model, str(staged), compress_to_fp16=False)
            staged.with_suffix(".bin").replace(stored.with_suffix(".bin"))  # the weights first, then
            staged.replace(stored)  # the graph: a reader never finds a graph without its weights
        prune(self.cache, MAX_CACHED_SHAPES)
        return model

    def _export(self, x: Tensor, weights: Tensor, folder: Path) -> Path:
        """Export for this shape (the network's own padding to a multiple of 4 is traced in)."""
        path = folder / "net.onnx"
        with torch.inference_mode(False), torch.no_grad():
            torch.onnx.export(
                self.net, (x.float().clone(), weights.float().clone()), str(path),
                input_names=["x", "styles"], output_names=["y"], dynamo=False, opset_version=17,
            )  # fmt: skip
        self.exports += 1
        return path


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
