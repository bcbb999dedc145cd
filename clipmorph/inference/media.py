"""Image and streamed video I/O: decode to RGB arrays, encode from them. No model code here.

Video goes through PyAV (FFmpeg's libraries in-process): frames stream one by one, no temp
folder of JPEGs, and audio packets are copied into the output without re-encoding when the
output container can hold them.
"""

from __future__ import annotations

import functools
import io
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from clipmorph.errors import BadInput

VIDEO_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}
# Audio codecs each container takes as-is; anything else is re-encoded (AAC, Opus for WebM).
AUDIO_COPYABLE = {
    "mp4": {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"},
    "mov": {"aac", "mp3", "alac", "ac3", "pcm_s16le", "pcm_s24le", "pcm_f32le"},
    "matroska": {"aac", "mp3", "ac3", "eac3", "opus", "vorbis", "flac", "pcm_s16le", "pcm_s24le", "pcm_f32le"},
    "webm": {"opus", "vorbis"},
}
IMAGE_KIND, VIDEO_KIND = "image", "video"
# H.264 encoders: x264 on the CPU, or NVENC, the GPU's video engine (compiled into PyAV's FFmpeg;
# it opens only where an NVIDIA GPU with an encoder engine and its driver are present).
H264_ENCODERS = ("libx264", "h264_nvenc")
ENCODER_CHOICES = ("auto", *H264_ENCODERS)


def image_extensions() -> set[str]:
    """Extensions Pillow can write (lower case, with dot)."""
    Image.init()
    return {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.SAVE}


def output_kind(path: Path) -> str:
    """What an output path asks for, from its extension (the output format is the user's choice)."""
    suffix = path.suffix.lower()
    if suffix in VIDEO_CONTAINERS:
        return VIDEO_KIND
    if suffix in image_extensions():
        return IMAGE_KIND
    raise BadInput(
        f"cannot tell the output format from {path.name!r}: use an image extension (.jpg, .png, .webp, ...) "
        f"or a video one ({', '.join(sorted(VIDEO_CONTAINERS))})"
    )


def detect_kind(path: Path) -> str:
    """Image or video, judged by the file's content rather than its name."""
    if not path.is_file():
        raise BadInput(f"{path}: no such file", "missing")
    if path.stat().st_size == 0:
        raise BadInput(f"{path}: the file is empty", "empty")
    try:
        with Image.open(path) as image:
            if getattr(image, "n_frames", 1) == 1:
                return IMAGE_KIND
    except Image.DecompressionBombError as error:
        raise BadInput(f"{path}: image too large to decode safely ({error})", "too_large") from error
    except (UnidentifiedImageError, OSError, ValueError):
        pass
    try:
        with av.open(str(path)) as container:
            # FFmpeg's still-image demuxers accept any bytes named .png etc.: not a video.
            still = container.format.name == "image2" or container.format.name.endswith("_pipe")
            if container.streams.video and not still:
                next(container.decode(video=0))  # a video must yield a frame, not just a header
                return VIDEO_KIND
    except (av.FFmpegError, StopIteration):
        pass
    raise BadInput(
        f"{path}: not an image or video that Pillow or FFmpeg can read (corrupt or unsupported file)",
        "unsupported_media",
    )


# --- images ---


@dataclass
class DecodedImage:
    """RGB pixels plus what is needed to write the result back faithfully."""

    rgb: np.ndarray  # (H, W, 3) uint8
    alpha: np.ndarray | None  # (H, W) uint8, when the input had transparency
    icc_profile: bytes | None


def load_image(source: Path | bytes, max_pixels: int | None = None) -> DecodedImage:
    """Decode any image Pillow reads, applying EXIF orientation and keeping alpha aside.

    ``max_pixels`` is checked against the header's dimensions before any pixel is decoded.
    """
    if (source.stat().st_size if isinstance(source, Path) else len(source)) == 0:
        raise BadInput("the image is empty (0 bytes)", "empty")
    try:
        with Image.open(source if isinstance(source, Path) else io.BytesIO(source)) as image:
            width, height = image.size
            if max_pixels is not None and width * height > max_pixels:
                size = f"{width}x{height} ({width * height / 1e6:.1f} MP)"
                raise BadInput(f"image is {size}; the limit is {max_pixels / 1e6:.1f} MP", "too_large")
            image = ImageOps.exif_transpose(image)
            image.load()
    except Image.DecompressionBombError as error:
        raise BadInput(f"image too large to decode safely: {error}", "too_large") from error
    except UnidentifiedImageError:
        raise BadInput("not an image Pillow can read (unknown format or corrupt header)", "not_image") from None
    except (OSError, ValueError, SyntaxError) as error:  # truncated or corrupt pixel data
        raise BadInput(f"corrupt or truncated image: {_without_paths(str(error))}", "corrupt") from None
    icc = image.info.get("icc_profile")
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        array = np.asarray(rgba)
        return DecodedImage(np.ascontiguousarray(array[..., :3]), np.ascontiguousarray(array[..., 3]), icc)
    if image.mode == "I;16" or image.mode == "I":
        image = image.point(lambda v: v / 256).convert("L")  # 16-bit grey: keep the top 8 bits
    return DecodedImage(np.asarray(image.convert("RGB")).copy(), None, icc)


def _without_paths(message: str) -> str:
    """Decoder messages may name server-side temp files: keep them out of user-facing errors."""
    return re.sub(r"(/[^\s'\"]+)+", "<file>", message)


def encode_image(rgb: np.ndarray, alpha: np.ndarray | None, fmt: str, icc_profile: bytes | None = None) -> bytes:
    """Encode to a Pillow format name ("JPEG", "PNG", ...); alpha is kept where the format can."""
    image = Image.fromarray(rgb, "RGB")
    if alpha is not None:
        if alpha.shape != rgb.shape[:2]:
            alpha = np.asarray(Image.fromarray(alpha, "L").resize((rgb.shape[1], rgb.shape[0]), Image.BILINEAR))
        rgba = image.copy()
        rgba.putalpha(Image.fromarray(alpha, "L"))
        if fmt in ("PNG", "WEBP", "TIFF", "GIF", "TGA", "ICO"):
            image = rgba
        else:  # no alpha channel in the format: flatten onto white, as a viewer would show it
            background = Image.new("RGB", image.size, (255, 255, 255))
            background.paste(rgba, mask=rgba.getchannel("A"))
            image = background
    options: dict = {"icc_profile": icc_profile} if icc_profile else {}
    if fmt == "JPEG":
        options.update(quality=92, subsampling=0)
    elif fmt == "WEBP":
        options.update(quality=92)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def image_format_for(path: Path) -> str:
    Image.init()
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        raise BadInput(f"Pillow cannot write {path.suffix!r} images")
    return fmt


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place only on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{path.suffix}", dir=path.parent)
    os.close(fd)
    temporary = Path(name)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


# --- video ---


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: Fraction
    time_base: Fraction
    frames: int  # 0 when the container does not say
    has_audio: bool

    @property
    def seconds(self) -> float:
        return self.frames / float(self.fps) if self.fps else 0.0


class VideoReader:
    """Decode a video's frames as RGB arrays with their timestamps, one at a time."""

    def __init__(self, path: Path) -> None:
        try:
            self.container = av.open(str(path))
        except av.FFmpegError as error:
            raise BadInput(f"{path}: cannot open video: {error}", "corrupt") from error
        if not self.container.streams.video:
            self.container.close()
            raise BadInput(f"{path}: no video stream", "no_video")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        rate = self.stream.average_rate or self.stream.guessed_rate or Fraction(25)
        frames = self.stream.frames
        if not frames and self.stream.duration and self.stream.time_base:
            frames = round(float(self.stream.duration * self.stream.time_base * rate))
        self.info = VideoInfo(
            width=self.stream.codec_context.width,
            height=self.stream.codec_context.height,
            fps=Fraction(rate),
            time_base=Fraction(self.stream.time_base or Fraction(1, 90000)),
            frames=int(frames or 0),
            has_audio=bool(self.container.streams.audio),
        )

    def __iter__(self) -> Iterator[tuple[np.ndarray, int | None]]:
        try:
            for frame in self.container.decode(self.stream):
                yield frame.to_ndarray(format="rgb24"), frame.pts
        except av.FFmpegError as error:
            raise BadInput(f"video decoding failed: {error}", "corrupt") from error

    def close(self) -> None:
        self.container.close()


@dataclass(frozen=True)
class VideoEncoding:
    """How stylized video is encoded: quality (x264's CRF scale, also NVENC's constant-quality
    level) and the H.264 encoder ("auto": NVENC where it opens, else x264; WebM is always VP9)."""

    crf: int = 18
    encoder: str = "auto"


DEFAULT_ENCODING = VideoEncoding()


def h264_options(encoder: str, crf: int) -> dict[str, str]:
    if encoder == "h264_nvenc":
        return {"preset": "p4", "rc": "vbr", "cq": str(crf), "b": "0"}  # constant quality, no bitrate cap
    # veryfast: measured 10.9 vs 9.0 frames/s end to end (medium) on 2 cores, and smaller files at CRF 18
    return {"crf": str(crf), "preset": "veryfast"}


@functools.cache
def encoder_opens(encoder: str) -> bool:
    """Whether ``encoder`` can start here, tried once per process on a small frame size."""
    try:
        context = av.CodecContext.create(encoder, "w")
        context.width, context.height, context.pix_fmt = 256, 256, "yuv420p"
        context.time_base = Fraction(1, 25)
        context.options = h264_options(encoder, VideoEncoding.crf)
        context.open()
    except (av.FFmpegError, OSError, ValueError):
        return False
    return True


def pick_h264_encoder(choice: str) -> str:
    """The encoder for ``choice``; naming one that cannot start here is an error, not a fallback."""
    if choice == "auto":
        return "h264_nvenc" if encoder_opens("h264_nvenc") else "libx264"
    if choice not in H264_ENCODERS:
        raise BadInput(f"unknown video encoder {choice!r}: choose from {', '.join(ENCODER_CHOICES)}")
    if not encoder_opens(choice):
        raise BadInput(
            f"the {choice} encoder cannot start on this machine (NVENC needs an NVIDIA GPU with a video "
            "encoder engine and its driver): use auto or libx264"
        )
    return choice


class VideoWriter:
    """Encode RGB frames to H.264 (VP9 for .webm) and carry over the source's audio track.

    Audio packets are read from the source by a second demuxer and interleaved with the
    video as it is written, so the output streams well and needs no second pass.
    """

    def __init__(
        self, path: Path, suffix: str, info: VideoInfo, audio_source: Path | None, encoding: VideoEncoding
    ) -> None:
        self.format = VIDEO_CONTAINERS[suffix.lower()]
        self.encoder = "libvpx-vp9" if self.format == "webm" else pick_h264_encoder(encoding.encoder)
        options = {"movflags": "+faststart"} if self.format in ("mp4", "mov") else {}
        self.container = av.open(str(path), "w", format=self.format, container_options=options)
        self.width, self.height = info.width - info.width % 2, info.height - info.height % 2  # 4:2:0 needs even sizes
        self.time_base = info.time_base
        self.fps = info.fps
        self.video = self.container.add_stream(self.encoder, rate=info.fps)
        if self.format == "webm":
            self.video.options = {"crf": str(encoding.crf + 13), "b": "0", "row-mt": "1"}
        else:
            self.video.options = h264_options(self.encoder, encoding.crf)
        self.video.width, self.video.height, self.video.pix_fmt = self.width, self.height, "yuv420p"
        self.video.codec_context.time_base = info.time_base
        self.frames_written = 0
        self._audio = _AudioCopier(audio_source, self.container, self.format) if audio_source else None

    def write(self, rgb: np.ndarray, pts: int | None) -> None:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[: self.height, : self.width]), format="rgb24")
        frame.time_base = self.time_base
        frame.pts = pts if pts is not None else round(self.frames_written / (self.fps * self.time_base))
        self._mux(self.video.encode(frame))
        self.frames_written += 1
        if self._audio:
            self._audio.copy_until(float(frame.pts * self.time_base))

    def _mux(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            self.container.mux(packet)

    def close(self) -> None:
        """Flush the encoders and finish the file."""
        try:
            self._mux(self.video.encode(None))
            if self._audio:
                self._audio.copy_until(float("inf"))
        finally:
            self.abort()

    def abort(self) -> None:
        """Release everything without flushing (the partial file is discarded by the caller)."""
        if self._audio:
            self._audio.close()
        self.container.close()


class _AudioCopier:
    """Moves the first audio track of a source file into an output container, in time order."""

    def __init__(self, source: Path, output: av.container.OutputContainer, fmt: str) -> None:
        self.input = av.open(str(source))
        self.stream = self.input.streams.audio[0] if self.input.streams.audio else None
        self.packets = self.input.demux(self.stream) if self.stream else iter(())
        self.pending: av.Packet | None = None
        self.output = output
        self.finished = self.stream is None
        if self.stream is None:
            return
        self.transcode = self.stream.codec_context.name not in AUDIO_COPYABLE[fmt]
        if not self.transcode:
            self.out_stream = output.add_stream_from_template(self.stream)
        else:  # the container cannot hold the source codec
            codec, rate = (
                ("libopus", 48000) if fmt == "webm" else ("aac", self.stream.codec_context.sample_rate or 48000)
            )
            self.out_stream = output.add_stream(codec, rate=rate)
            self.out_stream.layout = self.stream.codec_context.layout
            self.resampler = av.AudioResampler(
                format=self.out_stream.codec_context.format or "fltp",
                layout=self.stream.codec_context.layout,
                rate=self.out_stream.codec_context.sample_rate,
                frame_size=self.out_stream.codec_context.frame_size or None,
            )

    def copy_until(self, seconds: float) -> None:
        while not self.finished:
            packet = self.pending or next(self.packets, None)
            self.pending = None
            if packet is None:
                if self.transcode:
                    self._encode(None)
                self.finished = True
                return
            if packet.dts is None:  # demuxer flush packet
                continue
            if packet.pts is not None and float(packet.pts * packet.time_base) > seconds:
                self.pending = packet
                return
            if not self.transcode:
                packet.stream = self.out_stream
                self.output.mux(packet)
            else:
                for frame in packet.decode():
                    self._encode(frame)

    def _encode(self, frame: av.AudioFrame | None) -> None:
        for resampled in self.resampler.resample(frame):
            for packet in self.out_stream.encode(resampled):
                self.output.mux(packet)
        if frame is None:
            for packet in self.out_stream.encode(None):
                self.output.mux(packet)

    def close(self) -> None:
        self.input.close()
