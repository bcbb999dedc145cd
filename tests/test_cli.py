"""The real `clipmorph` command over real files; videos are checked with FFmpeg's own binary."""

import os
import re
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from clipmorph.inference import media

from conftest import run_cli
from media_factory import ffmpeg_probe, gradient_frame, make_video


def leftovers(folder):
    return [p.name for p in folder.iterdir() if ".partial" in p.name]


def test_stylize_a_photo(stored_styles, tmp_path):
    source = tmp_path / "photo.jpg"
    Image.fromarray(gradient_frame(120, 80)).save(source, quality=95)
    for target in (tmp_path / "out.png", tmp_path / "out.webp"):
        result = run_cli("stylize", str(source), str(target), "--style", "rand-0", "--strength", "0.8")
        assert result.returncode == 0, result.stderr
        assert f"wrote {target}" in result.stdout
        with Image.open(target) as image:
            assert image.size == (120, 80) and image.format == target.suffix[1:].upper()


def test_the_openvino_backend_from_the_command_line(stored_styles, tmp_path):
    source, torch_out, openvino_out = tmp_path / "photo.png", tmp_path / "torch.png", tmp_path / "openvino.png"
    Image.fromarray(gradient_frame(96, 64)).save(source)
    plain = run_cli("stylize", str(source), str(torch_out), "--style", "rand-0", "--dtype", "float32")
    result = run_cli("stylize", str(source), str(openvino_out), "--style", "rand-0", "--backend", "openvino",
                     "--dtype", "float32")  # fmt: skip
    assert plain.returncode == 0 and result.returncode == 0, result.stderr
    assert "float32 openvino" in result.stdout
    with Image.open(torch_out) as a, Image.open(openvino_out) as b:
        assert np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int)).max() <= 1
    refused = run_cli("stylize", str(source), str(tmp_path / "x.png"), "--style", "rand-0", "--backend", "onnx")
    assert refused.returncode == 1 and "unknown backend 'onnx'" in refused.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="auto picks PyTorch on a GPU")
def test_without_flags_videos_and_photos_run_on_openvino_and_photos_of_any_size_export_nothing_new(
    stored_styles, tmp_path
):
    """The default (`--backend auto`) on the CPU: OpenVINO. A clip exports its one shape once; a
    photo runs through the one any-size model, so photos of new sizes export nothing more;
    `--compile` still means torch.compile."""
    env = {**os.environ, "CLIPMORPH_CACHE": str(tmp_path / "cache")}
    clip = make_video(tmp_path / "a.mp4", frames=6, size=(64, 48), fps=6)
    video = run_cli("stylize", str(clip), str(tmp_path / "out.mp4"), "--style", "rand-0", "-q", env=env)
    compiled = run_cli("stylize", str(clip), str(tmp_path / "c.mp4"), "--style", "rand-0", "-q", "--compile", env=env)
    assert video.returncode == compiled.returncode == 0, video.stderr + compiled.stderr
    assert re.search(r"on cpu \w+ openvino", video.stdout) and "6 frame(s)" in video.stdout, video.stdout
    assert re.search(r"busy decode [\d.]+ s, stylize [\d.]+ s, encode [\d.]+ s\)", video.stdout), video.stdout
    assert re.search(r"on cpu \w+ torch", compiled.stdout), compiled.stdout
    exported = set((tmp_path / "cache" / "openvino").glob("*.xml"))
    for width, height in ((64, 48), (50, 37), (90, 61)):
        photo = tmp_path / f"p{width}.png"
        Image.fromarray(gradient_frame(width, height)).save(photo)
        image = run_cli("stylize", str(photo), str(tmp_path / f"out{width}.png"), "--style", "rand-0", env=env)
        assert image.returncode == 0 and re.search(r"on cpu \w+ openvino\)", image.stdout), image.stderr
        with Image.open(tmp_path / f"out{width}.png") as painted:
            assert painted.size == (width, height)
    added = set((tmp_path / "cache" / "openvino").glob("*.xml")) - exported
    assert [path.name.split("-")[1] for path in added] == ["anyx1.xml"]  # one model for every photo size
    half = run_cli("stylize", str(photo), str(tmp_path / "half.png"), "--style", "rand-0", "--dtype", "float16")
    assert half.returncode == 0 and re.search(r"on cpu float16 torch\)", half.stdout), half.stderr  # only PyTorch


def test_stylize_a_shared_photo_with_blend_and_colour(stored_styles, shared_data, tmp_path):
    source = sorted((shared_data / "content" / "set14").glob("*.jpg"))[0]
    target = tmp_path / "blend.jpg"
    result = run_cli(
        "stylize", str(source), str(target), "--style", "rand-0=0.5,rand-1=0.5", "--preserve-color", "--max-side", "256"
    )
    assert result.returncode == 0, result.stderr
    with Image.open(source) as original, Image.open(target) as out:
        assert out.size == original.size
        assert np.abs(np.asarray(out, dtype=int) - np.asarray(original.convert("RGB"), dtype=int)).mean() > 3


