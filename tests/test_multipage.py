"""Many-frame pictures (TIFF pages, GIF frames): telling image from video reads a bounded
number of frames, however many the file holds (a 2 MB upload must not pin a thread)."""

import contextlib

import pytest
from PIL import GifImagePlugin, Image, TiffImagePlugin

from clipmorph.inference.media import IMAGE_KIND, detect_kind


@pytest.mark.parametrize(
    ("suffix", "plugin"), [(".tif", TiffImagePlugin.TiffImageFile), (".gif", GifImagePlugin.GifImageFile)]
)
def test_deciding_the_kind_reads_at_most_two_frames_of_thousands(tmp_path, monkeypatch, suffix, plugin):
    frames = [Image.new("RGB", (4, 4), (i % 256, 40, 90)) for i in range(1000)]
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
    assert max(seeks) <= 1, f"frames visited: {sorted(set(seeks))[-5:]}"
