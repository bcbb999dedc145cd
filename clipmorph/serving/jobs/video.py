"""A video job's life cycle: check the upload, stylize it through the model service, record
progress, results and the outcome (metrics included).

Queued jobs (``video_queue``) and the synchronous ``/stylize_video`` route (in a request
folder) run the same life cycle; whoever owns the input removes it afterwards.
"""

from __future__ import annotations

import time
from pathlib import Path

from clipmorph.errors import BadInput, without_paths
from clipmorph.inference import media
from clipmorph.inference.options import StylizeOptions
from clipmorph.inference.pipeline import stylize_video_file
from clipmorph.serving import metrics
from clipmorph.serving.jobs.store import Job, JobCancelled
from clipmorph.serving.remote import RemoteStylizer


def observe_stage(stage: str, seconds: float) -> None:
    """The pipeline's stage timings as metrics."""
    metrics.get().stage_seconds.labels(stage).observe(seconds)
    if stage == "decode":  # once per image request (video jobs sample when they end)
        metrics.sample_resources("api")


def check_video(path: Path, limits: media.DecodeLimits) -> media.VideoInfo:
    """Refuse what is not a video, or whose header is already over the limits (the frames are
    checked again as they are decoded: headers can lie)."""
    if media.detect_kind(path) != media.VIDEO_KIND:
        raise BadInput("the upload is an image, not a video: use /stylize", "not_video")
    reader = media.VideoReader(path)
    info = reader.info
    reader.close()
    limits.check_header(info)
    return info


def run_video(
    job: Job,
    source: Path,
    options: StylizeOptions,
    output_format: str,
    stylizer: RemoteStylizer,
    encoding: media.VideoEncoding,
    limits: media.DecodeLimits,
    remove_source: bool = False,
) -> dict:
    """Stylize ``source`` into the job's result file; returns (and records) the job result.
    Raises JobCancelled when the job's cancel flag was set, BadInput for a bad upload.
    ``remove_source``: the input is gone before the final state is written (readers that see
    the job ended never find its upload)."""
    board = metrics.get()
    started = time.monotonic()
    board.jobs_active.labels("running").inc()
    final_state = "failed"

    def end(state: str, **fields) -> None:
        if remove_source:
            source.unlink(missing_ok=True)
        job.write(state, **fields)

    try:
        info = check_video(source, limits)
        job.write("running", done=0, total=info.frames, width=info.width, height=info.height, fps=0.0)
        report = stylize_video_file(
            stylizer.for_video(board.frames_in_flight), source, job.output(f".{output_format}"), options,
            progress=False, encoding=encoding, on_frames=job.tracker(started), observe=observe_stage, limits=limits,
        )  # fmt: skip
        final_state = "succeeded"
    except JobCancelled:
        final_state = "cancelled"
        end("cancelled")
        raise
    except Exception as error:
        end("failed", error=without_paths(str(error)))
        raise
    finally:
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
        # busy time of decode, stylize (the model service's calls) and encode, on their own threads
        "stage_seconds": {stage: round(seconds, 3) for stage, seconds in report.stage_seconds.items()},
        "download_url": f"/jobs/{job.id}/result",
    }
    end("succeeded", done=report.frames, total=report.frames, eta_seconds=0, result=result)
    board.job_fps.observe(report.fps)
    return result
