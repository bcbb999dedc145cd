"""Training throughput (`python -m bench --sections training --merge`): crops per second of the
catalogue's own training (the `full` backbone from models/, all 21 paintings, content, style,
TV, temporal terms, and the teacher anchor where its renderings are cached), per batch size, on
this machine's device. Each row times the steps after the first two (start-up, first kernels).

The teacher renderings are looked for in $CLIPMORPH_TEACHER_DIR, else training/runs/teacher
(`python training/build_catalogue.py teach`); without them the anchor is left out (the row says).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import torch

from bench.paths import REPO, data_root

CPU_BATCHES, GPU_BATCHES = (2, 4), (16, 32, 64, 128)
CPU_SIZE, GPU_SIZE = 192, 256
SECONDS = {"cpu": 75.0, "cuda": 45.0}


def device_label(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name(0)
    from bench.__main__ import machine

    return f"cpu ({machine()['cpu']}, {torch.get_num_threads()} threads)"


def teacher_root() -> Path | None:
    root = Path(os.environ.get("CLIPMORPH_TEACHER_DIR", REPO / "training" / "runs" / "teacher"))
    return root if root.is_dir() else None


def measure(
    batch: int, image_size: int, device: str, seconds: float, workers: int, crops: str, compiled: bool = False
) -> dict:
    from clipmorph.training.config import TrainConfig, styles_from_toml
    from clipmorph.training.trainer import Trainer

    data = data_root()
    _, styles = styles_from_toml(REPO / "training" / "catalogue.toml", data / "styles")
    teacher = teacher_root()
    folders = ["bsds500", "imagenet-sample", "urban100", "coco2014-224"]
    marks: list[tuple[int, float]] = []
    with tempfile.TemporaryDirectory(prefix="clipmorph-bench-train-") as tmp:
        config = TrainConfig(
            styles, [data / "content" / f for f in folders], Path(tmp), init_from=REPO / "models",
            norm="mean-after-encoder", steps=1_000_000, batch_size=batch, image_size=image_size, device=device,
            workers=workers, crops=crops, compile=compiled, max_minutes=seconds / 60, wandb=False,
            checkpoint_every=10**9, sample_every=10**9, teacher_dir=teacher, teacher_weight=3e6 if teacher else 0.0,
        )  # fmt: skip
        Trainer(config).run(progress=lambda step, *_: marks.append((step, time.monotonic())), show_bar=False)
    (first_step, first), (last_step, last) = marks[min(1, len(marks) - 1)], marks[-1]
    timed = last_step - first_step
    return {
        "section": "training",
        "device": device_label(device),
        "batch": batch,
        "image_size": image_size,
        "teacher": bool(teacher),
        "crops": crops,
        "compiled": compiled,
        "steps": timed,
        "seconds": round(last - first, 2),
        "crops_per_s": round(timed * batch / (last - first), 2) if timed else 0.0,
    }


def run(quick: bool = False) -> list[dict]:
    if not (REPO / "models" / "manifest.json").is_file() or not (data_root() / "content").is_dir():
        print("training: needs models/ and $CLIPMORPH_DATA (photos, paintings); skipped", flush=True)
        return []
    device = "cuda" if torch.cuda.is_available() else "cpu"
    batches = GPU_BATCHES if device == "cuda" else CPU_BATCHES
    size = GPU_SIZE if device == "cuda" else CPU_SIZE
    seconds = SECONDS[device] / (3 if quick else 1)
    workers = max(0, min(14, (os.cpu_count() or 2) - 2))
    rows = []
    # Every batch size on the device's own crop path; the largest on the other path too (cut on
    # the GPU or by loader processes), to show what the data path costs, and on a GPU compiled.
    own = "device" if device == "cuda" else "loader"
    runs = [(batch, own, False) for batch in (batches[:1] if quick else batches)]
    largest = runs[-1][0]
    runs.append((largest, "loader" if device == "cuda" else "device", False))
    if device == "cuda":
        runs.append((largest, own, True))
    for batch, crops, compiled in runs:
        compiling = 90.0 if compiled else 0.0  # the first steps compile; the timed ones come after
        row = measure(batch, size, device, seconds + compiling, workers, crops, compiled)
        print(f"training: {row}", flush=True)
        rows.append(row)
    return rows
