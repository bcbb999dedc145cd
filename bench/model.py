"""Model only: frames/s and megapixels/s per width, size, batch and backend."""

from __future__ import annotations

import time

import torch

from bench.timing import measure
from clipmorph.model.network import WIDTHS, TransformerNet

SIZES = {"640x360": (360, 640), "1280x720": (720, 1280), "1920x1080": (1080, 1920)}
# fp32 eager is the baseline; bf16 + channels_last is the engine's CPU default; compiled adds
# torch.compile (inductor) on top, one compilation per shape (its time is reported too);
# openvino is the engine's OpenVINO backend (the network through ONNX, compiled per shape).
BACKENDS = ("fp32-eager", "bf16-eager", "bf16-compiled", "openvino")


def build(width: str, backend: str) -> tuple[torch.nn.Module, torch.dtype, bool]:
    torch.manual_seed(0)
    net = TransformerNet(WIDTHS[width], 2).eval()  # random weights: speed does not depend on them
    if backend == "fp32-eager":
        return net, torch.float32, False
    net = net.to(torch.bfloat16).to(memory_format=torch.channels_last)
    if backend == "bf16-compiled":
        torch._dynamo.config.cache_size_limit = 64
        return torch.compile(net, dynamic=False), torch.bfloat16, True
    return net, torch.bfloat16, True


def openvino_step(width: str, batch: int, height: int, width_px: int) -> tuple[str, object]:
    """The engine's OpenVINO backend (through ONNX, compiled for this shape; bf16 where the CPU
    has it). Returns the backend's label and a step that runs one pass."""
    from clipmorph.inference.openvino import OpenVinoNetwork, cpu_has_bf16

    net, _, _ = build(width, "fp32-eager")
    bf16 = cpu_has_bf16()
    network = OpenVinoNetwork(net, bf16=bf16)
    x = torch.rand(batch, 3, height, width_px)
    styles = torch.nn.functional.one_hot(torch.zeros(batch, dtype=torch.long), net.num_styles).float()
    return ("bf16" if bf16 else "fp32") + "-openvino", lambda: network(x, styles)


def plan(quick: bool) -> list[tuple[str, str, int, str]]:
    """(width, size, batch, backend) cases, trimmed so a 2-core CPU finishes in minutes."""
    cases = []
    for width in ("lite", "full"):
        for size in SIZES:
            for backend in BACKENDS:
                cases.append((width, size, 1, backend))
            if size == "640x360":
                cases += [(width, size, batch, "bf16-eager") for batch in (4, 16)]
    if quick:
        cases = [c for c in cases if c[1] == "640x360" and c[2] == 1]
    return cases


def torch_step(nets: dict, width: str, backend: str, batch: int, height: int, width_px: int):
    net, dtype, channels_last = nets.setdefault((width, backend), build(width, backend))
    x = torch.rand(batch, 3, height, width_px).to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    styles = torch.zeros(batch, dtype=torch.long)
    return backend, lambda: net(x, styles)


def run(quick: bool = False) -> list[dict]:
    rows = []
    nets: dict[tuple[str, str], tuple] = {}
    for width, size, batch, backend in plan(quick):
        height, width_px = SIZES[size]
        with torch.inference_mode():
            started = time.perf_counter()
            if backend == "openvino":
                label, step = openvino_step(width, batch, height, width_px)
            else:
                label, step = torch_step(nets, width, backend, batch, height, width_px)
            step()  # first call: compiles for this shape when compiled (OpenVINO: export too)
            first_call = time.perf_counter() - started
            timing = measure(step, warmup=1, min_runs=3, max_runs=5, min_seconds=2.0)
        fps = timing.rate(batch)
        row = {"section": "model", "width": width, "size": size, "batch": batch, "backend": label,
               "fps": round(fps, 2), "megapixels_per_s": round(fps * height * width_px / 1e6, 2),
               "first_call_s": round(first_call, 2), "threads": torch.get_num_threads(),
               **timing.to_dict()}  # fmt: skip
        rows.append(row)
        spread = f"median {timing.median_s:.3f} s, {timing.min_s:.3f}-{timing.max_s:.3f}, n={timing.runs}"
        print(f"model  {width:<4} {size:>9} batch {batch:>2} {label:<14} {fps:7.2f} frames/s ({spread})", flush=True)
    return rows
