"""Small media files made on the fly for tests: no binary test data in the repository."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def gradient_frame(width: int, height: int, t: float = 0.0) -> np.ndarray:
    """A colourful frame with structure (so a style network has something to work on)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 0.5 + 0.5 * np.sin(x / 7.0 + t)
    g = 0.5 + 0.5 * np.cos(y / 5.0 - t)
    b = (x + y) / (width + height)
    return (np.stack([r, g, b], axis=-1) * 255).astype(np.uint8)


def make_video(
    path: Path,
    frames: int = 12,
    size: tuple[int, int] = (96, 64),
    fps: int = 12,
    audio_codec: str | None = "aac",
    container: str | None = None,
) -> Path:
    """Write a short H.264 clip, optionally with a sine-wave audio track in ``audio_codec``."""
    width, height = size
    with av.open(str(path), "w", format=container) as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = None
        if audio_codec:
            audio = out.add_stream(audio_codec, rate=44100)
            audio.layout = "mono"
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(gradient_frame(width, height, index / 3), format="rgb24")
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        if audio is not None:
            samples_total = int(44100 * frames / fps)
            fmt = audio.codec_context.format.name
            step = audio.codec_context.frame_size or 1024
            for start in range(0, samples_total, step):
                n = min(step, samples_total - start)
                t = (np.arange(start, start + n) / 44100.0).astype(np.float32)
                wave = 0.3 * np.sin(2 * np.pi * 440 * t)
                data = (wave * 32767).astype(np.int16)[None, :] if fmt.startswith("s16") else wave[None, :]
                frame = av.AudioFrame.from_ndarray(data, format=fmt, layout="mono")
                frame.sample_rate = 44100
                frame.pts = start
                frame.time_base = Fraction(1, 44100)
                for packet in audio.encode(frame):
                    out.mux(packet)
            for packet in audio.encode(None):
                out.mux(packet)
    return path


def ffmpeg_probe(path) -> tuple[int, str]:
    """Decode every video frame with the ffmpeg executable; return the count and its stream report."""
    import imageio_ffmpeg

    result = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path), "-map", "0:v:0", "-f", "framemd5", "-"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    frames = [line for line in result.stdout.splitlines() if line and not line.startswith("#")]
    return len(frames), result.stderr


def exif_block(entries: list[tuple[int, int, int, bytes]]) -> bytes:
    """A raw little-endian EXIF block: (tag, TIFF type, count, value bytes) per entry, as a
    camera or an attacker may write it (types and values need not agree)."""
    import struct

    header = b"II*\x00" + struct.pack("<I", 8)
    data_offset = 8 + 2 + len(entries) * 12 + 4
    ifd, extra = struct.pack("<H", len(entries)), b""
    for tag, kind, count, value in entries:
        if len(value) <= 4:
            ifd += struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\x00")
        else:
            ifd += struct.pack("<HHII", tag, kind, count, data_offset + len(extra))
            extra += value
    return b"Exif\x00\x00" + header + ifd + struct.pack("<I", 0) + extra


def jpeg_with_malformed_exif(width: int = 48, height: int = 32, fault: str = "ascii_resolution") -> bytes:
    """A JPEG rotated by its EXIF orientation (6: turn 90 degrees) plus one mistyped tag that
    makes Pillow's exif_transpose raise (TypeError or struct.error)."""
    import io
    import struct

    from PIL import Image

    orientation = (0x0112, 3, 1, struct.pack("<H", 6))
    faults = {
        "ascii_resolution": (0x011A, 2, 4, b"abc\x00"),  # XResolution must be a rational
        "oversized_short": (0x0128, 4, 1, struct.pack("<I", 70000)),  # ResolutionUnit is a short
    }
    buffer = io.BytesIO()
    Image.fromarray(gradient_frame(width, height)).save(buffer, "JPEG", exif=exif_block([orientation, faults[fault]]))
    return buffer.getvalue()


PIXEL_FORMATS = {"mjpeg": "yuvj420p"}
AUDIO_RATES = {"ac3": 48000, "libopus": 48000, "pcm_s16le": 48000, "aac": 44100, "libmp3lame": 44100}


def make_clip(
    path: Path,
    video_codec: str,
    audio_codec: str | None,
    size: tuple[int, int] = (64, 48),
    rate: Fraction = Fraction(30000, 1001),
    frames: int = 30,
    variable_rate: bool = False,
    container: str | None = None,
) -> Path:
    """A clip of any container x video codec x audio codec PyAV's FFmpeg can write (stereo
    audio); ``variable_rate``: frame gaps of one and two frame durations, as phones record."""
    width, height = size
    with av.open(str(path), "w", format=container) as out:
        video = out.add_stream(video_codec, rate=rate)
        video.width, video.height = width, height
        video.pix_fmt = PIXEL_FORMATS.get(video_codec, "yuv420p")
        time_base = Fraction(1, 1000) if variable_rate else 1 / rate
        video.codec_context.time_base = time_base
        audio = None
        if audio_codec:
            audio = out.add_stream(audio_codec, rate=AUDIO_RATES.get(audio_codec, 48000))
            audio.layout = "stereo"
        pts = 0
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(gradient_frame(width, height, index / 3), format="rgb24")
            frame.pts, frame.time_base = pts, time_base
            pts += round((1 + (index % 2 if variable_rate else 0)) / rate / time_base)
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        if audio is not None:
            sample_rate = audio.codec_context.sample_rate
            fmt = audio.codec_context.format.name
            step = audio.codec_context.frame_size or 1024
            total = int(sample_rate * float(pts * time_base))
            for start in range(0, total - step, step):
                t = (np.arange(start, start + step) / sample_rate).astype(np.float32)
                wave = np.stack([0.3 * np.sin(2 * np.pi * 440 * t)] * 2)
                if fmt.startswith("s16"):
                    data = (wave * 32767).astype(np.int16)
                elif fmt.startswith("s32"):
                    data = (wave * 2**31 * 0.99).astype(np.int32)
                else:
                    data = wave.astype(np.float32)
                if not fmt.endswith("p"):  # interleaved: one row of L R L R ...
                    data = data.T.reshape(1, -1)
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=fmt, layout="stereo")
                frame.sample_rate, frame.pts, frame.time_base = sample_rate, start, Fraction(1, sample_rate)
                for packet in audio.encode(frame):
                    out.mux(packet)
            for packet in audio.encode(None):
                out.mux(packet)
    return path
