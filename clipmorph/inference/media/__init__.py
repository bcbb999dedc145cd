"""Image and streamed video I/O: decode to RGB arrays, encode from them. No model code here.

One facade over three modules: ``kinds`` (what a file is), ``images`` and ``video`` (PyAV,
imported when one of its names is first used).
"""

from clipmorph.inference.media.images import (
    DecodedImage,
    check_total_pixels,
    encode_image,
    image_format_for,
    jpeg_tile,
    load_image,
)
from clipmorph.inference.media.kinds import (
    AUDIO_COPYABLE,
    ENCODER_CHOICES,
    H264_ENCODERS,
    IMAGE_KIND,
    VIDEO_CONTAINERS,
    VIDEO_KIND,
    detect_kind,
    image_extensions,
    output_kind,
)

# The video half needs PyAV; it is imported on first use, so code that reads only images (the
# training data path, a GPU machine without PyAV) never imports it.
_VIDEO_NAMES = frozenset(
    {
        "DEFAULT_ENCODING",
        "DecodeLimits",
        "VideoEncoding",
        "VideoInfo",
        "VideoReader",
        "VideoWriter",
        "encoder_opens",
        "h264_options",
        "pick_h264_encoder",
    }
)


def __getattr__(name: str) -> object:
    if name in _VIDEO_NAMES:
        from clipmorph.inference.media import video

        return getattr(video, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AUDIO_COPYABLE",
    "DEFAULT_ENCODING",
    "ENCODER_CHOICES",
    "H264_ENCODERS",
    "IMAGE_KIND",
    "VIDEO_CONTAINERS",
    "VIDEO_KIND",
    "DecodeLimits",
    "DecodedImage",
    "VideoEncoding",
    "VideoInfo",
    "VideoReader",
    "VideoWriter",
    "check_total_pixels",
    "detect_kind",
    "encode_image",
    "encoder_opens",
    "h264_options",
    "image_extensions",
    "image_format_for",
    "jpeg_tile",
    "load_image",
    "output_kind",
    "pick_h264_encoder",
]  # fmt: skip
