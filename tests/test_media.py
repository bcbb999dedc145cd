import io
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from clipmorph.errors import BadInput
from clipmorph.fsutil import atomic_path
from clipmorph.inference import media

from media_factory import gradient_frame, jpeg_with_malformed_exif, make_video


def save(image: Image.Image, path, **kwargs):
    image.save(path, **kwargs)
    return path


def test_kind_is_judged_by_content_not_name(tmp_path):
    image_named_video = save(Image.fromarray(gradient_frame(32, 32)), tmp_path / "photo.mp4", format="PNG")
    video_named_image = make_video(tmp_path / "clip.jpg", container="mp4")
    assert media.detect_kind(image_named_video) == media.IMAGE_KIND
    assert media.detect_kind(video_named_image) == media.VIDEO_KIND


@pytest.mark.parametrize("content", [b"", b"garbage" * 100, b"\x89PNG\r\n\x1a\n" + b"\0" * 50])
def test_unreadable_files_are_refused_with_a_reason(tmp_path, content):
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    with pytest.raises(BadInput, match=r"empty|not an image or video"):
        media.detect_kind(path)


def test_missing_file(tmp_path):
    with pytest.raises(BadInput, match="no such file"):
        media.detect_kind(tmp_path / "nope.jpg")


def test_exif_orientation_is_applied(tmp_path):
    pixels = gradient_frame(40, 20)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = save(Image.fromarray(pixels), tmp_path / "rotated.jpg", exif=exif.tobytes())
    decoded = media.load_image(path)
    assert decoded.rgb.shape == (40, 20, 3)


@pytest.mark.parametrize("orientation", [1, 6])
def test_a_jpeg_may_decode_smaller_but_never_below_the_size_asked_for(tmp_path, orientation):
    """The live route decodes camera frames straight at the painting size's scale (1/2, 1/4...):
    never smaller than asked on either side, upright included."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = save(Image.fromarray(gradient_frame(640, 360)), tmp_path / "frame.jpg", exif=exif.tobytes())
    upright = (640, 360) if orientation == 1 else (360, 640)
    assert media.load_image(path).rgb.shape[1::-1] == upright
    for wanted, expected in (((300, 160), (320, 180)), ((150, 80), (160, 90)), ((400, 200), (640, 360))):
        if orientation != 1:
            wanted, expected = wanted[::-1], expected[::-1]
        decoded = media.load_image(path, at_least=wanted).rgb
        assert decoded.shape[1::-1] == expected


def test_alpha_is_kept_aside_and_restored(tmp_path):
    rgba = np.dstack([gradient_frame(32, 24), np.tile(np.linspace(0, 255, 32, dtype=np.uint8), (24, 1))])
    decoded = media.load_image(save(Image.fromarray(rgba, "RGBA"), tmp_path / "a.png"))
    assert decoded.alpha is not None and np.array_equal(decoded.alpha, rgba[..., 3])
    png = Image.open(io.BytesIO(media.encode_image(decoded.rgb, decoded.alpha, "PNG")))
    assert png.mode == "RGBA" and np.array_equal(np.asarray(png)[..., 3], rgba[..., 3])
    jpeg = Image.open(io.BytesIO(media.encode_image(decoded.rgb, decoded.alpha, "JPEG")))
    assert jpeg.mode == "RGB"
    assert np.asarray(jpeg)[0, 0].min() > 240  # fully transparent corner flattened onto white


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "I;16", "LA"])
def test_unusual_modes_decode_to_rgb(tmp_path, mode):
    image = (
        Image.fromarray(gradient_frame(32, 32)).convert(mode if mode != "I;16" else "I").convert(mode)
        if mode != "I;16"
        else Image.fromarray((np.arange(1024).reshape(32, 32) * 60).astype(np.uint16))
    )
    path = save(image, tmp_path / ("x.tif" if mode == "CMYK" else "x.png"))
    decoded = media.load_image(path)
    assert decoded.rgb.shape == (32, 32, 3) and decoded.rgb.dtype == np.uint8


def test_decompression_bombs_are_refused(tmp_path, monkeypatch):
    path = save(Image.fromarray(gradient_frame(64, 64)), tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 64*64 > 2x the limit
    with pytest.raises(BadInput, match="too large"):
        media.load_image(path)


def test_output_kind_from_extension(tmp_path):
    assert media.output_kind(tmp_path / "x.webp") == media.IMAGE_KIND
    assert media.output_kind(tmp_path / "x.MKV") == media.VIDEO_KIND
    with pytest.raises(BadInput, match="output format"):
        media.output_kind(tmp_path / "x.docx")


def test_atomic_output_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.png"
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_bytes(b"half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_video_reader_reports_what_the_file_holds(tmp_path):
    reader = media.VideoReader(make_video(tmp_path / "v.mp4", frames=10, size=(64, 48), fps=10))
    try:
        frames = list(reader)
        assert reader.info.width == 64 and reader.info.height == 48 and reader.info.fps == 10
        assert reader.info.frames == 10 and reader.info.has_audio
        assert len(frames) == 10 and frames[0][0].shape == (48, 64, 3)
    finally:
        reader.close()


def test_auto_encoding_takes_nvenc_only_where_it_starts(monkeypatch):
    monkeypatch.setattr("clipmorph.inference.media.video.encoder_opens", lambda name: name == "h264_nvenc")
    assert media.pick_h264_encoder("auto") == "h264_nvenc"
    monkeypatch.setattr("clipmorph.inference.media.video.encoder_opens", lambda name: name == "libx264")
    assert media.pick_h264_encoder("auto") == "libx264"
    with pytest.raises(BadInput, match="h264_nvenc encoder cannot start on this machine"):
        media.pick_h264_encoder("h264_nvenc")  # asked for by name: an error, not a silent fallback
    with pytest.raises(BadInput, match="unknown video encoder 'x265'"):
        media.pick_h264_encoder("x265")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA machine may have an NVENC engine")
def test_the_probe_opens_x264_and_not_nvenc_without_an_nvidia_gpu():
    assert media.encoder_opens("libx264")
    assert not media.encoder_opens("h264_nvenc")  # compiled into PyAV's FFmpeg, but no GPU here


@pytest.mark.parametrize("fault", ["ascii_resolution", "oversized_short"])
def test_a_malformed_exif_tag_does_not_refuse_the_picture_and_its_orientation_still_counts(fault):
    from PIL import ImageOps

    data = jpeg_with_malformed_exif(48, 32, fault)
    with pytest.raises((TypeError, struct.error)):  # what Pillow's own helper does with this file
        ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    decoded = media.load_image(data)
    assert decoded.rgb.shape == (48, 32, 3)  # orientation 6: stored 48x32, shown 32 wide and 48 high
