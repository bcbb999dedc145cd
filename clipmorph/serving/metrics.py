"""Prometheus metrics that BentoML cannot know: per-style work, pipeline stages, video jobs,
rejected inputs, model and device state. BentoML serves them on its own ``/metrics``.

prometheus_client must be imported only after BentoML has set PROMETHEUS_MULTIPROC_DIR in
the worker (its multiprocess mode is fixed at import time), so metrics are created on first
use (inside the services), never at module import.
"""

from __future__ import annotations

import contextlib
import functools
import resource
import sys
import threading
from dataclasses import dataclass
from typing import Any

# Seconds buckets from 5 ms to 10 min, for stages, batches and jobs.
TIME_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)
LIVE_BUCKETS = (0.01, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2.5)
FPS_BUCKETS = (0.5, 1, 2, 5, 10, 15, 25, 30, 60, 120, 240)
OTHER = "other"
BLEND = "blend"


@dataclass
class Metrics:
    frames: Any  # Counter: clipmorph_frames_stylized_total{style, kind}
    batch_size: Any  # Histogram: clipmorph_inference_batch_size
    stage_seconds: Any  # Histogram: clipmorph_stage_seconds{stage}
    jobs_total: Any  # Counter: clipmorph_video_jobs_total{state}
    jobs_active: Any  # Gauge: clipmorph_video_jobs_active{state}
    job_seconds: Any  # Histogram: clipmorph_video_job_duration_seconds
    job_fps: Any  # Histogram: clipmorph_video_job_fps
    frames_in_flight: Any  # Gauge: clipmorph_video_frames_in_flight
    rejected: Any  # Counter: clipmorph_rejected_inputs_total{reason}
    model_load_seconds: Any  # Gauge
    styles_loaded: Any  # Gauge
    model_info: Any  # Gauge: clipmorph_model_info{device, dtype} = 1
    process_memory: Any  # Gauge: clipmorph_process_max_resident_memory_bytes{service}
    gpu_memory: Any  # Gauge: clipmorph_gpu_memory_bytes{device, kind=used|reserved|total}
    gpu_utilization: Any  # Gauge: clipmorph_gpu_utilization_ratio{device}
    live_sessions: Any  # Gauge: clipmorph_live_sessions
    live_frames: Any  # Counter: clipmorph_live_frames_total{outcome=painted|unpainted|dropped}
    live_round_trip: Any  # Histogram: clipmorph_live_round_trip_seconds


_CREATING = threading.Lock()


def get() -> Metrics:
    """The process's metrics, created once: a service's request threads can all arrive here
    first at the same moment, and registering a metric twice raises (a 500 seen under load)."""
    with _CREATING:
        return _create()


@functools.cache
def _create() -> Metrics:
    from prometheus_client import Counter, Gauge, Histogram

    return Metrics(
        frames=Counter("clipmorph_frames_stylized", "Images and video frames stylized", ["style", "kind"]),
        batch_size=Histogram("clipmorph_inference_batch_size", "Frames per forward pass", buckets=BATCH_BUCKETS),
        stage_seconds=Histogram(
            "clipmorph_stage_seconds",
            "Time per pipeline stage (decode, inference, encode)",
            ["stage"],
            buckets=TIME_BUCKETS,
        ),
        jobs_total=Counter("clipmorph_video_jobs", "Video jobs that ended, by final state", ["state"]),
        jobs_active=Gauge(
            "clipmorph_video_jobs_active", "Video jobs queued or running", ["state"], multiprocess_mode="livesum"
        ),
        job_seconds=Histogram("clipmorph_video_job_duration_seconds", "Video job wall time", buckets=TIME_BUCKETS),
        job_fps=Histogram("clipmorph_video_job_fps", "Frames per second of finished video jobs", buckets=FPS_BUCKETS),
        frames_in_flight=Gauge(
            "clipmorph_video_frames_in_flight",
            "Video frames sent to the model, not yet back",
            multiprocess_mode="livesum",
        ),
        rejected=Counter("clipmorph_rejected_inputs", "Requests refused for bad input, by reason", ["reason"]),
        model_load_seconds=Gauge(
            "clipmorph_model_load_seconds", "Time to load every style at start", multiprocess_mode="max"
        ),
        styles_loaded=Gauge("clipmorph_styles_loaded", "Styles served", multiprocess_mode="max"),
        model_info=Gauge(
            "clipmorph_model_info", "Device and dtype of the model", ["device", "dtype"], multiprocess_mode="max"
        ),
        process_memory=Gauge(
            "clipmorph_process_max_resident_memory_bytes",
            "Peak resident memory of a service process",
            ["service"],
            multiprocess_mode="max",
        ),
        gpu_memory=Gauge("clipmorph_gpu_memory_bytes", "GPU memory", ["device", "kind"], multiprocess_mode="max"),
        gpu_utilization=Gauge(
            "clipmorph_gpu_utilization_ratio", "GPU utilisation (0..1)", ["device"], multiprocess_mode="max"
        ),
        live_sessions=Gauge(
            "clipmorph_live_sessions", "Live camera viewers streaming now", multiprocess_mode="livesum"
        ),
        live_frames=Counter(
            "clipmorph_live_frames",
            "Live camera frames answered: painted, unpainted (warming up) or dropped",
            ["outcome"],
        ),
        live_round_trip=Histogram(
            "clipmorph_live_round_trip_seconds",
            "A live frame from its arrival to its painted answer (decode, model, encode)",
            buckets=LIVE_BUCKETS,
        ),
    )


def style_label(style: str, known: set[str]) -> str:
    """Bounded label values: a served style id, 'blend' for mixes, 'other' for anything else."""
    if "," in style or "=" in style:
        return BLEND
    return style if style in known else OTHER


def sample_resources(service: str) -> None:
    """Record peak RSS of this process and, with CUDA, GPU memory and utilisation."""
    metrics = get()
    metrics.process_memory.labels(service).set(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    torch = sys.modules.get("torch")  # loaded by the model workers; the API workers never load it
    if torch is None or not torch.cuda.is_available():
        return
    device = f"cuda:{torch.cuda.current_device()}"
    free, total = torch.cuda.mem_get_info()
    metrics.gpu_memory.labels(device, "used").set(total - free)
    metrics.gpu_memory.labels(device, "reserved").set(torch.cuda.memory_reserved())
    metrics.gpu_memory.labels(device, "total").set(total)
    with contextlib.suppress(Exception):  # needs nvidia-ml-py; memory alone is still useful
        metrics.gpu_utilization.labels(device).set(torch.cuda.utilization() / 100.0)


def rejected(reason: str) -> None:
    get().rejected.labels(reason).inc()
