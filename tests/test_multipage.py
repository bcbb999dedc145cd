"""Many-frame pictures (TIFF pages, GIF frames): telling image from video reads a bounded
number of frames, however many the file holds (a 2 MB upload must not pin a thread)."""

import contextlib
import io

import pytest
from PIL import GifImagePlugin, Image, PngImagePlugin, TiffImagePlugin, WebPImagePlugin

from clipmorph.inference.media import IMAGE_KIND, detect_kind


@pytest.mark.parametrize(
    ("suffix", "plugin"),
    [
        (".tif", TiffImagePlugin.TiffImageFile),
        (".gif", GifImagePlugin.GifImageFile),
        (".png", PngImagePlugin.PngImageFile),  # APNG
        (".webp", WebPImagePlugin.WebPImageFile),
    ],
)
def test_deciding_the_kind_reads_at_most_two_frames_of_thousands(tmp_path, monkeypatch, suffix, plugin):
    frames = [Image.new("RGB", (4, 4), (i % 256, 40, 90)) for i in range(1000)]  # each differs from the last
    many, one = tmp_path / f"many{suffix}", tmp_path / f"one{suffix}"
    frames[0].save(many, save_all=True, append_images=frames[1:])
    frames[0].save(one)
    seeks = []
    original = plugin._seek
    monkeypatch.setattr(
        plugin, "_seek", lambda self, frame, *rest: (seeks.append(frame), original(self, frame, *rest))[1]
    )
    assert detect_kind(one) == IMAGE_KIND
    with contextlib.suppress(Exception):  # not a still: FFmpeg judges it (a video, or refused)
        detect_kind(many)
    assert max(seeks, default=0) <= 1, f"frames visited: {sorted(set(seeks))[-5:]}"


@pytest.mark.service
@pytest.mark.parametrize("fmt", ["TIFF", "GIF", "PNG", "WEBP"])
def test_a_real_server_answers_many_frame_uploads_on_every_route(server, fmt):
    """2,000 frames (TIFF: 1,000; Pillow writes them slowly) of 8x8 each: the image route takes
    the first frame or refuses, the video routes stylize or refuse; never a 5xx."""
    frames = [Image.new("RGB", (8, 8), (i % 256, 40, 90)) for i in range(1000 if fmt == "TIFF" else 2000)]
    upload = io.BytesIO()
    frames[0].save(upload, format=fmt, save_all=True, append_images=frames[1:])
    with server.client(timeout=120) as client:
        for route, field in [("/stylize", "image"), ("/stylize_video", "video"), ("/video_job/submit", "video")]:
            files = {field: (f"many.{fmt.lower()}", upload.getvalue())}
            answer = client.post(route, files=files, data={"style": "rand-0"})
            assert answer.status_code < 500, answer.text
    assert server.alive()