def test_unknown_style_lists_available_and_fails(stored_styles, tmp_path):
    source = tmp_path / "p.png"
    Image.fromarray(gradient_frame(32, 32)).save(source)
    result = run_cli("stylize", str(source), str(tmp_path / "o.png"), "--style", "vangoh")
    assert result.returncode == 1
    assert "unknown style 'vangoh'" in result.stderr and "rand-0" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("content", "output", "message"),
    [
        (b"this is not a picture", "o.png", "not an image or video"),
        (None, "o.mp4", "is an image but o.mp4 names a video format"),
        (None, "o.txt", "cannot tell the output format"),
    ],
)
def test_bad_inputs_fail_clearly(stored_styles, tmp_path, content, output, message):
    source = tmp_path / "in.png"
    if content is None:
        Image.fromarray(gradient_frame(32, 32)).save(source)
    else:
        source.write_bytes(content)
    result = run_cli("stylize", str(source), str(tmp_path / output), "--style", "rand-0")
    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert not (tmp_path / output).exists() and not leftovers(tmp_path)


def test_usage_errors_exit_2(tmp_path):
    assert run_cli("stylize", "a.jpg").returncode == 2
    assert run_cli("frobnicate").returncode == 2


@pytest.mark.parametrize(
    ("name", "audio", "out_suffix", "out_audio"),
    [
        ("a.mp4", "aac", ".mp4", "aac"),
        ("b.mov", "pcm_s16le", ".mp4", "aac"),
        ("c.mp4", None, ".mkv", None),
        ("d.mp4", "aac", ".webm", "opus"),
    ],
)
def test_stylize_made_videos(stored_styles, tmp_path, name, audio, out_suffix, out_audio):
    source = make_video(tmp_path / name, frames=15, size=(80, 48), fps=15, audio_codec=audio)
    target = tmp_path / f"out{out_suffix}"
    result = run_cli("stylize", str(source), str(target), "--style", "rand-1", "--batch-size", "4", "-q")
    assert result.returncode == 0, result.stderr
    encoder = "libvpx-vp9" if out_suffix == ".webm" else media.pick_h264_encoder("auto")
    assert f", {encoder}; busy decode" in result.stdout  # the summary names the encoder that wrote the file
    frames, report = ffmpeg_probe(target)
    assert frames == 15
    assert re.search(r"Video: (h264|vp9).* 80x48", report) and re.search(r"\b15 fps\b", report)
    if out_audio:
        assert f"Audio: {out_audio}" in report
    else:
        assert "Audio:" not in report
    assert not leftovers(tmp_path)


@pytest.mark.skipif(media.encoder_opens("h264_nvenc"), reason="this machine has NVENC")
def test_an_encoder_this_machine_lacks_is_refused_and_leaves_nothing(stored_styles, tmp_path):
    source = make_video(tmp_path / "a.mp4", frames=4, size=(64, 48), fps=4)
    result = run_cli("stylize", str(source), str(tmp_path / "out.mp4"), "--style", "rand-1", "--encoder", "h264_nvenc")
    assert result.returncode == 1 and "h264_nvenc encoder cannot start on this machine" in result.stderr
    assert not (tmp_path / "out.mp4").exists() and not leftovers(tmp_path)


def test_truncated_video_fails_and_leaves_nothing(stored_styles, shared_data, tmp_path):
    source = tmp_path / "cut.mov"
    data = (shared_data / "videos" / "ski.mov").read_bytes()
    source.write_bytes(data[: len(data) // 3])
    result = run_cli("stylize", str(source), str(tmp_path / "out.mp4"), "--style", "rand-0", "-q")
    assert result.returncode == 1 and "clipmorph: error:" in result.stderr, result.stderr
    assert not (tmp_path / "out.mp4").exists() and not leftovers(tmp_path)


@pytest.mark.slow
def test_stylize_the_real_ski_clip(stored_styles, shared_data, tmp_path):
    """Done-when of the core issue: same fps, 250 frames, resolution and audio kept."""
    source = tmp_path / "ski.mov"
    shutil.copy(shared_data / "videos" / "ski.mov", source)
    target = tmp_path / "ski-stylized.mp4"
    result = run_cli("stylize", str(source), str(target), "--style", "rand-0", "--max-side", "320", timeout=900)
    assert result.returncode == 0, result.stderr
    assert "250 frame(s)" in result.stdout
    assert "frame/s" in result.stderr  # the progress bar reports speed (and an ETA)
    frames, report = ffmpeg_probe(target)
    assert frames == 250
    assert re.search(r"Video: h264.* 852x480", report) and re.search(r"\b25 fps\b", report)
    assert "Audio: aac" in report
