"""Live camera under load: `bentoml serve` + clients/live.py with 1, 2 and 4 viewers streaming
640x360 camera-like JPEGs (two frames in flight each, as the page), a `lite` style, per backend
of the model service. Frames/s per viewer and round-trip latency, after each backend's warm-up;
then, on the default configuration, the page itself in headless Chromium with a fake camera
(bench/live_page.py) painting a real catalogue style, and its screenshot bench/live-page.png."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.live_page import run_page
from bench.paths import REPO
from bench.service import free_port, load_module, start
from bench.video import random_library
from clipmorph.styles.catalogue import write_catalogue

CONFIGS = {  # label -> the service's environment (the first is what a plain start gives on a CPU)
    "openvino, paced (default)": {},
    "openvino, full size": {"CLIPMORPH_LIVE_TARGET_FPS": "0"},
    "torch compiled, full size": {"CLIPMORPH_LIVE_BACKEND": "torch", "CLIPMORPH_COMPILE": "1",
                                  "CLIPMORPH_LIVE_TARGET_FPS": "0"},
    "torch eager, full size": {"CLIPMORPH_LIVE_BACKEND": "torch", "CLIPMORPH_LIVE_TARGET_FPS": "0"},
}  # fmt: skip
SETTLE = 5.0  # seconds after a viewer's first painted frame: the pace picks the size meanwhile
SIZE = (640, 360)
PAGE_STYLE = "kanagawa"  # a shipped painting: the page picks its Fast (lite) network for live


def codec_rows(frames: list[bytes], repeats: int = 60) -> list[dict]:
    """What each transport costs the server per frame at 640x360, in this process: a WebSocket of
    JPEGs decodes one JPEG and encodes one; WebRTC (aiortc) decodes the camera's VP8 (or H.264)
    stream and encodes the painted one, real-time settings. The timed loop runs one encode and
    one decode per frame (the same work). The model's time is the same for both."""
    import io
    import time
    from fractions import Fraction

    import av
    import numpy as np
    from PIL import Image

    rgb = [np.asarray(Image.open(io.BytesIO(frame)).convert("RGB")) for frame in frames]
    rows = []

    def timed(label: str, work) -> None:
        work(0)  # warm-up
        started = time.perf_counter()
        for index in range(repeats):
            work(index)
        per_frame = (time.perf_counter() - started) / repeats
        rows.append({"section": "live-transport", "codec": label, "ms_per_frame": round(per_frame * 1000, 2)})
        print(f"live-transport {label:<36} {per_frame * 1000:6.2f} ms per frame (decode + encode)", flush=True)

    def jpeg(index: int) -> None:
        decoded = np.asarray(Image.open(io.BytesIO(frames[index % len(frames)])).convert("RGB"))
        Image.fromarray(decoded).save(io.BytesIO(), format="JPEG", quality=80)

    timed("JPEG q80 (WebSocket)", jpeg)
    for codec, label in (("libvpx", "VP8 realtime (WebRTC, aiortc)"), ("libx264", "H.264 ultrafast (WebRTC)")):
        # Two legs, as a WebRTC server has: the camera's stream decoded, the painted stream encoded.
        encoder = av.CodecContext.create(codec, "w")
        encoder.width, encoder.height, encoder.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        encoder.bit_rate, encoder.framerate, encoder.time_base = 1_500_000, 30, Fraction(1, 30)
        encoder.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"} if codec == "libvpx" else {
            "preset": "ultrafast", "tune": "zerolatency"}  # fmt: skip
        decoder = av.CodecContext.create("vp8" if codec == "libvpx" else "h264", "r")

        def video(index: int, encoder=encoder, decoder=decoder) -> None:
            frame = av.VideoFrame.from_ndarray(rgb[index % len(rgb)], format="rgb24").reformat(format="yuv420p")
            frame.pts = video.pts = getattr(video, "pts", -1) + 1
            for packet in encoder.encode(frame):
                for decoded in decoder.decode(packet):
                    decoded.to_ndarray(format="rgb24")

        timed(label, video)
    return rows


def run(quick: bool = False) -> list[dict]:
    client = load_module("live")
    photo = REPO.parent / "shared" / "data" / "content" / "set14" / "baboon.jpg"
    frames = client.camera_frames(SIZE, photo if photo.is_file() else None)
    rows = codec_rows(frames, 20 if quick else 60)
    with tempfile.TemporaryDirectory(prefix="clipmorph-bench-live-") as tmp:
        write_catalogue(random_library("lite"), Path(tmp) / "catalogue")
        style = "bench-a"
        env = {**os.environ, "BENTOML_HOME": str(Path(tmp) / "bentoml"), "BENTOML_DO_NOT_TRACK": "true",
               "CLIPMORPH_DEVICE": "cpu", "CLIPMORPH_MAX_LIVE_SESSIONS": "4"}  # fmt: skip
        for catalogue in (Path(tmp) / "catalogue", REPO / "models"):  # random styles time; the page shows a real one
            subprocess.run([sys.executable, "-m", "clipmorph.cli", "styles", "import", str(catalogue)],
                           env=env, check=True, capture_output=True)  # fmt: skip
        for label, config_env in CONFIGS.items():
            port = free_port()
            process = start({**env, **config_env}, port, Path(tmp) / f"serve-{len(rows)}.log")
            url = f"http://127.0.0.1:{port}"
            try:
                for viewers in (1, 2) if quick else (1, 2, 4):
                    client.wait_for_no_sessions(url)  # the last run's viewers have left
                    result = client.run(url, viewers, 5 if quick else 15, style, frames, SETTLE)
                    rows.append({"section": "live", "config": label, "size": "x".join(map(str, SIZE)), **result})
                    print(f"live {label:<26} {viewers} viewers {result['fps_per_viewer']:6.2f} frames/s each "
                          f"(slowest {result['slowest_viewer_fps']:.2f})  p50 {result['latency_p50_ms']:.0f} ms  "
                          f"p95 {result['latency_p95_ms']:.0f} ms  dropped {result['dropped']}  "
                          f"at {result['painting_at']}  warm-up {result['warmup_s']:.1f} s", flush=True)  # fmt: skip
                if not config_env:  # the default: what a user's page gets
                    client.wait_for_no_sessions(url)
                    video = REPO.parent / "shared" / "data" / "videos" / "ski.mov"
                    screenshot = REPO / "bench" / "live-page.png"
                    page = run_page(url, PAGE_STYLE, video if video.is_file() else None, screenshot, quick)
                    if page is not None:
                        rows.append({"section": "live-page", "config": label, "size": "x".join(map(str, SIZE)),
                                     "screenshot": screenshot.name, **page})  # fmt: skip
                        print(f"live-page {label}: the page shows {page['page_fps']:.1f} frames/s (lowest "
                              f"{page['page_fps_min']:.1f}), {page['page_latency_p50_ms']:.0f} ms round trip; "
                              f"{page['note']}", flush=True)  # fmt: skip
            finally:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(30)
    return rows
