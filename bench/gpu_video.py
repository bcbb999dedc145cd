"""GPU video end to end (`python -m bench --sections gpu_video --merge` on a CUDA machine): the
real clip and its 720p/1080p copies through the CLI's pipeline with the `full` network on the
GPU; decoding and encoding stay on the CPU codecs (PyAV), overlapped with the GPU by the pipeline."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from bench.gpu import device_name
from bench.video import clip_rows, scaled_clips, source_clip


def run(quick: bool = False) -> list[dict]:
    if not torch.cuda.is_available():
        print("gpu_video: no CUDA device here; nothing measured")
        return []
    clip = source_clip()
    if clip is None:
        return []
    with tempfile.TemporaryDirectory(prefix="clipmorph-bench-gpu-") as tmp:
        sizes = [(1920, 1080)] if quick else [(1280, 720), (1920, 1080)]
        rows = clip_rows("gpu_video", "full", scaled_clips(clip, Path(tmp), sizes), "cuda", Path(tmp))
    return [row | {"gpu": device_name()} for row in rows]
