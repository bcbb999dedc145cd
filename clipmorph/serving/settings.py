"""The service's limits and locations: every ``CLIPMORPH_*`` variable it reads, in one place.

Read once, when ``service.py`` is imported, and checked then: a value that does not parse or
is out of range stops the service with the variable's name, instead of failing some request
later. (The CLI and training read theirs in ``clipmorph.environment``.)
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TypeVar

from clipmorph.errors import ClipMorphError

T = TypeVar("T")
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")
BACKENDS = ("torch", "openvino")
ENCODERS = ("auto", "libx264", "h264_nvenc")


class SettingsError(ClipMorphError):
    """A service setting is malformed: the message names the variable and what it takes."""


class UnknownChoice(ValueError):
    pass


def _read(name: str, default: str, parse: Callable[[str], T], expect: str, valid: Callable[[T], bool] = bool) -> T:
    text = os.environ.get(name, default).strip()
    try:
        value = parse(text)
    except ValueError as error:
        detail = str(error) if isinstance(error, UnknownChoice) else f"expected {expect}"
        raise SettingsError(f"{name}={text!r}: {detail}") from None
    if not valid(value):
        raise SettingsError(f"{name}={text!r}: expected {expect}")
    return value


def _flag(text: str) -> bool:
    if text.lower() in TRUE:
        return True
    if text.lower() in FALSE:
        return False
    raise ValueError(text)


def _scaled(scale: float) -> Callable[[str], int]:
    """A number of megabytes or megapixels -> whole bytes or pixels."""

    def parse(text: str) -> int:
        return int(float(text) * scale)

    return parse


def _device(text: str) -> str:
    if text in ("auto", "cpu", "cuda") or (text.startswith("cuda:") and text[5:].isdigit()):
        return text
    raise ValueError(text)


def _one_of(what: str, choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise UnknownChoice(f"unknown {what} {text!r}; choose from {', '.join(choices)}")
        return text

    return parse


def gpu_count() -> int:
    """NVIDIA GPUs this process may use, from the driver's files (no torch, no CUDA init)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return 0
    gpus = Path("/proc/driver/nvidia/gpus")
    found = len(list(gpus.iterdir())) if gpus.is_dir() else 0
    if visible is not None:
        found = min(found, len([v for v in visible.split(",") if v.strip()]))
    return found


def _temp(name: str) -> str:
    return str(Path(tempfile.gettempdir()) / name)


def _positive_number(value: float) -> bool:
    return value > 0


JSON_BODY_BYTES = 64 * 1024  # the routes that take a few JSON fields


