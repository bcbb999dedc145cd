"""ASGI apps mounted on the API service: the web page (/ui) and video job state (/jobs)."""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from clipmorph.errors import BadInput
from clipmorph.serving.jobs.store import ENDED, Job, JobStore

STATIC = Path(__file__).parent / "static"
PALETTE = ["#e76f51", "#2a9d8f", "#e9c46a", "#264653", "#f4a261", "#8ab17d", "#b5838d", "#6d597a"]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_jobs_app(store: JobStore, authorize_cancel: Callable[[Job, Headers], None] | None = None) -> Starlette:
    """Progress, preview, result download and cancel for video and style jobs, shared by every
    worker via disk. ``authorize_cancel`` raises BadInput(reason="forbidden") to refuse."""

    def with_job(handler):
        """Resolve the path's job id: 400 for a malformed id, 404 for an unknown job."""

        async def endpoint(request: Request) -> Response:
            try:
                job = store.get(request.path_params["job_id"])
            except BadInput as error:
                return _error(400, str(error))
            # A folder made a moment ago has no record yet; another replica's job was found by its record.
            if job is None or (job.folder.exists() and not job.progress_file.exists()):
                return _error(404, "no such job (it may not have started yet, or was swept)")
            if request.method == "POST" and authorize_cancel:
                try:
                    authorize_cancel(job, request.headers)
                except BadInput as error:
                    return _error(403, str(error))
            return handler(job)

        return endpoint

    def progress(job: Job) -> Response:
        from clipmorph.serving.jobs.video_queue import queue_position

        record = job.read()
        position = queue_position(store, job)
        return JSONResponse(record | ({"position": position} if position else {}))

    def picture(name: str, missing: str):
        def handler(job: Job) -> Response:
            where = job.shared_file(name)
            if where is None:
                return _error(404, missing)
            return _send(where, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

        return handler

    instant_preview = picture("instant.jpg", "this job has no instant preview")

    def result(job: Job) -> Response:
        output = job.result_file() or next(filter(None, map(job.shared_file, ("result.mp4", "result.webm"))), None)
        if output is None or job.read().get("state") != "succeeded":
            return _error(404, "no result for this job (not finished, failed, cancelled or swept)")
        suffix = Path(str(output)).suffix
        return _send(output, filename=f"clipmorph-{job.id}{suffix}", media_type=_video_type(Path(str(output))))

    def cancel(job: Job) -> Response:
        state = job.read().get("state")
        if state in ENDED:
            return _error(409, f"the job has already ended ({state})")
        job.request_cancel()
        return JSONResponse({"id": job.id, "state": "cancelling"}, status_code=202)

    return Starlette(
        routes=[
            Route("/{job_id}", with_job(progress), methods=["GET"]),
            Route("/{job_id}/result", with_job(result), methods=["GET"]),
            Route("/{job_id}/preview", with_job(picture("preview.jpg", "no preview yet")), methods=["GET"]),
            Route("/{job_id}/instant_preview", with_job(instant_preview), methods=["GET"]),
            Route("/{job_id}/cancel", with_job(cancel), methods=["POST"]),
        ]
    )


def _send(where, media_type: str, filename: str | None = None, headers: dict | None = None) -> Response:
    """A file of this replica's, or one streamed from the jobs bucket (another replica's job)."""
    if isinstance(where, Path):
        return FileResponse(where, filename=filename, media_type=media_type, headers=headers)
    from starlette.responses import StreamingResponse

    from clipmorph import locations

    disposition = {"Content-Disposition": f'attachment; filename="{filename}"'} if filename else {}
    return StreamingResponse(
        locations.read_chunks(where), media_type=media_type, headers={**(headers or {}), **disposition}
    )


def _video_type(path: Path) -> str:
    return {".webm": "video/webm", ".mp4": "video/mp4"}.get(path.suffix, "application/octet-stream")


def placeholder_thumbnail(style_id: str) -> str:
    """An SVG tile for a style without a stored thumbnail (colour derived from the id)."""
    colour = PALETTE[sum(map(ord, style_id)) % len(PALETTE)]
    label = html.escape(style_id[:14])
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="160" height="160" viewBox="0 0 160 160">'
        f'<rect width="160" height="160" fill="{colour}"/>'
        '<circle cx="120" cy="40" r="26" fill="#fff" fill-opacity=".25"/>'
        '<path d="M0 130 Q40 90 80 120 T160 110 V160 H0Z" fill="#000" fill-opacity=".18"/>'
        f'<text x="12" y="148" font-family="sans-serif" font-size="16" fill="#fff">{label}</text></svg>'
    )


def create_web_app() -> Starlette:
    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    def thumbnail(request: Request) -> Response:  # reads the store: in Starlette's threads, off the event loop
        style_id = request.path_params["style_id"]
        from clipmorph.styles import index

        stored = index.thumbnail_path(style_id)
        try:  # read now: a style deleted meanwhile gets the placeholder, not a broken stream
            picture = stored.read_bytes() if stored is not None else None
        except OSError:
            picture = None
        if picture is not None:
            return Response(picture, media_type="image/jpeg")
        return Response(placeholder_thumbnail(style_id), media_type="image/svg+xml")

    return Starlette(
        routes=[
            Route("/", index),
            Route("/thumbnails/{style_id}", thumbnail),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
    )
