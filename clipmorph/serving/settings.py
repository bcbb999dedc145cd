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
from typing import NamedTuple, TypeVar

from clipmorph.errors import ClipMorphError

T = TypeVar("T")
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")
BACKENDS = ("torch", "openvino")
ENCODERS = ("auto", "libx264", "h264_nvenc")


class SettingsError(ClipMorphError):
    """A service setting is malformed: the message names the variable and what it takes."""


class UnknownChoice(ValueError):
    pass


class Setting(NamedTuple):
    """One variable of the service: its default as the text of the variable, and what it does."""

    default: str  # "" means unset; $TMPDIR stands for the system's temporary folder
    meaning: str  # one line, for docs/settings.md


# The one list of the service's variables: from_env reads its defaults here, and
# `python -m clipmorph.serving.settings --markdown` writes the table of docs/settings.md from it.
SETTINGS: dict[str, Setting] = {
    "CLIPMORPH_MAX_UPLOAD_MB": Setting("200", "request body limit (413 above): videos, batches"),
    "CLIPMORPH_MAX_IMAGE_UPLOAD_MB": Setting("50", "the same for `/stylize` and `/create_style`"),
    "CLIPMORPH_BODY_IDLE_SECONDS": Setting("20", "an upload that sends nothing this long gets 408"),
    "CLIPMORPH_BODY_TIMEOUT_SECONDS": Setting("300", "an upload not complete after this long gets 408"),
    "CLIPMORPH_HEADER_TIMEOUT_SECONDS": Setting(
        "15", "a connection whose request head is not complete after this long is closed"
    ),
    "CLIPMORPH_MAX_IMAGE_MEGAPIXELS": Setting("50", "image size limit, from the header, checked before decoding"),
    "CLIPMORPH_PAINT_SIDE": Setting(
        "768",
        "long side the network paints at when a request names no `max_side` (larger pictures are painted at this "
        "size and enlarged, so the marks keep their proportion; at most `CLIPMORPH_MAX_SIDE`)",
    ),
    "CLIPMORPH_MAX_SIDE": Setting("1920", "the largest `max_side` a request may ask for (network resolution cap)"),
    "CLIPMORPH_MAX_BATCH_IMAGES": Setting("32", "images per `/stylize_batch` request"),
    "CLIPMORPH_MAX_BATCH_MEGAPIXELS": Setting(
        "100", "all images of one `/stylize_batch` request together, from their headers before any is decoded"
    ),
    "CLIPMORPH_MAX_VIDEO_SECONDS": Setting("300", "video job length limit"),
    "CLIPMORPH_MAX_SYNC_VIDEO_SECONDS": Setting("10", "`/stylize_video` length limit"),
    "CLIPMORPH_MAX_VIDEO_MEGAPIXELS": Setting("8.3", "frame size limit (4K), checked on every decoded frame"),
    "CLIPMORPH_MAX_VIDEO_FPS": Setting(
        "120",
        "frame rate limit; a clip also may not have more frames than its length limit x this "
        "(counted while decoding: headers can lie)",
    ),
    "CLIPMORPH_JOBS_DIR": Setting("$TMPDIR/clipmorph-jobs", "job inputs, outputs and progress, shared by all workers"),
    "CLIPMORPH_MAX_VIDEO_JOBS": Setting("2", "video jobs running at once"),
    "CLIPMORPH_MAX_QUEUED_VIDEO_JOBS": Setting("16", "video jobs waiting; more get 429"),
    "CLIPMORPH_JOB_TTL_SECONDS": Setting(
        "3600",
        "finished jobs are removed after this (swept on a timer); jobs a stopped server left unfinished are "
        "marked failed at start and cleaned, their training children stopped",
    ),
    "CLIPMORPH_REPLICA_TIMEOUT_SECONDS": Setting(
        "30",
        "replicas sharing `CLIPMORPH_JOBS_DIR` or `CLIPMORPH_JOBS_URL`: one silent this long is gone, "
        "its unfinished jobs fail",
    ),
    "CLIPMORPH_JOBS_URL": Setting(
        "",
        "a bucket (fsspec URL) every replica mirrors its jobs to: replicas with no shared folder answer for "
        "each other's jobs",
    ),
    "CLIPMORPH_VIDEO_ENCODER": Setting(
        "auto",
        "H.264 encoder of video jobs, as `--encoder`: auto (NVENC where it starts, else x264), libx264, h264_nvenc",
    ),
    "CLIPMORPH_DEVICE": Setting("auto", "`auto`, `cpu`, `cuda` or `cuda:N`"),
    "CLIPMORPH_COMPILE": Setting("0", "torch.compile the networks (1/0): once per input shape, then faster"),
    "CLIPMORPH_BACKEND": Setting(
        "auto",
        "what runs the networks, as `--backend`: `auto` (OpenVINO on a CPU where it is installed, else PyTorch), "
        "`torch` or `openvino` (CPU; needs `clipmorph[openvino]`, the bento carries `openvino` and `onnx`)",
    ),
    "CLIPMORPH_BATCH_SIZE": Setting(
        "0", "frames per forward pass; 0: 1 on CPU, 8 on GPU (larger batches are slower per frame on CPU: measured)"
    ),
    "CLIPMORPH_MAX_BATCH_SIZE": Setting("16", "adaptive batching: largest batch"),
    "CLIPMORPH_MAX_LATENCY_MS": Setting(
        "20000", "adaptive batching: a batch queue whose expected wait is over this budget answers 503 at once"
    ),
    "CLIPMORPH_MAX_CONCURRENCY": Setting(
        "64",
        "requests processed by the API service at once, counted once their body is in; more get 429 at once "
        "(bounded memory under overload)",
    ),
    "CLIPMORPH_MAX_REQUESTS_PER_CLIENT": Setting(
        "32",
        "requests one client address may hold open at once, uploading or processing; more get 429 at once "
        "(0: no cap; raise it behind a proxy that hides client addresses)",
    ),
    "CLIPMORPH_ADMIN_TOKEN": Setting("", "required by style create/delete; unset: allowed on loopback-only servers"),
    "CLIPMORPH_ALLOWED_ORIGINS": Setting(
        "", "other sites (`https://app.example`, comma list) whose pages may create/delete styles"
    ),
    "CLIPMORPH_TRAIN_CONTENT": Setting(
        "",
        "photo folders (`:`-separated) user-made styles train on; unset: the store's (`clipmorph content import`), "
        "and without those style creation answers 503",
    ),
    "CLIPMORPH_TRAIN_BASE": Setting("catalogue-full", "backbone (or style id) new styles are added to"),
    "CLIPMORPH_MAX_TRAININGS": Setting("1", "style trainings at once on this device"),
    "CLIPMORPH_TRAIN_NICE": Setting("10", "CPU priority drop of training processes (0-19)"),
    "CLIPMORPH_WANDB": Setting("1", "log style jobs to Weights & Biases (offline files without an API key)"),
    "CLIPMORPH_WANDB_DIR": Setting("$TMPDIR/clipmorph-wandb", "where the W&B runs of style jobs are written"),
    "CLIPMORPH_MAX_LIVE_SESSIONS": Setting(
        "2", "live camera viewers at once (per API worker); the next gets a clear refusal"
    ),
    "CLIPMORPH_LIVE_IDLE_SECONDS": Setting("30", "a live session that sends nothing this long is closed"),
    "CLIPMORPH_LIVE_BACKEND": Setting(
        "auto",
        "what runs live camera frames: `auto` (OpenVINO on a CPU where it is installed, else as the service), "
        "`torch` or `openvino`",
    ),
    "CLIPMORPH_LIVE_TARGET_FPS": Setting(
        "25",
        "frames/s a live viewer should get: the network's size steps down from the camera's until a frame "
        "takes 1/this (answered at that size: the page scales them to the camera's), and back up when there is room; "
        "0: always full size",
    ),
    "CLIPMORPH_LIVE_MAX_MEGAPIXELS": Setting("2.1", "live frame size limit (1080p), from the header before decoding"),
    "CLIPMORPH_MODELS_URL": Setting(
        "",
        "serve the models of a bucket or folder (`clipmorph styles push`): pulled when the model worker starts, "
        "then looked for again",
    ),
    "CLIPMORPH_MODELS_POLL_SECONDS": Setting(
        "60", "how often the model worker looks in `CLIPMORPH_MODELS_URL` again (0: at start only)"
    ),
}


