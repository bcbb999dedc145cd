"""The live stream's wire format, plain functions with no I/O.

Binary messages carry frames: a 4-byte big-endian frame number, then a compressed picture
(JPEG, PNG or WebP from the browser; JPEG back). The server answers every frame it was sent,
once, with the same number: the painted frame (``PAINTED``), the frame as it came
(``UNPAINTED``: the model is still warming up for this size) or a text message
``{"dropped": n}`` (a newer frame arrived first: live video never queues up latency). Text
messages carry JSON: the viewer's choice of style and strength, and the server's notices.
"""

from __future__ import annotations

import io
import json
import struct
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image

from clipmorph.errors import BadInput
from clipmorph.inference.media.images import load_image

HEADER = struct.Struct(">IB")  # answers: frame number, kind
FRAME_NUMBER = struct.Struct(">I")  # frames: frame number only
PAINTED, UNPAINTED = 0, 1
MAX_FRAME_BYTES = 8 * 1024 * 1024  # a 1080p JPEG is well under 1 MB; uvicorn stops at 16 MB
FORMATS = {"JPEG", "PNG", "WEBP"}  # what browsers encode a canvas to
JPEG_QUALITY = 80  # 640x360: about 2 ms to decode and encode again, 20-70 kB by the detail (measured)

# WebSocket close codes (RFC 6455 section 7.4.1): what the page shows the viewer.
NORMAL = 1000
UNSUPPORTED_DATA = 1003
POLICY = 1008
TOO_BIG = 1009
TRY_AGAIN_LATER = 1013


class LiveRefusal(Exception):
    """The session ends: ``code`` and ``reason`` go into the close frame (and a text message first)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason[:120]  # a close frame's reason fits in 123 bytes


@dataclass(frozen=True)
class FrameLimits:
    max_bytes: int  # one compressed frame
    max_pixels: int  # width x height, from the header before decoding


def split_frame(message: bytes, limits: FrameLimits) -> tuple[int, bytes]:
    """A binary message -> (frame number, compressed picture); refuses what cannot be a frame."""
    if len(message) > limits.max_bytes:
        raise LiveRefusal(TOO_BIG, f"a frame of {len(message)} bytes; the limit is {limits.max_bytes}")
    if len(message) <= FRAME_NUMBER.size:
        raise LiveRefusal(UNSUPPORTED_DATA, "a frame must be a 4-byte frame number followed by a picture")
    (number,) = FRAME_NUMBER.unpack_from(message)
    return number, message[FRAME_NUMBER.size :]


def check_header(number: int, picture: bytes, limits: FrameLimits) -> tuple[int, int]:
    """A frame's (width, height) by its header alone (microseconds); refuses what is not a
    picture or has too many pixels."""
    try:
        with warnings.catch_warnings():  # the size is checked below, against this route's own limit
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(picture)) as image:
                kind, (width, height) = image.format, image.size
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        kind, width, height = None, 0, 0
    if kind not in FORMATS:
        raise LiveRefusal(UNSUPPORTED_DATA, f"frame {number} is not a JPEG, PNG or WebP picture")
    if width * height > limits.max_pixels:
        limit = f"{limits.max_pixels / 1e6:.1f} MP"
        raise LiveRefusal(TOO_BIG, f"frame {number} is {width}x{height}; live frames may have at most {limit}")
    return width, height


def decode_frame(number: int, picture: bytes, limits: FrameLimits, size: tuple[int, int] | None = None) -> np.ndarray:
    """The RGB pixels of a frame (size checked from the header before any pixel is decoded),
    shrunk to ``size`` (width, height) when given: the network's painting size, so that neither
    the model nor the answer carries pixels the painting does not use."""
    try:
        rgb = load_image(picture, limits.max_pixels, at_least=size).rgb
    except BadInput as error:
        code = TOO_BIG if error.reason == "too_large" else UNSUPPORTED_DATA
        raise LiveRefusal(code, f"frame {number}: {error}") from None
    if size is None or (rgb.shape[1], rgb.shape[0]) == tuple(size):
        return rgb
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))  # antialiased when shrinking


def encode_answer(number: int, rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return HEADER.pack(number, PAINTED) + buffer.getvalue()


def unpainted_answer(number: int, picture: bytes) -> bytes:
    return HEADER.pack(number, UNPAINTED) + picture


def notice(**fields: object) -> str:
    return json.dumps(fields)


def parse_choice(text: str) -> dict:
    """A text message from the viewer: a JSON object (its fields are checked by the session)."""
    try:
        choice = json.loads(text)
    except ValueError:
        raise LiveRefusal(UNSUPPORTED_DATA, "text messages must be JSON objects") from None
    if not isinstance(choice, dict):
        raise LiveRefusal(UNSUPPORTED_DATA, "text messages must be JSON objects")
    return choice
