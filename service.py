"""ClipMorph as a BentoML service: `bentoml serve service.py` (or `make serve`).

Two services, as in BentoML's disaggregated examples:
- ``StyleModel`` holds every style of the model store on the GPU (or CPU) and exposes one
  batchable method; requests for different styles share a batch (conditional instance norm).
- ``ClipMorph`` translates HTTP: it declares the routes and hands each request to the
  ``clipmorph.serving`` package, whose functions are tested without a server.
This file holds declarations and translation only; it imports no torch (the model workers load
it when they build their runtime).
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Annotated, Any

import bentoml
from bentoml.validators import ContentType

from clipmorph.inference import media
from clipmorph.inference.pipeline import VIDEO_GROUP, stylize_images
from clipmorph.serving import models_source, upstream
from clipmorph.serving.access import may_cancel, require_admin
from clipmorph.serving.get_routes import ReadOnlyGets
from clipmorph.serving.jobs.recovery import recover_orphans, start_sweeper
from clipmorph.serving.jobs.replicas import Replicas, new_replica_id
from clipmorph.serving.jobs.store import Job, JobCancelled, JobStore
from clipmorph.serving.jobs.style_creation import create_style_job
from clipmorph.serving.jobs.style_queue import StyleTrainingQueue
from clipmorph.serving.jobs.video import check_video, observe_stage, run_video
from clipmorph.serving.jobs.video_queue import AnyioSpawner, VideoJobQueue
from clipmorph.serving.limits import BodyLimits
from clipmorph.serving.live.app import create_live_app
from clipmorph.serving.live.protocol import MAX_FRAME_BYTES, FrameLimits
from clipmorph.serving.live.sessions import LiveSessions
from clipmorph.serving.model_runtime import ModelRuntime
from clipmorph.serving.remote import RemoteStylizer
from clipmorph.serving.requests import (
    IMAGE_FORMATS,
    BatchRequest,
    ImageRequest,
    StyleCreationRequest,
    StyleFields,
    VideoRequest,
    safe_stem,
)
from clipmorph.serving.schema import FrameItem, Picture, answers_errors, http_errors
from clipmorph.serving.security_headers import SecurityHeaders
from clipmorph.serving.settings import ServiceSettings, gpu_count
from clipmorph.serving.slots import RequestSlots
from clipmorph.serving.state_guard import StateChangeGuard
from clipmorph.serving.web import create_jobs_app, create_web_app
from clipmorph.styles import index
from clipmorph.styles.names import backbone_for_mix, validate_name

SETTINGS = ServiceSettings.from_env()  # a bad value stops the service here, with the variable's name
# BentoML and uvicorn as pinned, with their three known faults fixed; any other release: no start.
upstream.install(SETTINGS.header_timeout_seconds)
JOBS = JobStore(SETTINGS.jobs_dir, SETTINGS.job_ttl_seconds, owner=new_replica_id(), remote=SETTINGS.jobs_url)
LIVE = LiveSessions(
    SETTINGS.max_live_sessions,
    SETTINGS.live_idle_seconds,
    FrameLimits(MAX_FRAME_BYTES, SETTINGS.live_max_pixels),
    SETTINGS.live_target_fps,
)


RUNNER_CONNECTION = {"max_requests": 2**62, "max_age": 1e12}


def video_limits(max_seconds: float) -> media.DecodeLimits:
    return media.DecodeLimits(max_seconds, SETTINGS.max_video_pixels, SETTINGS.max_video_fps)


class StyleModel:
    """Every stored style, loaded once; one batchable forward for all of them."""

    def __init__(self) -> None:
        if SETTINGS.models_url:  # the bucket's styles before the first load: served from the start
            models_source.pull_new(SETTINGS.models_url)
        self.runtime = ModelRuntime(SETTINGS)
        models_source.start_poller(SETTINGS.models_url, SETTINGS.models_poll_seconds)

    @bentoml.api(batchable=True, max_batch_size=SETTINGS.max_batch_size, max_latency_ms=SETTINGS.max_latency_ms)
    def stylize(self, items: list[FrameItem]) -> list[Any]:
        return self.runtime.stylize(items)

    @bentoml.api
    def instant_preview(self, photo: Picture, painting: Picture) -> Any:
        return self.runtime.instant_preview(photo, painting)

    @bentoml.api
    def info(self) -> dict:
        return self.runtime.info()


# What a bento packs is named in the bentofile's `models` list (deploy/bento_models.py), by
# exact version; importing this file reads no store and pulls no bucket, so a build is the same
# on every machine. The store is read when the model worker starts (ModelRuntime).

StyleModel = bentoml.service(
    name="clipmorph-model",
    resources={"gpu": 1} if gpu_count() else {"cpu": "1"},
    workers=1,
    traffic={"timeout": 600},
    # BentoML's client to this service replaces its session every 100 requests or 5 minutes and
    # closes the old one with requests still in flight on it: those fail ("Connection closed.") or,
    # now and then, wait for an answer that never comes. One session for the worker's lifetime.
    runner_connection=RUNNER_CONNECTION,
)(StyleModel)


@bentoml.asgi_app(create_web_app(), path="/ui")
@bentoml.asgi_app(create_live_app(LIVE, SETTINGS.allowed_origins), path="/live")
@bentoml.asgi_app(
    create_jobs_app(JOBS, lambda job, headers: may_cancel(job, headers, SETTINGS.admin_token)), path="/jobs"
)
# No traffic.max_concurrency: BentoML's limiter counts a request from its first byte, so stalled
# uploads would hold every slot; RequestSlots (below) counts it once its body is in.
@bentoml.service(name="clipmorph", workers=1, threads=32, traffic={"timeout": 900})
class ClipMorph:
    model = bentoml.depends(StyleModel)

    def __init__(self) -> None:
        # Replicas may share the job folder: jobs whose owner stopped beating (an earlier run of
        # this one included) are failed, cleaned and their children stopped, now and on every beat.
        replicas = Replicas(SETTINGS.jobs_dir, JOBS.owner, SETTINGS.replica_timeout_seconds, SETTINGS.jobs_url)
        JOBS.remote_alive = replicas.remote_alive  # another replica's job, seen in the bucket
        replicas.start(on_beat=lambda: recover_orphans(JOBS, replicas.alive()))
        recover_orphans(JOBS, replicas.alive())
        start_sweeper(JOBS, min(SETTINGS.job_ttl_seconds / 4, 600))
        # Resolved at start: a misspelt or unavailable encoder stops the service, not every video job.
        self.video_encoding = media.VideoEncoding(encoder=media.pick_h264_encoder(SETTINGS.video_encoder))
        self.training = StyleTrainingQueue(JOBS, SETTINGS.max_trainings, SETTINGS.train_nice)
        self.video_jobs = VideoJobQueue(
            JOBS, SETTINGS.max_video_jobs, SETTINGS.max_queued_video_jobs, AnyioSpawner(SETTINGS.max_video_jobs)
        )
        # Looked up per call: the proxy resolves remote methods lazily.
        self.stylizer = RemoteStylizer(lambda items: self.model.stylize(items), SETTINGS.batch_size or VIDEO_GROUP)
        # Live camera frames share the model's batches with images and videos (kind "live" in the metrics).
        LIVE.attach(self.stylizer.for_kind("live").stylize_frames, self._options)

    def _options(self, request: StyleFields):
        options = request.options(SETTINGS.paint_side, SETTINGS.max_side)
        backbone_for_mix(options.style.names, index.backbone_of())
        return options

    def _scratch(self, ctx: bentoml.Context) -> Path:
        """A per-request temp folder, removed after the response has been sent."""
        folder = Path(tempfile.mkdtemp(prefix="clipmorph-request-"))
        ctx.response.background.add_task(shutil.rmtree, folder, True)
        return folder

    @bentoml.api(route="/stylize", input_spec=ImageRequest)
    @answers_errors
    def stylize(self, ctx: bentoml.Context, **fields: Any) -> Annotated[Path, ContentType("image/*")]:
        """Stylize one image (adaptive batching underneath)."""
        with http_errors():
            request = ImageRequest(**fields)
            [(encoded, _, _)] = stylize_images(
                self.stylizer, [request.image], self._options(request), IMAGE_FORMATS[request.output_format],
                SETTINGS.max_image_pixels, observe=observe_stage,
            )  # fmt: skip
            target = self._scratch(ctx) / f"stylized-{safe_stem(request.style, 'style')}.{request.output_format}"
            target.write_bytes(encoded)
            return target

    @bentoml.api(route="/stylize_batch", input_spec=BatchRequest)
    @answers_errors
    def stylize_batch(self, ctx: bentoml.Context, **fields: Any) -> Annotated[Path, ContentType("application/zip")]:
        """Stylize several images in one request (one batch); returns a zip in upload order."""
        with http_errors():
            request = BatchRequest(**fields)
            request.check_count(SETTINGS.max_batch_images)
            results = stylize_images(
                self.stylizer, request.images, self._options(request), IMAGE_FORMATS[request.output_format],
                SETTINGS.max_image_pixels, observe=observe_stage, max_total_pixels=SETTINGS.max_batch_pixels,
            )  # fmt: skip
            target = self._scratch(ctx) / f"stylized-{safe_stem(request.style, 'style')}.zip"
            with zipfile.ZipFile(target, "w") as archive:
                # BentoML stores uploads under temp names, so entries are numbered in upload order.
                for number, (encoded, _, _) in enumerate(results, start=1):
                    archive.writestr(f"{number:03d}.{request.output_format}", encoded)
            return target

    @bentoml.api(route="/styles")
    def styles(self) -> list[dict]:
        """Every style: id, display name, artist and other metadata, thumbnail URL."""
        return [{**row, "thumbnail_url": f"/ui/thumbnails/{row['id']}"} for row in index.describe_styles()]

    @bentoml.api(route="/info")
    def info(self) -> dict:
        """Device, dtype and loaded styles of the model service, and this server's limits."""
        return {"model": self.model.info(), "limits": SETTINGS.describe()}

    @bentoml.api(route="/create_style", input_spec=StyleCreationRequest)
    @answers_errors
    def create_style(self, ctx: bentoml.Context, **fields: Any) -> dict:
        """Learn a new style from a painting on the served backbone: a training job. The answer
        links an instant preview (any-painting network) on ``photo`` (else a sample photo).
        Progress and training preview: GET /jobs/{job_id}; cancel: POST /jobs/{job_id}/cancel."""
        with http_errors():
            request = StyleCreationRequest(**fields)
            return create_style_job(
                self.training, request, SETTINGS, self._scratch(ctx), ctx.request.headers,
                paint=lambda photo, painting: self.model.instant_preview(photo=photo, painting=painting),
            )  # fmt: skip

    @bentoml.api(route="/delete_style")
    @answers_errors
    def delete_style(self, ctx: bentoml.Context, style: str) -> dict:
        """Delete a user-made style (catalogue styles are protected)."""
        with http_errors():
            require_admin(ctx.request.headers, SETTINGS.admin_token)
            return {"deleted": models_source.delete_style(validate_name(style), SETTINGS.models_url)}

    @bentoml.api(route="/video_job/submit", input_spec=VideoRequest)
    @answers_errors
    def video_job(self, **fields: Any) -> dict:
        """Stylize a clip as a queued job, checked now. Progress (and queue position): GET /jobs/{job_id};
        result: GET /jobs/{job_id}/result; cancel: POST /jobs/{job_id}/cancel."""
        with http_errors():
            request = VideoRequest(**fields)
            options = self._options(request)
            limits = video_limits(SETTINGS.max_video_seconds)
            check_video(request.video, limits)
            return self.video_jobs.submit(request.video, lambda job, source: self._run_video(
                job, source, options, request.output_format, limits, remove_source=True
            ))  # fmt: skip

    @bentoml.api(route="/stylize_video", input_spec=VideoRequest)
    @answers_errors
    def stylize_video(self, ctx: bentoml.Context, **fields: Any) -> Annotated[Path, ContentType("video/*")]:
        """Stylize a short clip synchronously (length-limited; use /video_job for longer ones)."""
        with http_errors():
            request = VideoRequest(**fields)
            job = Job("sync", self._scratch(ctx))
            options = self._options(request)
            self._video(
                job, request.video, options, request.output_format, video_limits(SETTINGS.max_sync_video_seconds)
            )
            return job.result_file()

    def _run_video(self, job: Job, source: Path, options, output_format: str, limits, remove_source=False) -> dict:
        return run_video(
            job, source, options, output_format, self.stylizer, self.video_encoding, limits, remove_source
        )  # fmt: skip

    def _video(self, job: Job, source: Path, options, output_format: str, limits) -> dict:
        try:
            return self._run_video(job, source, options, output_format, limits)
        except JobCancelled:
            raise bentoml.exceptions.InvalidArgument("the job was cancelled") from None


ClipMorph.add_asgi_middleware(
    RequestSlots, max_processing=SETTINGS.max_concurrency, max_per_client=SETTINGS.max_requests_per_client
)
ClipMorph.add_asgi_middleware(
    BodyLimits, max_bytes=SETTINGS.max_upload_bytes, route_bytes=SETTINGS.route_upload_bytes(),
    idle_seconds=SETTINGS.body_idle_seconds, total_seconds=SETTINGS.body_total_seconds,
)  # fmt: skip
ClipMorph.add_asgi_middleware(ReadOnlyGets, paths=("/styles", "/info"))
ClipMorph.add_asgi_middleware(SecurityHeaders)
ClipMorph.add_asgi_middleware(
    StateChangeGuard, token_configured=bool(SETTINGS.admin_token), allowed_origins=SETTINGS.allowed_origins
)
