"""The Live tab measured by the page itself: Debian's headless Chromium (driven by Playwright)
with a fake camera playing a 640x360 clip, against a running service. The page's own frames/s
and round-trip latency (what a user reads under the picture), and a screenshot for the README.
Chromium shares the machine's cores with the service, as a user's browser on a laptop would
not: the figure is a floor."""

from __future__ import annotations

import importlib.util
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-sync",
    "--disable-component-update", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
]  # fmt: skip


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def camera_clip(target: Path, size: tuple[int, int], video: Path | None, seconds: int = 4) -> Path:
    """A Y4M clip for --use-file-for-fake-video-capture (Chromium loops it): ``video`` scaled
    and cropped to ``size`` at 30 frames/s, or a moving test pattern when there is none."""
    import imageio_ffmpeg

    width, height = size
    source = ["-i", str(video)] if video is not None else ["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}"]
    scale = f"scale={width}:{height}:force_original_aspect_ratio=increase,crop={width}:{height},fps=30"
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", *source, "-t", str(seconds), "-vf", scale]
    subprocess.run([*command, "-pix_fmt", "yuv420p", str(target)], check=True)
    return target


def until(condition, what: str, timeout: float = 300.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.2)
    raise RuntimeError(f"the page never showed {what}")


def measure(
    url: str, style: str, clip: Path, seconds: float = 15.0, settle: float = 5.0, screenshot: Path | None = None
) -> dict:
    """Open the page, pick ``style`` (its Fast network where the painting has one), start the
    camera; after the first painted frame and ``settle`` seconds, sample the page's frames/s and
    median round trip once a second for ``seconds``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        camera = f"--use-file-for-fake-video-capture={clip}"
        browser = playwright.chromium.launch(executable_path=chromium(), headless=True, args=[*CHROMIUM_FLAGS, camera])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(f"{url}/ui/")
            page.click("#tab-live")
            page.click(f'.style[data-style="{style}"]')
            started = time.monotonic()
            page.click("#live-start")
            until(lambda: int(page.get_attribute("#live-painted", "data-frames") or 0) > 0, "a painted frame")
            warmup = time.monotonic() - started
            time.sleep(settle)
            fps, latency = [], []
            for _ in range(int(seconds)):
                time.sleep(1.0)
                fps.append(float(page.get_attribute("#live-stats", "data-fps") or 0))
                latency.append(float(page.get_attribute("#live-stats", "data-latency-ms") or "nan"))
            note = page.inner_text("#live-note")
            if screenshot is not None:
                page.locator("#live-panel").screenshot(path=str(screenshot))
            page.click("#live-stop")
        finally:
            browser.close()
    return {
        "page_fps": round(statistics.median(fps), 2),
        "page_fps_min": round(min(fps), 2),
        "page_latency_p50_ms": round(statistics.median(latency), 1),
        "warmup_s": round(warmup, 1),
        "note": note.strip(),
    }


def run_page(url: str, style: str, video: Path | None, screenshot: Path | None, quick: bool) -> dict | None:
    """One page row, or None (with a line saying why) where there is no Chromium or Playwright."""
    if chromium() is None:
        print("live-page: skipped, no Chromium (make system-deps installs Debian's)", flush=True)
        return None
    if importlib.util.find_spec("playwright") is None:
        print("live-page: skipped, no Playwright (pip install -e .[test])", flush=True)
        return None
    with tempfile.TemporaryDirectory(prefix="clipmorph-bench-camera-") as tmp:
        clip = camera_clip(Path(tmp) / "camera.y4m", (640, 360), video)
        return measure(url, style, clip, 5 if quick else 15, screenshot=screenshot)
