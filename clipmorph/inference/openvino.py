"""The CPU network run by OpenVINO instead of PyTorch (`--backend openvino`).

On some CPUs it is faster than torch.compile at large frame sizes (bench/RESULTS.md,
`bf16-openvino` rows). The network goes through ONNX once per input shape (seconds, like
torch.compile's per-shape cost), then OpenVINO compiles it for this CPU. Needs the optional
packages: `pip install clipmorph[openvino]`.
"""

from __future__ import annotations

import tempfile
import threading
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


class OpenVinoNetwork:
    """Called like a TransformerNet with style weight rows: ``(x, weights) -> y``, float32 in and out."""

    def __init__(self, net: TransformerNet, bf16: bool, threads: int | None = None) -> None:
        self.net = net.float().eval()
        self.core = _openvino().Core()
        self.config = {
            "INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32",
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": threads or torch.get_num_threads(),
        }
        self._requests: dict[tuple[int, ...], object] = {}
        self._lock = threading.Lock()

    def __call__(self, x: Tensor, weights: Tensor) -> Tensor:
        with self._lock:
            request = self._requests.get(tuple(x.shape)) or self._compile(x, weights)
            result = request.infer({"x": x.float().numpy(), "styles": weights.float().numpy()})
        return torch.from_numpy(np.array(result[0]))

    def _compile(self, x: Tensor, weights: Tensor):
        """Export for this shape (the network's own padding to a multiple of 4 is traced in)."""
        with tempfile.TemporaryDirectory(prefix="clipmorph-onnx-") as tmp:
            path = Path(tmp) / "net.onnx"
            with torch.inference_mode(False), torch.no_grad():
                torch.onnx.export(
                    self.net, (x.float().clone(), weights.float().clone()), str(path),
                    input_names=["x", "styles"], output_names=["y"], dynamo=False, opset_version=17,
                )  # fmt: skip
            model = self.core.read_model(str(path))
        request = self.core.compile_model(model, "CPU", self.config).create_infer_request()
        self._requests[tuple(x.shape)] = request
        return request
