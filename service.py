"""ClipMorph as a BentoML service: `bentoml serve service.py` (or `make serve`).

Two services, as in BentoML's disaggregated examples:
- ``StyleModel`` holds every style of the model store on the GPU (or CPU) and exposes one
  batchable method; requests for different styles share a batch (conditional instance norm).
- ``ClipMorph`` translates HTTP: decode, validate, call the model, encode. The logic lives in
  the ``clipmorph`` package, which the CLI uses too.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Annotated, Literal

import bentoml
import numpy as np
from bentoml.validators import ContentType
from pydantic import Field

from clipmorph.errors import BadInput
from clipmorph.inference import media
from clipmorph.inference.engine import Engine
from clipmorph.inference.pipeline import VIDEO_GROUP, stylize_images, stylize_video_file
from clipmorph.serving import metrics
from clipmorph.serving.access import require_admin, style_id_from_name
from clipmorph.serving.jobs import store as jobs
from clipmorph.serving.jobs.style_queue import PRESETS, StyleJobSpec, StyleTrainingQueue, default_base, may_cancel
from clipmorph.serving.limits import BodySizeLimit
from clipmorph.serving.schema import FrameItem, RemoteStylizer, http_errors, parse_options
from clipmorph.serving.settings import ServiceSettings
from clipmorph.serving.web import create_jobs_app, create_web_app
from clipmorph.styles import store
from clipmorph.styles.library import backbone_for_mix, validate_name

SETTINGS = ServiceSettings.from_env()
# Resolved at start: a misspelt or unavailable encoder stops the service, not every video job.
VIDEO_ENCODING = media.VideoEncoding(encoder=media.pick_h264_encoder(SETTINGS.video_encoder))
JOBS = jobs.JobStore(SETTINGS.jobs_dir, SETTINGS.job_ttl_seconds)
TRAINING = StyleTrainingQueue(JOBS, SETTINGS.max_trainings, SETTINGS.train_nice)
IMAGE_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
VIDEO_FORMATS = Literal["mp4", "webm"]


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # no driver: CPU serving
        return 0


class StyleModel:
    """Every stored style, loaded once; one batchable forward for all of them."""

    def __init__(self) -> None:
        self._reload_lock = threading.Lock()
        self.generation = -1
        self._current_engine()
        metrics.sample_resources("model")

    def _current_engine(self) -> Engine:
        """The engine for the store as it is now: styles created or deleted while the service runs
        are picked up at the next batch (one stat call per batch when nothing changed)."""
        generation = store.styles_generation()
        if generation == self.generation:
            return self.engine
        with self._reload_lock:
            if generation != self.generation:
                started = time.perf_counter()
                self.engine = Engine(
                    store.load_library(), device=SETTINGS.device, batch_size=SETTINGS.batch_size,
                    compile=SETTINGS.compile, backend=SETTINGS.backend,
                )  # fmt: skip
                self.load_seconds = time.perf_counter() - started
                self.known = set(self.engine.style_ids)
                self.generation = generation
                board = metrics.get()
                board.model_load_seconds.set(self.load_seconds)
                board.styles_loaded.set(len(self.known))
                dtype = str(self.engine.dtype).removeprefix("torch.")
                board.model_info.labels(str(self.engine.device), dtype).set(1)
        return self.engine

    @bentoml.api(batchable=True, max_batch_size=SETTINGS.max_batch_size, max_latency_ms=SETTINGS.max_latency_ms)
    def stylize(self, items: list[FrameItem]) -> list[np.ndarray]:
        board = metrics.get()
        started = time.perf_counter()
        engine = self._current_engine()
        with http_errors():
            frames = engine.stylize_frames([item.frame() for item in items], [item.options() for item in items])
        board.stage_seconds.labels("inference").observe(time.perf_counter() - started)
        board.batch_size.observe(len(items))
        for item in items:
            board.frames.labels(metrics.style_label(item.style, self.known), item.kind).inc()
        metrics.sample_resources("model")
        return frames

    @bentoml.api
    def info(self) -> dict:
        self._current_engine()
        return {
            "device": str(self.engine.device),
            "dtype": str(self.engine.dtype).removeprefix("torch."),
            "backend": self.engine.backend,
            "styles": self.engine.style_ids,
            "load_seconds": round(self.load_seconds, 3),
        }


# Declare the stored models as class attributes so that `bentoml build` packs them into the
# bento (a model only loaded in __init__ is not packed). The set is whatever the store holds.
for _index, _tag in enumerate(store.served_tags()):
    setattr(StyleModel, f"model_{_index}", bentoml.models.BentoModel(_tag))

StyleModel = bentoml.service(
    name="clipmorph-model",
    resources={"gpu": 1} if _gpu_count() else {"cpu": "1"},
    workers=1,
    traffic={"timeout": 600},
)(StyleModel)


StyleParam = Annotated[str, Field(description="style id, or a blend such as 'monet=0.7,scream=0.3'")]
Strength = Annotated[float, Field(ge=0.0, le=1.0, description="0 = the input, 1 = fully stylized")]
BlendWeight = Annotated[float, Field(ge=0.0, le=1.0, description="weight of blend_with (0..1)")]
MaxSide = Annotated[int | None, Field(ge=16, description="network resolution cap (long side, px)")]


def _mix(style: str, blend_with: str | None, blend: float) -> str:
    return f"{style}={1.0 - blend},{blend_with}={blend}" if blend_with else style


def _safe_stem(name: str | None, fallback: str) -> str:
    """A download name from user text, without any path or odd characters."""
    stem = Path(name or "").stem
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-")[:60]
    return stem or fallback


@bentoml.asgi_app(create_web_app(), path="/ui")
@bentoml.asgi_app(
    create_jobs_app(JOBS, lambda job, headers: may_cancel(job, headers, SETTINGS.admin_token)), path="/jobs"
)
@bentoml.service(
    name="clipmorph", workers=1, threads=32, traffic={"timeout": 900, "max_concurrency": SETTINGS.max_concurrency}
)
class ClipMorph:
    model = bentoml.depends(StyleModel)

    def __init__(self) -> None:
        self.generation = -1
        self._refresh_styles()
        # Looked up per call: the proxy resolves remote methods lazily.
        self.stylizer = RemoteStylizer(lambda items: self.model.stylize(items), SETTINGS.batch_size or VIDEO_GROUP)

    def _refresh_styles(self) -> None:
        """The store's styles, re-read when they change (the model service does the same)."""
        generation = store.styles_generation()
        if generation != self.generation:
            self.style_rows = store.describe_styles()
            self.backbone_of = {row["id"]: row["backbone"] for row in self.style_rows}
            self.generation = generation

    def _options(self, style: str, strength: float, preserve_color: bool, max_side: int | None):
        options = parse_options(style, strength, preserve_color, max_side, SETTINGS.max_side)
        self._refresh_styles()
        backbone_for_mix(options.style.names, self.backbone_of)
        return options

    def _scratch(self, ctx: bentoml.Context) -> Path:
        """A per-request temp folder, removed after the response has been sent."""
        folder = Path(tempfile.mkdtemp(prefix="clipmorph-request-"))
        ctx.response.background.add_task(shutil.rmtree, folder, True)
        return folder

    @bentoml.api(route="/stylize")
    def stylize(
        self,
        ctx: bentoml.Context,
        image: Annotated[Path, Field(description="any image Pillow reads (judged by content)")],
        style: StyleParam,
        strength: Strength = 1.0,
        blend_with: str | None = None,
        blend: BlendWeight = 0.5,
        preserve_color: bool = False,
        max_side: MaxSide = None,
        output_format: Literal["png", "jpeg", "webp"] = "png",
    ) -> Annotated[Path, ContentType("image/*")]:
        """Stylize one image (adaptive batching underneath)."""
        with http_errors():
            options = self._options(_mix(style, blend_with, blend), strength, preserve_color, max_side)
            [(encoded, _, _)] = stylize_images(
                self.stylizer, [Path(image)], options, IMAGE_FORMATS[output_format], SETTINGS.max_image_pixels,
                observe=_observe_stage,
            )  # fmt: skip
            target = self._scratch(ctx) / f"stylized-{_safe_stem(style.split('=')[0], 'style')}.{output_format}"
            target.write_bytes(encoded)
            return target

    @bentoml.api(route="/stylize_batch")
    def stylize_batch(
        self,
        ctx: bentoml.Context,
        images: Annotated[list[Path], Field(description="several images (multipart, one field per file)")],
        style: StyleParam,
        strength: Strength = 1.0,
        blend_with: str | None = None,
        blend: BlendWeight = 0.5,
        preserve_color: bool = False,
        max_side: MaxSide = None,
        output_format: Literal["png", "jpeg", "webp"] = "png",
    ) -> Annotated[Path, ContentType("application/zip")]:
        """Stylize several images in one request (one batch); returns a zip in upload order."""
        with http_errors():
            if not images:
                raise BadInput("no images uploaded")
            if len(images) > SETTINGS.max_batch_images:
                raise BadInput(f"{len(images)} images; at most {SETTINGS.max_batch_images} per request")
            options = self._options(_mix(style, blend_with, blend), strength, preserve_color, max_side)
            results = stylize_images(
                self.stylizer, [Path(p) for p in images], options, IMAGE_FORMATS[output_format],
                SETTINGS.max_image_pixels, observe=_observe_stage,
            )  # fmt: skip
            target = self._scratch(ctx) / f"stylized-{_safe_stem(style.split('=')[0], 'style')}.zip"
            with zipfile.ZipFile(target, "w") as archive:
                # BentoML stores uploads under temp names, so entries are numbered in upload order.
                for index, (encoded, _, _) in enumerate(results, start=1):
                    archive.writestr(f"{index:03d}.{output_format}", encoded)
            return target

    @bentoml.api(route="/styles")
    def styles(self) -> list[dict]:
        """Every style: id, display name, artist and other metadata, thumbnail URL."""
        self._refresh_styles()
        return [{**row, "thumbnail_url": f"/ui/thumbnails/{row['id']}"} for row in self.style_rows]

    @bentoml.api(route="/info")
    def info(self) -> dict:
        """Device, dtype and loaded styles of the model service, and this server's limits."""
        return {"model": self.model.info(), "limits": SETTINGS.describe()}

    @bentoml.api(route="/create_style")
    def create_style(
        self,
        ctx: bentoml.Context,
        painting: Annotated[Path, Field(description="the painting to learn (any image Pillow reads)")],
        name: Annotated[str, Field(description="style name (letters, digits, spaces; becomes the style id)")],
        preset: Literal["tiny", "fast", "best"] = "fast",
        author: Annotated[str, Field(max_length=60, description="who made it (shown in the metadata)")] = "",
    ) -> dict:
        """Learn a new style from a painting on the served backbone: a training job.
        Progress and preview: GET /jobs/{job_id}; cancel: POST /jobs/{job_id}/cancel."""
        with http_errors():
            require_admin(ctx.request.headers, SETTINGS.admin_token)
            style_id, display_name = style_id_from_name(name)
            if not SETTINGS.train_content:
                raise BadInput("style creation is not configured here: set CLIPMORPH_TRAIN_CONTENT", "unavailable")
            folder = self._scratch(ctx)
            decoded = media.load_image(Path(painting), SETTINGS.max_image_pixels)
            clean = folder / "painting.png"  # re-encoded: whatever the upload was, the job gets a plain PNG
            clean.write_bytes(media.encode_image(decoded.rgb, None, "PNG"))
            spec = StyleJobSpec(
                style_id=style_id,
                display_name=display_name,
                author=author.strip() or "anonymous",
                preset=preset,
                base=default_base(SETTINGS.train_base),
                content=[str(p) for p in SETTINGS.train_content],
                painting="painting.png",
                wandb=SETTINGS.wandb,
                wandb_dir=str(SETTINGS.wandb_dir),
            )
            job, owner_key = TRAINING.submit(clean, spec)
            return {
                "job_id": job.id,
                "style": style_id,
                "display_name": display_name,
                "preset": preset,
                "steps": PRESETS[preset]["steps"],
                "status_url": f"/jobs/{job.id}",
                "cancel_url": f"/jobs/{job.id}/cancel",
                "owner_key": owner_key,
            }

    @bentoml.api(route="/delete_style")
    def delete_style(self, ctx: bentoml.Context, style: str) -> dict:
        """Delete a user-made style (catalogue styles are protected)."""
        with http_errors():
            require_admin(ctx.request.headers, SETTINGS.admin_token)
            return {"deleted": store.delete_style(validate_name(style), user_made_only=True)}

    @bentoml.task(route="/video_job")
    def video_job(
        self,
        ctx: bentoml.Context,
        video: Annotated[Path, Field(description="any video FFmpeg reads (judged by content)")],
        style: StyleParam,
        strength: Strength = 1.0,
        blend_with: str | None = None,
        blend: BlendWeight = 0.5,
        preserve_color: bool = False,
        max_side: MaxSide = None,
        output_format: VIDEO_FORMATS = "mp4",
    ) -> dict:
        """Stylize a clip as a long-running job. Progress: GET /jobs/{task_id}; cancel: POST /jobs/{task_id}/cancel."""
        job = JOBS.create(ctx.request.state.task_id)
        with http_errors():
            options = self._options(_mix(style, blend_with, blend), strength, preserve_color, max_side)
            return self._run_video(job, Path(video), options, output_format, SETTINGS.max_video_seconds)

    @bentoml.api(route="/stylize_video")
    def stylize_video(
        self,
        ctx: bentoml.Context,
        video: Annotated[Path, Field(description="any video FFmpeg reads (judged by content)")],
        style: StyleParam,
        strength: Strength = 1.0,
        preserve_color: bool = False,
        max_side: MaxSide = None,
        output_format: VIDEO_FORMATS = "mp4",
    ) -> Annotated[Path, ContentType("video/*")]:
        """Stylize a short clip synchronously (length-limited; use /video_job for longer ones)."""
        with http_errors():
            options = self._options(style, strength, preserve_color, max_side)
            folder = self._scratch(ctx)
            job = jobs.Job("sync", folder)
            self._run_video(job, Path(video), options, output_format, SETTINGS.max_sync_video_seconds)
            return job.result_file()

    def _run_video(self, job: jobs.Job, upload: Path, options, output_format: str, max_seconds: float) -> dict:
        board = metrics.get()
        started = time.monotonic()
        source = job.folder / "input"
        board.jobs_active.labels("running").inc()
        final_state = "failed"
        try:
            shutil.copyfile(upload, source)
            info = _check_video(source, max_seconds)
            job.write("running", done=0, total=info.frames, width=info.width, height=info.height, fps=0.0)
            report = stylize_video_file(
                self.stylizer.for_video(board.frames_in_flight), source, job.output(f".{output_format}"), options,
                progress=False, encoding=VIDEO_ENCODING, on_frames=job.tracker(started), observe=_observe_stage,
            )  # fmt: skip
            final_state = "succeeded"
        except jobs.JobCancelled:
            final_state = "cancelled"
            job.write("cancelled")
            raise bentoml.exceptions.InvalidArgument("the job was cancelled") from None
        except Exception as error:
            job.write("failed", error=str(error))
            raise
        finally:
            source.unlink(missing_ok=True)
            board.jobs_active.labels("running").dec()
            board.jobs_total.labels(final_state).inc()
            board.job_seconds.observe(time.monotonic() - started)
            metrics.sample_resources("api")
        result = {
            "job_id": job.id,
            "frames": report.frames,
            "width": report.width,
            "height": report.height,
            "seconds": round(report.seconds, 2),
            "fps": round(report.fps, 2),
            "encoder": report.encoder,
            "download_url": f"/jobs/{job.id}/result",
        }
        job.write("succeeded", done=report.frames, total=report.frames, eta_seconds=0, result=result)
        board.job_fps.observe(report.fps)
        return result


def _observe_stage(stage: str, seconds: float) -> None:
    metrics.get().stage_seconds.labels(stage).observe(seconds)
    if stage == "decode":  # once per image request (video jobs sample when they end)
        metrics.sample_resources("api")


def _check_video(path: Path, max_seconds: float) -> media.VideoInfo:
    if media.detect_kind(path) != media.VIDEO_KIND:
        raise BadInput("the upload is an image, not a video: use /stylize", "not_video")
    reader = media.VideoReader(path)
    info = reader.info
    reader.close()
    if info.width * info.height > SETTINGS.max_video_pixels:
        raise BadInput(
            f"video is {info.width}x{info.height}; the limit is {SETTINGS.max_video_pixels / 1e6:.1f} MP", "too_large"
        )
    if info.seconds > max_seconds:
        raise BadInput(f"video is {info.seconds:.1f} s long; the limit here is {max_seconds:.0f} s", "too_long")
    return info


ClipMorph.add_asgi_middleware(BodySizeLimit, max_bytes=SETTINGS.max_upload_bytes)
