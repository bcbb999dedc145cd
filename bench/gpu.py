"""GPU figures (`python -m bench --sections gpu --merge` on a machine with CUDA):

- model only: frames/s of `full` and `lite` at 640x360..1920x1080, batch 1 and 8, fp16 +
  channels_last eager, the same replayed as a CUDA graph (fixed shapes: no launch cost), and
  torch.compile at 1080p batch 8, also with the RGB convolutions padded to 8 channels or folded
  into 4x4 pixel blocks (`python -m bench.gpu_profile` shows where the time goes);
- style creation: the `fast` and `best` add-a-style presets timed alone (the same training the
  service's jobs run, without the service), on the catalogue in models/.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from bench.model import SIZES
from bench.paths import CREATION_PAINTING, REPO, data_root
from bench.timing import measure
from clipmorph.model.fast_convs import with_blocked_rgb_convs, with_padded_rgb_convs
from clipmorph.model.network import WIDTHS, TransformerNet

BACKENDS = ("fp16-eager", "fp16-cudagraph")
BATCHES = (1, 8)
COMPILED_CASE = ("1920x1080", 8)


def device_name() -> str:
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def graphed(net: torch.nn.Module, x: torch.Tensor, styles: torch.Tensor):
    """Capture one forward pass as a CUDA graph; replaying it reruns every kernel on the same buffers."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):  # warm up on a side stream, as capture requires
            net(x, styles)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        net(x, styles)
    return graph.replay


def timed(step, batch: int, repeats: int = 20):
    """Frames/s of ``step`` (one forward pass of ``batch`` frames); ``repeats`` passes per timed
    run, then a synchronise: the GPU runs ahead of Python, so only bulk timings mean anything."""

    def work() -> None:
        for _ in range(repeats):
            step()
        torch.cuda.synchronize()

    timing = measure(work, warmup=1, min_runs=3, max_runs=7, min_seconds=1.0)
    return timing.rate(batch * repeats), timing


def fp16_network(width: str) -> torch.nn.Module:
    """A ``width`` network with random weights (speed does not depend on them), fp16 channels_last on the GPU."""
    torch.manual_seed(0)
    return TransformerNet(WIDTHS[width], 2).eval().to("cuda", torch.float16).to(memory_format=torch.channels_last)


def fp16_inputs(batch: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random frames in the network's layout, and style row 0 for each."""
    x = torch.rand(batch, 3, height, width, device="cuda", dtype=torch.float16)
    return x.contiguous(memory_format=torch.channels_last), torch.zeros(batch, dtype=torch.long, device="cuda")


def compiled_step(net: torch.nn.Module, x: torch.Tensor, styles: torch.Tensor):
    compiled = torch.compile(net, dynamic=False)
    compiled(x, styles)  # compile now, not in the timing
    return lambda: compiled(x, styles)


def width_rows(width: str, batches: tuple[int, ...]) -> list[dict]:
    rows = []
    net = fp16_network(width)
    for size, (height, width_px) in SIZES.items():
        for batch in batches:
            x, styles = fp16_inputs(batch, height, width_px)
            with torch.inference_mode():
                steps = {"fp16-eager": lambda x=x, styles=styles: net(x, styles)}
                try:
                    steps["fp16-cudagraph"] = graphed(net, x, styles)
                except RuntimeError as error:  # reported; the eager figure still stands
                    print(f"gpu    {width} {size} batch {batch}: CUDA graph capture failed: {error}", flush=True)
                if (size, batch) == COMPILED_CASE:  # inductor: ~12 s of compiling per shape, so one shape
                    steps["fp16-compiled"] = compiled_step(net, x, styles)
                    # RGB convolutions padded to 8 channels: tensor-core kernels for the 9x9 layers
                    steps["fp16-compiled-padded"] = compiled_step(with_padded_rgb_convs(net), x, styles)
                    # the same layers folded into 4x4 pixel blocks: 3x3 convolutions, 48 -> 512 channels
                    steps["fp16-compiled-blocked"] = compiled_step(with_blocked_rgb_convs(net), x, styles)
                for backend, step in steps.items():
                    fps, timing = timed(step, batch)
                    rows.append({"section": "gpu-model", "width": width, "size": size, "batch": batch,
                                 "backend": backend, "fps": round(fps, 1),
                                 "megapixels_per_s": round(fps * height * width_px / 1e6, 1),
                                 "gpu": device_name(), **timing.to_dict()})  # fmt: skip
                    print(f"gpu    {width:<4} {size:>9} batch {batch:>2} {backend:<15} {fps:8.1f} frames/s", flush=True)
    torch.cuda.empty_cache()
    return rows


def model_rows(quick: bool) -> list[dict]:
    batches = BATCHES[:1] if quick else BATCHES
    return [row for width in ("full", "lite") for row in width_rows(width, batches)]


def preset_rows(presets: tuple[str, ...]) -> list[dict]:
    """Add-a-style training per preset on the catalogue backbone (models/), painting and photos
    from $CLIPMORPH_DATA: seconds of training as a creation job would spend them."""
    from clipmorph.styles.catalogue import read_catalogue
    from clipmorph.training.config import StyleSource
    from clipmorph.training.presets import preset_config
    from clipmorph.training.trainer import train

    base = read_catalogue(REPO / "models").only_backbone("catalogue-full")
    (backbone,) = base.backbones.values()
    content = sorted(p for p in (data_root() / "content").iterdir() if p.is_dir())
    rows = []
    for preset in presets:
        source = StyleSource("bench-" + preset, data_root() / "styles" / CREATION_PAINTING)
        with tempfile.TemporaryDirectory() as scratch:
            config = preset_config(source, preset, content, backbone.name, Path(scratch), wandb=False)
            started = time.monotonic()
            result = train(config, base=base, show_bar=False)
            wall = time.monotonic() - started
        rows.append({"section": "gpu-presets", "preset": preset, "steps": result.step,
                     "training_s": round(result.seconds, 1), "wall_s": round(wall, 1),
                     "gpu": device_name()})  # fmt: skip
        print(f"gpu    preset {preset}: {result.step} steps, {result.seconds:.1f} s training, {wall:.1f} s with set-up")
    return rows


def run(quick: bool = False) -> list[dict]:
    if not torch.cuda.is_available():
        print("gpu: no CUDA device here; nothing measured")
        return []
    return model_rows(quick) + preset_rows(("fast",) if quick else ("fast", "best"))
