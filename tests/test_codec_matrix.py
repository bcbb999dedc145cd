"""Real clips of every common kind come out with all their frames and their audio: a matrix
of containers x video codecs x audio codecs written by PyAV's own FFmpeg, NTSC and variable
frame rates, odd sizes, run through the same file pipeline as the CLI and the service."""

from fractions import Fraction

import av
import pytest

from clipmorph.inference.options import StyleMix, StylizeOptions
from clipmorph.inference.pipeline import stylize_video_file

from media_factory import ffmpeg_probe, make_clip

NTSC = Fraction(30000, 1001)


class Inverting:
    """A stand-in for the engine: the pipeline around it is what is tested."""

    batch_size = 4

    def stylize_frames(self, frames, options):
        return [255 - frame for frame in frames]


CLIPS = [  # (file, video codec, audio codec, size, frame rate, variable rate)
    ("ntsc.avi", "mpeg4", "ac3", (64, 48), NTSC, False),  # the reported failure: MPEG-4 Part 2 + AC-3 in AVI
    ("mp3.avi", "mpeg4", "libmp3lame", (64, 48), Fraction(25), False),
    ("mjpeg.avi", "mjpeg", "pcm_s16le", (64, 48), Fraction(24), False),
    ("h264.avi", "libx264", None, (64, 48), NTSC, False),
    ("h264.mkv", "libx264", "libopus", (64, 48), NTSC, False),
    ("odd.mkv", "mjpeg", "libopus", (65, 49), NTSC, False),  # an odd size (4:2:0 output needs even: cropped)
    ("mpeg4.mkv", "mpeg4", "aac", (64, 48), Fraction(25), False),
    ("vfr.mkv", "libx264", "aac", (64, 48), Fraction(30), True),  # variable frame rate, as phones record
    ("vp9.mkv", "libvpx-vp9", "ac3", (64, 48), Fraction(24), False),
    ("h264.mov", "libx264", "aac", (64, 48), NTSC, False),
    ("mjpeg.mov", "mjpeg", "pcm_s16le", (64, 48), Fraction(30), False),
    ("vfr.mov", "libx264", "aac", (66, 50), Fraction(30), True),
    ("h264.mp4", "libx264", "aac", (64, 48), Fraction(60000, 1001), False),
    ("mpeg4.mp4", "mpeg4", "libmp3lame", (64, 48), NTSC, False),
    ("vp8.webm", "libvpx", "libopus", (64, 48), Fraction(30), False),
    ("vp9.webm", "libvpx-vp9", None, (63, 47), Fraction(25), False),
]


def audio_seconds(path) -> float:
    """Seconds of stereo audio in a file, by decoding it (some containers record no duration)."""
    with av.open(str(path)) as container:
        [stream] = container.streams.audio
        assert stream.channels == 2
        return sum(frame.samples for frame in container.decode(stream)) / stream.sample_rate


@pytest.mark.parametrize(("name", "video_codec", "audio_codec", "size", "rate", "variable"), CLIPS)
def test_every_frame_and_the_audio_come_out(tmp_path, name, video_codec, audio_codec, size, rate, variable):
    source = make_clip(tmp_path / name, video_codec, audio_codec, size, rate, frames=30, variable_rate=variable)
    decoded, _ = ffmpeg_probe(source)  # what FFmpeg itself reads from the clip
    for suffix in (".mp4", ".webm"):
        target = tmp_path / f"out{suffix}"
        report = stylize_video_file(Inverting(), source, target, StylizeOptions(StyleMix.parse("x")), progress=False)
        frames, streams = ffmpeg_probe(target)
        assert report.frames == decoded and frames == decoded, (suffix, streams)
        if audio_codec:
            assert audio_seconds(target) > 0.8 * audio_seconds(source), suffix


def test_a_clip_whose_audio_codec_has_no_decoder_comes_out_without_that_track(tmp_path):
    clip = make_clip(tmp_path / "opus.mkv", "libx264", "libopus", frames=20, rate=Fraction(25))
    unknown = tmp_path / "unknown-audio.mkv"  # the same clip with an audio codec id FFmpeg does not know
    unknown.write_bytes(clip.read_bytes().replace(b"A_OPUS", b"A_ZZZZ"))
    with av.open(str(unknown)) as container:
        assert container.streams.audio[0].codec_context is None
    target = tmp_path / "out.mp4"
    report = stylize_video_file(Inverting(), unknown, target, StylizeOptions(StyleMix.parse("x")), progress=False)
    frames, _ = ffmpeg_probe(target)
    assert report.frames == frames == 20
    with av.open(str(target)) as out:
        assert not out.streams.audio


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_a_phone_clip_comes_out_upright_as_players_show_it(tmp_path, degrees):
    """Phones store frames as the sensor saw them plus a display rotation; FFmpeg's own player
    rotates them. The output has no rotation to carry, so its frames must already stand upright."""
    import subprocess

    import imageio_ffmpeg
    import numpy as np
    from PIL import Image

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    stored = make_clip(tmp_path / "stored.mp4", "libx264", "aac", size=(64, 48), frames=10, rate=Fraction(30))
    phone = tmp_path / "phone.mp4"
    subprocess.run([ffmpeg, "-v", "error", "-display_rotation", str(degrees), "-i", str(stored), "-c", "copy",
                    str(phone)], check=True)  # fmt: skip
    shown = tmp_path / "shown.png"  # the first frame as FFmpeg displays it (autorotate)
    subprocess.run([ffmpeg, "-v", "error", "-i", str(phone), "-frames:v", "1", str(shown)], check=True)
    target = tmp_path / "out.mp4"
    stylize_video_file(Inverting(), phone, target, StylizeOptions(StyleMix.parse("x")), progress=False)
    with av.open(str(target)) as out:
        first = next(out.decode(video=0))
        assert first.rotation == 0
        painted = first.to_ndarray(format="rgb24").astype(int)
    upright = np.asarray(Image.open(shown).convert("RGB")).astype(int)
    assert painted.shape == upright.shape == ((64, 48, 3) if degrees % 180 else (48, 64, 3))
    assert np.abs(painted - (255 - upright)).mean() < 12  # the stand-in inverts the upright frame
