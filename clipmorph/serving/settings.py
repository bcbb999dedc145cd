"""Service limits and locations, read from environment variables (one place, documented)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


@dataclass(frozen=True)
class ServiceSettings:
    max_upload_bytes: int  # CLIPMORPH_MAX_UPLOAD_MB: larger request bodies get 413
    max_image_pixels: int  # CLIPMORPH_MAX_IMAGE_MEGAPIXELS: header dimensions checked before decoding
    max_side: int  # CLIPMORPH_MAX_SIDE: network resolution cap and default
    max_batch_images: int  # CLIPMORPH_MAX_BATCH_IMAGES: images per /stylize_batch request
    max_video_seconds: float  # CLIPMORPH_MAX_VIDEO_SECONDS: video jobs
    max_sync_video_seconds: float  # CLIPMORPH_MAX_SYNC_VIDEO_SECONDS: the synchronous video endpoint
    max_video_pixels: int  # CLIPMORPH_MAX_VIDEO_MEGAPIXELS: per frame
    jobs_dir: Path  # CLIPMORPH_JOBS_DIR: video job inputs, outputs and progress
    job_ttl_seconds: float  # CLIPMORPH_JOB_TTL_SECONDS: finished jobs are swept after this
    video_encoder: str  # CLIPMORPH_VIDEO_ENCODER: auto (NVENC where it starts, else x264), libx264, h264_nvenc
    device: str  # CLIPMORPH_DEVICE: auto, cpu, cuda
    compile: bool  # CLIPMORPH_COMPILE: torch.compile the networks (1/0)
    backend: str  # CLIPMORPH_BACKEND: torch, or openvino (CPU; needs clipmorph[openvino])
    batch_size: int | None  # CLIPMORPH_BATCH_SIZE: frames per forward pass (unset: 1 on CPU, 8 on GPU)
    max_batch_size: int  # CLIPMORPH_MAX_BATCH_SIZE: adaptive batching upper bound
    max_latency_ms: int  # CLIPMORPH_MAX_LATENCY_MS: batch queue budget; a fuller queue answers 503 at once
    max_concurrency: int  # CLIPMORPH_MAX_CONCURRENCY: requests in the API at once; more get 429 at once
    admin_token: str  # CLIPMORPH_ADMIN_TOKEN: required by style create/delete (unset: loopback-only servers)
    train_content: list[Path]  # CLIPMORPH_TRAIN_CONTENT: photo folders for style creation (os.pathsep list)
    train_base: str  # CLIPMORPH_TRAIN_BASE: backbone (or style id) new styles are added to
    max_trainings: int  # CLIPMORPH_MAX_TRAININGS: style trainings at once on this device
    train_nice: int  # CLIPMORPH_TRAIN_NICE: CPU priority drop of training processes (0-19)
    wandb: bool  # CLIPMORPH_WANDB: log style jobs to Weights & Biases (offline without a key)
    wandb_dir: Path  # CLIPMORPH_WANDB_DIR: where W&B runs of style jobs are written

    @classmethod
    def from_env(cls) -> ServiceSettings:
        return cls(
            max_upload_bytes=int(float(_env("CLIPMORPH_MAX_UPLOAD_MB", "200")) * 1024 * 1024),
            max_image_pixels=int(float(_env("CLIPMORPH_MAX_IMAGE_MEGAPIXELS", "50")) * 1_000_000),
            max_side=int(_env("CLIPMORPH_MAX_SIDE", "1920")),
            max_batch_images=int(_env("CLIPMORPH_MAX_BATCH_IMAGES", "32")),
            max_video_seconds=float(_env("CLIPMORPH_MAX_VIDEO_SECONDS", "300")),
            max_sync_video_seconds=float(_env("CLIPMORPH_MAX_SYNC_VIDEO_SECONDS", "10")),
            max_video_pixels=int(float(_env("CLIPMORPH_MAX_VIDEO_MEGAPIXELS", "8.3")) * 1_000_000),
            jobs_dir=Path(_env("CLIPMORPH_JOBS_DIR", str(Path(tempfile.gettempdir()) / "clipmorph-jobs"))),
            job_ttl_seconds=float(_env("CLIPMORPH_JOB_TTL_SECONDS", "3600")),
            video_encoder=_env("CLIPMORPH_VIDEO_ENCODER", "auto"),
            device=_env("CLIPMORPH_DEVICE", "auto"),
            compile=_env("CLIPMORPH_COMPILE", "0").lower() in ("1", "true", "yes"),
            backend=_env("CLIPMORPH_BACKEND", "torch"),
            batch_size=int(_env("CLIPMORPH_BATCH_SIZE", "0")) or None,
            max_batch_size=int(_env("CLIPMORPH_MAX_BATCH_SIZE", "16")),
            max_latency_ms=int(_env("CLIPMORPH_MAX_LATENCY_MS", "20000")),
            max_concurrency=int(_env("CLIPMORPH_MAX_CONCURRENCY", "64")),
            admin_token=_env("CLIPMORPH_ADMIN_TOKEN", ""),
            train_content=[Path(p) for p in _env("CLIPMORPH_TRAIN_CONTENT", "").split(os.pathsep) if p],
            train_base=_env("CLIPMORPH_TRAIN_BASE", "catalogue-full"),
            max_trainings=int(_env("CLIPMORPH_MAX_TRAININGS", "1")),
            train_nice=int(_env("CLIPMORPH_TRAIN_NICE", "10")),
            wandb=_env("CLIPMORPH_WANDB", "1").lower() in ("1", "true", "yes"),
            wandb_dir=Path(_env("CLIPMORPH_WANDB_DIR", str(Path(tempfile.gettempdir()) / "clipmorph-wandb"))),
        )

    def describe(self) -> dict:
        """For /info: every setting except secrets."""
        shown = {f.name: str(getattr(self, f.name)) for f in fields(self) if f.name != "admin_token"}
        return shown | {"admin_token": "set" if self.admin_token else "unset"}
