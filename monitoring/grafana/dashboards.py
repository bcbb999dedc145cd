"""Grafana dashboards as code (grafanalib). `python monitoring/grafana/dashboards.py` rewrites
the JSON files in monitoring/grafana/dashboards/, which are committed and provisioned.

Every query here is also run against a real Prometheus by tests/test_monitoring.py: a panel
whose query returns nothing after traffic fails the test.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from grafanalib._gen import DashboardEncoder
from grafanalib.core import Dashboard, GridPos, Stat, Target, TimeSeries

DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
OUT = Path(__file__).parent / "dashboards"
SVC = 'service_name="clipmorph"'


def panel(title: str, queries: list[tuple[str, str]], unit: str = "short", kind=TimeSeries, width: int = 12):
    targets = [Target(expr=expr, legendFormat=legend, refId=chr(65 + i)) for i, (expr, legend) in enumerate(queries)]
    unit_field = {"format": unit} if kind is Stat else {"unit": unit}
    return kind(
        title=title, dataSource=DATASOURCE, targets=targets, gridPos=GridPos(h=8, w=width, x=0, y=0), **unit_field
    )


def layout(panels: list) -> list:
    """Two panels a row (or four stats), left to right, top to bottom."""
    x = y = 0
    for item in panels:
        width = item.gridPos.w
        if x + width > 24:
            x, y = 0, y + 8
        item.gridPos = GridPos(h=8, w=width, x=x, y=y)
        x += width
    return panels


def dashboard(title: str, uid: str, panels: list) -> Dashboard:
    """The settings every ClipMorph dashboard shares: tag, browser time zone, 10 s refresh."""
    return Dashboard(
        title=title, uid=uid, tags=["clipmorph"], timezone="browser", refresh="10s", panels=layout(panels)
    ).auto_panel_ids()


def service_overview() -> Dashboard:
    return dashboard(
        "ClipMorph: service overview",
        "clipmorph-overview",
        [
            panel(
                "Requests per second by endpoint",
                [("sum by (endpoint) (clipmorph:request_rate:1m)", "{{endpoint}}")],
                "reqps",
            ),
            panel(
                "Responses by status code",
                [("sum by (http_response_code) (clipmorph:request_rate:1m)", "{{http_response_code}}")],
                "reqps",
            ),
            panel(
                "Latency p50 / p95 / p99 by endpoint",
                [
                    (
                        f'histogram_quantile({q}, sum by (le, endpoint) (rate(bentoml_service_request_duration_seconds_bucket{{{SVC}, endpoint=~"/stylize.*"}}[5m])))',
                        f"p{int(q * 100)} {{{{endpoint}}}}",
                    )
                    for q in (0.5, 0.95, 0.99)
                ],
                "s",
            ),
            panel("5xx error ratio", [("clipmorph:error_ratio:5m", "5xx / all")], "percentunit"),
            panel("Rejected inputs by reason", [("clipmorph:rejected_rate:5m", "{{reason}}")], "reqps"),
            panel("Requests in progress", [("clipmorph:in_progress", "in progress")]),
        ],
    )


def model_and_batching() -> Dashboard:
    return dashboard(
        "ClipMorph: model and batching",
        "clipmorph-model",
        [
            panel(
                "Frames stylized per second by style",
                [("sum by (style) (clipmorph:frames_rate:1m)", "{{style}}")],
                "fps",
            ),
            panel(
                "Frames per second: images vs video",
                [("sum by (kind) (clipmorph:frames_rate:1m)", "{{kind}}")],
                "fps",
            ),
            panel(
                "Adaptive batch size (BentoML, p50 / p95)",
                [
                    (
                        f'histogram_quantile({q}, sum by (le) (rate(bentoml_service_adaptive_batch_size_bucket{{method_name="stylize"}}[5m])))',
                        f"p{int(q * 100)}",
                    )
                    for q in (0.5, 0.95)
                ],
            ),
            panel("Mean frames per forward pass", [("clipmorph:batch_size:mean_5m", "frames / batch")]),
            panel(
                "Stage latency p95 (decode / inference / encode)",
                [("clipmorph:stage_seconds:p95_5m", "{{stage}}")],
                "s",
            ),
            panel("Styles loaded", [("max(clipmorph_styles_loaded)", "styles")], kind=Stat, width=6),
            panel("Model load time", [("max(clipmorph_model_load_seconds)", "seconds")], "s", kind=Stat, width=6),
            panel(
                "Device and dtype",
                [("max by (device, dtype) (clipmorph_model_info)", "{{device}} {{dtype}}")],
                kind=Stat,
                width=12,
            ),
        ],
    )


def video_jobs() -> Dashboard:
    return dashboard(
        "ClipMorph: video jobs",
        "clipmorph-video",
        [
            panel("Jobs ended in the last 15 min by state", [("clipmorph:video_jobs_ended:15m", "{{state}}")]),
            panel("Jobs running", [('sum(clipmorph_video_jobs_active{state="running"})', "running")]),
            panel(
                "Job duration p50 / p95",
                [
                    (
                        f"histogram_quantile({q}, sum by (le) (rate(clipmorph_video_job_duration_seconds_bucket[15m])))",
                        f"p{int(q * 100)}",
                    )
                    for q in (0.5, 0.95)
                ],
                "s",
            ),
            panel(
                "Job speed (frames/s) p50",
                [("histogram_quantile(0.5, sum by (le) (rate(clipmorph_video_job_fps_bucket[15m])))", "p50 fps")],
                "fps",
            ),
            panel("Video frames in flight to the model", [("sum(clipmorph_video_frames_in_flight)", "frames")]),
            panel(
                "Video frames stylized per second",
                [('sum(clipmorph:frames_rate:1m{kind="video"})', "frames/s")],
                "fps",
            ),
        ],
    )


def resources() -> Dashboard:
    return dashboard(
        "ClipMorph: resources",
        "clipmorph-resources",
        [
            panel(
                "Peak resident memory by service",
                [("max by (service) (clipmorph_process_max_resident_memory_bytes)", "{{service}}")],
                "bytes",
            ),
            panel("Scrape health", [('up{job="clipmorph"}', "{{instance}}")]),
            panel(
                "GPU memory used / total",
                [('sum by (device, kind) (clipmorph_gpu_memory_bytes{kind=~"used|total"})', "{{device}} {{kind}}")],
                "bytes",
            ),
            panel(
                "GPU utilisation",
                [("max by (device) (clipmorph_gpu_utilization_ratio)", "{{device}}")],
                "percentunit",
            ),
        ],
    )


def live_camera() -> Dashboard:
    frames = "rate(clipmorph_live_frames_total[1m])"
    dropped = 'rate(clipmorph_live_frames_total{outcome="dropped"}[1m])'
    return dashboard(
        "ClipMorph: live camera",
        "clipmorph-live",
        [
            panel("Live viewers streaming", [("sum(clipmorph_live_sessions)", "viewers")]),
            panel("Live frames per second by outcome", [(f"sum by (outcome) ({frames})", "{{outcome}}")], "fps"),
            panel(
                "Live round trip p50 / p95 (arrival to painted answer)",
                [
                    (
                        f"histogram_quantile({q}, sum by (le) (rate(clipmorph_live_round_trip_seconds_bucket[5m])))",
                        f"p{int(q * 100)}",
                    )
                    for q in (0.5, 0.95)
                ],
                "s",
            ),
            panel(
                "Share of live frames dropped (a newer one was waiting)",
                [(f"(sum({dropped}) or vector(0)) / sum({frames})", "dropped")],
                "percentunit",
            ),
        ],
    )


DASHBOARDS = {
    "service-overview.json": service_overview,
    "model-and-batching.json": model_and_batching,
    "video-jobs.json": video_jobs,
    "resources.json": resources,
    "live-camera.json": live_camera,
}
# Panels whose series exist only on a GPU: tests skip them on CPU machines.
GPU_ONLY = ("clipmorph_gpu_",)


def render(build) -> str:
    return json.dumps(build().to_json_data(), cls=DashboardEncoder, indent=2, sort_keys=True) + "\n"


def queries(text: str) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target in a rendered dashboard."""
    return [(p["title"], t["expr"]) for p in json.loads(text)["panels"] for t in p.get("targets", [])]


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, build in DASHBOARDS.items():
        (OUT / name).write_text(render(build))
        print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