@dataclass(frozen=True)
class ServiceSettings:
    max_upload_bytes: int  # CLIPMORPH_MAX_UPLOAD_MB: larger request bodies get 413 (videos, batches)
    max_image_upload_bytes: int  # CLIPMORPH_MAX_IMAGE_UPLOAD_MB: the same for one-image routes
    body_idle_seconds: float  # CLIPMORPH_BODY_IDLE_SECONDS: an upload that sends nothing this long gets 408
    body_total_seconds: float  # CLIPMORPH_BODY_TIMEOUT_SECONDS: an upload not complete after this gets 408
    header_timeout_seconds: float  # CLIPMORPH_HEADER_TIMEOUT_SECONDS: a request head not complete after this: closed
    max_image_pixels: int  # CLIPMORPH_MAX_IMAGE_MEGAPIXELS: header dimensions checked before decoding
    max_side: int  # CLIPMORPH_MAX_SIDE: network resolution cap and default
    max_batch_images: int  # CLIPMORPH_MAX_BATCH_IMAGES: images per /stylize_batch request
    max_batch_pixels: int  # CLIPMORPH_MAX_BATCH_MEGAPIXELS: all of a request's images together, by their headers
    max_video_seconds: float  # CLIPMORPH_MAX_VIDEO_SECONDS: video jobs
    max_sync_video_seconds: float  # CLIPMORPH_MAX_SYNC_VIDEO_SECONDS: the synchronous video endpoint
    max_video_pixels: int  # CLIPMORPH_MAX_VIDEO_MEGAPIXELS: per frame
    max_video_fps: float  # CLIPMORPH_MAX_VIDEO_FPS: frame rate; frames are capped at seconds x this
    jobs_dir: Path  # CLIPMORPH_JOBS_DIR: video job inputs, outputs and progress
    max_video_jobs: int  # CLIPMORPH_MAX_VIDEO_JOBS: video jobs running at once
    max_queued_video_jobs: int  # CLIPMORPH_MAX_QUEUED_VIDEO_JOBS: jobs waiting; more get 503
    job_ttl_seconds: float  # CLIPMORPH_JOB_TTL_SECONDS: finished jobs are swept after this
    replica_timeout_seconds: float  # CLIPMORPH_REPLICA_TIMEOUT_SECONDS: a replica silent this long is gone
    jobs_url: str  # CLIPMORPH_JOBS_URL: a bucket every replica mirrors its jobs to (no shared folder needed)
    video_encoder: str  # CLIPMORPH_VIDEO_ENCODER: auto (NVENC where it starts, else x264), libx264, h264_nvenc
    device: str  # CLIPMORPH_DEVICE: auto, cpu, cuda, cuda:N
    compile: bool  # CLIPMORPH_COMPILE: torch.compile the networks (1/0)
    backend: str  # CLIPMORPH_BACKEND: torch, or openvino (CPU; needs clipmorph[openvino])
    batch_size: int | None  # CLIPMORPH_BATCH_SIZE: frames per forward pass (unset: 1 on CPU, 8 on GPU)
    max_batch_size: int  # CLIPMORPH_MAX_BATCH_SIZE: adaptive batching upper bound
    max_latency_ms: int  # CLIPMORPH_MAX_LATENCY_MS: batch queue budget; a fuller queue answers 503 at once
    max_concurrency: int  # CLIPMORPH_MAX_CONCURRENCY: requests processed at once (body in); more get 429 at once
    max_requests_per_client: int  # CLIPMORPH_MAX_REQUESTS_PER_CLIENT: open requests per client address (0: no cap)
    admin_token: str  # CLIPMORPH_ADMIN_TOKEN: required by style create/delete (unset: loopback-only servers)
    allowed_origins: list[str]  # CLIPMORPH_ALLOWED_ORIGINS: other sites' pages that may change state (comma list)
    train_content: list[Path]  # CLIPMORPH_TRAIN_CONTENT: photo folders for style creation (os.pathsep list)
    train_base: str  # CLIPMORPH_TRAIN_BASE: backbone (or style id) new styles are added to
    max_trainings: int  # CLIPMORPH_MAX_TRAININGS: style trainings at once on this device
    train_nice: int  # CLIPMORPH_TRAIN_NICE: CPU priority drop of training processes (0-19)
    wandb: bool  # CLIPMORPH_WANDB: log style jobs to Weights & Biases (offline without a key)
    wandb_dir: Path  # CLIPMORPH_WANDB_DIR: where W&B runs of style jobs are written
    models_url: str  # CLIPMORPH_MODELS_URL: a bucket (s3://...) or folder of `clipmorph styles push`; "" for none
    models_poll_seconds: float  # CLIPMORPH_MODELS_POLL_SECONDS: look there again this often (0: only at start)

    @classmethod
    def from_env(cls) -> ServiceSettings:
        """Read and check every setting; SettingsError names the first bad one."""
        count, number, size = "a whole number >= 1", "a number > 0", "a number of megabytes > 0"
        return cls(
            max_upload_bytes=_read("CLIPMORPH_MAX_UPLOAD_MB", "200", _scaled(1024 * 1024), size, _positive_number),
            max_image_upload_bytes=_read(
                "CLIPMORPH_MAX_IMAGE_UPLOAD_MB", "50", _scaled(1024 * 1024), size, _positive_number
            ),
            body_idle_seconds=_read("CLIPMORPH_BODY_IDLE_SECONDS", "20", float, number, _positive_number),
            body_total_seconds=_read("CLIPMORPH_BODY_TIMEOUT_SECONDS", "300", float, number, _positive_number),
            header_timeout_seconds=_read("CLIPMORPH_HEADER_TIMEOUT_SECONDS", "15", float, number, _positive_number),
            max_image_pixels=_read("CLIPMORPH_MAX_IMAGE_MEGAPIXELS", "50", _scaled(1e6), number, _positive_number),
            max_side=_read("CLIPMORPH_MAX_SIDE", "1920", int, "a whole number >= 16", lambda v: v >= 16),
            max_batch_pixels=_read("CLIPMORPH_MAX_BATCH_MEGAPIXELS", "100", _scaled(1e6), number, _positive_number),
            max_batch_images=_read("CLIPMORPH_MAX_BATCH_IMAGES", "32", int, count, lambda v: v >= 1),
            max_video_seconds=_read("CLIPMORPH_MAX_VIDEO_SECONDS", "300", float, number, _positive_number),
            max_sync_video_seconds=_read("CLIPMORPH_MAX_SYNC_VIDEO_SECONDS", "10", float, number, _positive_number),
            max_video_pixels=_read("CLIPMORPH_MAX_VIDEO_MEGAPIXELS", "8.3", _scaled(1e6), number, _positive_number),
            max_video_fps=_read("CLIPMORPH_MAX_VIDEO_FPS", "120", float, number, _positive_number),
            jobs_dir=Path(_read("CLIPMORPH_JOBS_DIR", _temp("clipmorph-jobs"), str, "a folder")),
            max_video_jobs=_read("CLIPMORPH_MAX_VIDEO_JOBS", "2", int, count, lambda v: v >= 1),
            max_queued_video_jobs=_read(
                "CLIPMORPH_MAX_QUEUED_VIDEO_JOBS", "16", int, "a whole number >= 0", lambda v: v >= 0
            ),
            job_ttl_seconds=_read("CLIPMORPH_JOB_TTL_SECONDS", "3600", float, number, _positive_number),
            replica_timeout_seconds=_read("CLIPMORPH_REPLICA_TIMEOUT_SECONDS", "30", float, number, _positive_number),
            jobs_url=os.environ.get("CLIPMORPH_JOBS_URL", "").strip().rstrip("/"),
            video_encoder=_read("CLIPMORPH_VIDEO_ENCODER", "auto", _one_of("video encoder", ENCODERS), ""),
            device=_read("CLIPMORPH_DEVICE", "auto", _device, "auto, cpu, cuda or cuda:N"),
            compile=_read("CLIPMORPH_COMPILE", "0", _flag, "1 or 0", lambda _: True),
            backend=_read("CLIPMORPH_BACKEND", "torch", _one_of("backend", BACKENDS), ""),
            batch_size=_read("CLIPMORPH_BATCH_SIZE", "0", int, "0 (automatic) or a whole number", lambda v: v >= 0)
            or None,
            max_batch_size=_read("CLIPMORPH_MAX_BATCH_SIZE", "16", int, count, lambda v: v >= 1),
            max_latency_ms=_read("CLIPMORPH_MAX_LATENCY_MS", "20000", int, count, lambda v: v >= 1),
            max_concurrency=_read("CLIPMORPH_MAX_CONCURRENCY", "64", int, count, lambda v: v >= 1),
            max_requests_per_client=_read(
                "CLIPMORPH_MAX_REQUESTS_PER_CLIENT", "32", int, "a whole number >= 0 (0: no cap)", lambda v: v >= 0
            ),
            admin_token=os.environ.get("CLIPMORPH_ADMIN_TOKEN", ""),
            allowed_origins=[
                o.strip() for o in os.environ.get("CLIPMORPH_ALLOWED_ORIGINS", "").split(",") if o.strip()
            ],
            train_content=[Path(p) for p in os.environ.get("CLIPMORPH_TRAIN_CONTENT", "").split(os.pathsep) if p],
            train_base=_read("CLIPMORPH_TRAIN_BASE", "catalogue-full", str, "a backbone name or style id"),
            max_trainings=_read("CLIPMORPH_MAX_TRAININGS", "1", int, count, lambda v: v >= 1),
            train_nice=_read("CLIPMORPH_TRAIN_NICE", "10", int, "a whole number 0-19", lambda v: 0 <= v <= 19),
            wandb=_read("CLIPMORPH_WANDB", "1", _flag, "1 or 0", lambda _: True),
            wandb_dir=Path(_read("CLIPMORPH_WANDB_DIR", _temp("clipmorph-wandb"), str, "a folder")),
            models_url=os.environ.get("CLIPMORPH_MODELS_URL", "").strip(),
            models_poll_seconds=_read(
                "CLIPMORPH_MODELS_POLL_SECONDS", "60", float, "a number of seconds >= 0", lambda v: v >= 0
            ),
        )

    def route_upload_bytes(self) -> dict[str, int]:
        """Body limits per route: one image is image-sized; batches, videos and the rest get the general limit."""
        image = min(self.max_image_upload_bytes, self.max_upload_bytes)
        small = min(JSON_BODY_BYTES, self.max_upload_bytes)
        return {"/stylize": image, "/create_style": image} | dict.fromkeys(("/styles", "/info", "/delete_style"), small)

    def describe(self) -> dict:
        """For /info: every setting except secrets."""
        shown = {f.name: str(getattr(self, f.name)) for f in fields(self) if f.name != "admin_token"}
        return shown | {"admin_token": "set" if self.admin_token else "unset"}