def _text(name: str) -> str:
    """The variable's text, or its default from SETTINGS (a KeyError here: a variable without an entry)."""
    default = SETTINGS[name].default.replace("$TMPDIR", tempfile.gettempdir())
    return os.environ.get(name, default)


def _read(name: str, parse: Callable[[str], T], expect: str, valid: Callable[[T], bool] = bool) -> T:
    text = _text(name).strip()
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


def _positive_number(value: float) -> bool:
    return value > 0


JSON_BODY_BYTES = 64 * 1024  # the routes that take a few JSON fields


@dataclass(frozen=True)
class ServiceSettings:
    """The checked values; each field's variable is named beside it and described in SETTINGS."""

    max_upload_bytes: int  # CLIPMORPH_MAX_UPLOAD_MB
    max_image_upload_bytes: int  # CLIPMORPH_MAX_IMAGE_UPLOAD_MB
    body_idle_seconds: float  # CLIPMORPH_BODY_IDLE_SECONDS
    body_total_seconds: float  # CLIPMORPH_BODY_TIMEOUT_SECONDS
    header_timeout_seconds: float  # CLIPMORPH_HEADER_TIMEOUT_SECONDS
    max_image_pixels: int  # CLIPMORPH_MAX_IMAGE_MEGAPIXELS
    paint_side: int  # CLIPMORPH_PAINT_SIDE
    max_side: int  # CLIPMORPH_MAX_SIDE
    max_batch_images: int  # CLIPMORPH_MAX_BATCH_IMAGES
    max_batch_pixels: int  # CLIPMORPH_MAX_BATCH_MEGAPIXELS
    max_video_seconds: float  # CLIPMORPH_MAX_VIDEO_SECONDS
    max_sync_video_seconds: float  # CLIPMORPH_MAX_SYNC_VIDEO_SECONDS
    max_video_pixels: int  # CLIPMORPH_MAX_VIDEO_MEGAPIXELS
    max_video_fps: float  # CLIPMORPH_MAX_VIDEO_FPS
    jobs_dir: Path  # CLIPMORPH_JOBS_DIR
    max_video_jobs: int  # CLIPMORPH_MAX_VIDEO_JOBS
    max_queued_video_jobs: int  # CLIPMORPH_MAX_QUEUED_VIDEO_JOBS
    job_ttl_seconds: float  # CLIPMORPH_JOB_TTL_SECONDS
    replica_timeout_seconds: float  # CLIPMORPH_REPLICA_TIMEOUT_SECONDS
    jobs_url: str  # CLIPMORPH_JOBS_URL
    video_encoder: str  # CLIPMORPH_VIDEO_ENCODER
    device: str  # CLIPMORPH_DEVICE
    compile: bool  # CLIPMORPH_COMPILE
    backend: str  # CLIPMORPH_BACKEND
    batch_size: int | None  # CLIPMORPH_BATCH_SIZE
    max_batch_size: int  # CLIPMORPH_MAX_BATCH_SIZE
    max_latency_ms: int  # CLIPMORPH_MAX_LATENCY_MS
    max_concurrency: int  # CLIPMORPH_MAX_CONCURRENCY
    max_requests_per_client: int  # CLIPMORPH_MAX_REQUESTS_PER_CLIENT
    admin_token: str  # CLIPMORPH_ADMIN_TOKEN
    allowed_origins: list[str]  # CLIPMORPH_ALLOWED_ORIGINS
    train_content: list[Path]  # CLIPMORPH_TRAIN_CONTENT
    train_base: str  # CLIPMORPH_TRAIN_BASE
    max_trainings: int  # CLIPMORPH_MAX_TRAININGS
    train_nice: int  # CLIPMORPH_TRAIN_NICE
    wandb: bool  # CLIPMORPH_WANDB
    wandb_dir: Path  # CLIPMORPH_WANDB_DIR
    max_live_sessions: int  # CLIPMORPH_MAX_LIVE_SESSIONS
    live_idle_seconds: float  # CLIPMORPH_LIVE_IDLE_SECONDS
    live_max_pixels: int  # CLIPMORPH_LIVE_MAX_MEGAPIXELS
    live_backend: str  # CLIPMORPH_LIVE_BACKEND
    live_target_fps: float  # CLIPMORPH_LIVE_TARGET_FPS
    models_url: str  # CLIPMORPH_MODELS_URL
    models_poll_seconds: float  # CLIPMORPH_MODELS_POLL_SECONDS

    @classmethod
    def from_env(cls) -> ServiceSettings:
        """Read and check every setting; SettingsError names the first bad one."""
        count, number, size = "a whole number >= 1", "a number > 0", "a number of megabytes > 0"
        return cls(
            max_upload_bytes=_read("CLIPMORPH_MAX_UPLOAD_MB", _scaled(1024 * 1024), size, _positive_number),
            max_image_upload_bytes=_read("CLIPMORPH_MAX_IMAGE_UPLOAD_MB", _scaled(1024 * 1024), size, _positive_number),
            body_idle_seconds=_read("CLIPMORPH_BODY_IDLE_SECONDS", float, number, _positive_number),
            body_total_seconds=_read("CLIPMORPH_BODY_TIMEOUT_SECONDS", float, number, _positive_number),
            header_timeout_seconds=_read("CLIPMORPH_HEADER_TIMEOUT_SECONDS", float, number, _positive_number),
            max_image_pixels=_read("CLIPMORPH_MAX_IMAGE_MEGAPIXELS", _scaled(1e6), number, _positive_number),
            paint_side=_read("CLIPMORPH_PAINT_SIDE", int, "a whole number >= 16", lambda v: v >= 16),
            max_side=_read("CLIPMORPH_MAX_SIDE", int, "a whole number >= 16", lambda v: v >= 16),
            max_batch_pixels=_read("CLIPMORPH_MAX_BATCH_MEGAPIXELS", _scaled(1e6), number, _positive_number),
            max_batch_images=_read("CLIPMORPH_MAX_BATCH_IMAGES", int, count, lambda v: v >= 1),
            max_video_seconds=_read("CLIPMORPH_MAX_VIDEO_SECONDS", float, number, _positive_number),
            max_sync_video_seconds=_read("CLIPMORPH_MAX_SYNC_VIDEO_SECONDS", float, number, _positive_number),
            max_video_pixels=_read("CLIPMORPH_MAX_VIDEO_MEGAPIXELS", _scaled(1e6), number, _positive_number),
            max_video_fps=_read("CLIPMORPH_MAX_VIDEO_FPS", float, number, _positive_number),
            jobs_dir=Path(_read("CLIPMORPH_JOBS_DIR", str, "a folder")),
            max_video_jobs=_read("CLIPMORPH_MAX_VIDEO_JOBS", int, count, lambda v: v >= 1),
            max_queued_video_jobs=_read(
                "CLIPMORPH_MAX_QUEUED_VIDEO_JOBS", int, "a whole number >= 0", lambda v: v >= 0
            ),
            job_ttl_seconds=_read("CLIPMORPH_JOB_TTL_SECONDS", float, number, _positive_number),
            replica_timeout_seconds=_read("CLIPMORPH_REPLICA_TIMEOUT_SECONDS", float, number, _positive_number),
            jobs_url=_text("CLIPMORPH_JOBS_URL").strip().rstrip("/"),
            video_encoder=_read("CLIPMORPH_VIDEO_ENCODER", _one_of("video encoder", ENCODERS), ""),
            device=_read("CLIPMORPH_DEVICE", _device, "auto, cpu, cuda or cuda:N"),
            compile=_read("CLIPMORPH_COMPILE", _flag, "1 or 0", lambda _: True),
            backend=_read("CLIPMORPH_BACKEND", _one_of("backend", ("auto", *BACKENDS)), ""),
            batch_size=_read("CLIPMORPH_BATCH_SIZE", int, "0 (automatic) or a whole number", lambda v: v >= 0) or None,
            max_batch_size=_read("CLIPMORPH_MAX_BATCH_SIZE", int, count, lambda v: v >= 1),
            max_latency_ms=_read("CLIPMORPH_MAX_LATENCY_MS", int, count, lambda v: v >= 1),
            max_concurrency=_read("CLIPMORPH_MAX_CONCURRENCY", int, count, lambda v: v >= 1),
            max_requests_per_client=_read(
                "CLIPMORPH_MAX_REQUESTS_PER_CLIENT", int, "a whole number >= 0 (0: no cap)", lambda v: v >= 0
            ),
            admin_token=_text("CLIPMORPH_ADMIN_TOKEN"),
            allowed_origins=[o.strip() for o in _text("CLIPMORPH_ALLOWED_ORIGINS").split(",") if o.strip()],
            train_content=[Path(p) for p in _text("CLIPMORPH_TRAIN_CONTENT").split(os.pathsep) if p],
            train_base=_read("CLIPMORPH_TRAIN_BASE", str, "a backbone name or style id"),
            max_trainings=_read("CLIPMORPH_MAX_TRAININGS", int, count, lambda v: v >= 1),
            train_nice=_read("CLIPMORPH_TRAIN_NICE", int, "a whole number 0-19", lambda v: 0 <= v <= 19),
            wandb=_read("CLIPMORPH_WANDB", _flag, "1 or 0", lambda _: True),
            wandb_dir=Path(_read("CLIPMORPH_WANDB_DIR", str, "a folder")),
            max_live_sessions=_read(
                "CLIPMORPH_MAX_LIVE_SESSIONS", int, "a whole number >= 0 (0: no live)", lambda v: v >= 0
            ),
            live_idle_seconds=_read("CLIPMORPH_LIVE_IDLE_SECONDS", float, number, _positive_number),
            live_max_pixels=_read("CLIPMORPH_LIVE_MAX_MEGAPIXELS", _scaled(1e6), number, _positive_number),
            live_target_fps=_read("CLIPMORPH_LIVE_TARGET_FPS", float, "a number >= 0 (0: off)", lambda v: v >= 0),
            live_backend=_read("CLIPMORPH_LIVE_BACKEND", _one_of("live backend", ("auto", *BACKENDS)), ""),
            models_url=_text("CLIPMORPH_MODELS_URL").strip(),
            models_poll_seconds=_read(
                "CLIPMORPH_MODELS_POLL_SECONDS", float, "a number of seconds >= 0", lambda v: v >= 0
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


def markdown_table() -> str:
    """The table of docs/settings.md, written from SETTINGS so that names, defaults and meanings
    are typed once, here (``python docs/generate.py`` puts it into the page; a test compares)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, setting in SETTINGS.items():
        default = f"`{setting.default}`" if setting.default else "unset"
        rows.append(f"| `{name}` | {default} | {setting.meaning} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="The service's CLIPMORPH_* variables.")
    parser.add_argument("--markdown", action="store_true", help="print the table of docs/settings.md")
    parser.parse_args()
    print(markdown_table(), end="")
