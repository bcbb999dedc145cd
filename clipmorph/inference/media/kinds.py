"""What a file is (image or video, judged by content) and which formats an output path names."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, UnidentifiedImageError

from clipmorph.errors import BadInput

VIDEO_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}
# Audio codecs each container takes as-is; anything else is re-encoded (AAC, Opus for WebM).
# Decoder names -> the codec's own name (what AUDIO_COPYABLE lists): FFmpeg decodes MP3 with
# "mp3float", so a copyable MP3 track looked like something to transcode.
CODEC_ALIASES = {"mp3float": "mp3", "mp2float": "mp2", "ac3_fixed": "ac3", "aac_fixed": "aac", "eac3_core": "eac3"}
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


def single_frame(image: Image.Image) -> bool:
    """Whether a picture has one frame, reading at most up to its second: Pillow's ``n_frames``
    walks every page of a TIFF or GIF, so a 20,000-page upload would cost seconds to count."""
    try:
        image.seek(1)
    except EOFError:
        return True
    return False


def detect_kind(path: Path) -> str:
    """Image or video, judged by the file's content rather than its name."""
    if not path.is_file():
        raise BadInput(f"{path}: no such file", "missing")
    if path.stat().st_size == 0:
        raise BadInput(f"{path}: the file is empty", "empty")
    try:
        with Image.open(path) as image:
            if single_frame(image):
                return IMAGE_KIND
    except Image.DecompressionBombError as error:
        raise BadInput(f"{path}: image too large to decode safely ({error})", "too_large") from error
    except (UnidentifiedImageError, OSError, ValueError):
        pass
    import av  # here, not at the top: image-only code (training) runs without PyAV

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
