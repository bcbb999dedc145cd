"""The Live tab in headless Chromium with a fake camera (a Y4M file of one picture): the page
streams the camera to the service and shows it painted, as the model paints that picture; a
style switch takes effect while it runs; Stop ends the session on the server."""

from __future__ import annotations

import base64
import io
import subprocess
import time

import httpx
import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from browser import open_page
from media_factory import gradient_frame

pytestmark = pytest.mark.service
DEADLINE = 120  # seconds; each wait ends as soon as the page shows what it waits for


def camera_file(tmp_path, picture: np.ndarray):
    """A Y4M clip of ``picture`` for --use-file-for-fake-video-capture (Chromium loops it)."""
    still, clip = tmp_path / "camera.png", tmp_path / "camera.y4m"
    Image.fromarray(picture).save(still)
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-loop", "1", "-i", str(still), "-t", "1", "-r", "10"]
    subprocess.run([*command, "-pix_fmt", "yuv420p", str(clip)], check=True)
    return clip


def until(condition, what: str):
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"the page never showed {what}")


def painted_canvas(page) -> np.ndarray:
    url = page.evaluate("document.getElementById('live-painted').toDataURL('image/png')")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))


def frames_shown(page) -> int:
    return int(page.get_attribute("#live-painted", "data-frames") or 0)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    error = np.mean((a.astype(float) - b.astype(float)) ** 2)
    return float(10 * np.log10(255**2 / max(error, 1e-9)))


def live_sessions(server) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=30).text
    rows = [line for line in text.splitlines() if line.startswith("clipmorph_live_sessions ")]
    return float(rows[0].split()[1]) if rows else 0.0


def test_the_live_tab_paints_the_camera_switches_style_and_stops(server, tmp_path):
    picture = gradient_frame(320, 180, t=2)
    expected = {}
    with server.client() as client:
        for style in ("rand-0", "rand-1"):
            buffer = io.BytesIO()
            Image.fromarray(picture).save(buffer, format="PNG")
            answer = client.post("/stylize", data={"style": style}, files={"image": ("c.png", buffer.getvalue())})
            assert answer.status_code == 200, answer.text
            expected[style] = np.asarray(Image.open(io.BytesIO(answer.content)).convert("RGB"))
    flags = (
        "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={camera_file(tmp_path, picture)}",
    )  # fmt: skip
    with open_page(f"{server.url}/ui/", enforce_csp=True, extra_args=flags) as page:
        page.wait_for_selector(".style >> nth=1")
        page.click("#tab-live")
        assert page.is_visible("#live-panel") and not page.is_visible("#input-panel")
        page.click('.style[data-style="rand-0"]')
        page.click("#live-start")
        until(lambda: frames_shown(page) >= 3, "three painted frames")
        first = painted_canvas(page)

        page.click('.style[data-style="rand-1"]')
        shown = frames_shown(page)
        until(lambda: "rand-1" in page.inner_text("#live-note") and frames_shown(page) >= shown + 3, "the new style")
        second = painted_canvas(page)
        until(lambda: float(page.get_attribute("#live-stats", "data-fps") or 0) > 0, "its frames per second")
        assert page.get_attribute("#live-stats", "data-latency-ms")

        page.click("#live-stop")
        until(lambda: live_sessions(server) == 0, "the session closed on the server")
        assert page.is_enabled("#live-start") and not page.is_visible("#live-error")

    assert first.shape == picture.shape
    # The camera's picture (through YUV 4:2:0 and two JPEGs) painted as the model paints it, not the other style.
    assert (
        psnr(first, expected["rand-0"]) > 24 and psnr(first, expected["rand-1"]) < psnr(first, expected["rand-0"]) - 3
    )
    assert (
        psnr(second, expected["rand-1"]) > 24
        and psnr(second, expected["rand-0"]) < psnr(second, expected["rand-1"]) - 3
    )
    assert psnr(first, picture) < 22  # painted, not the camera as it came
