"""Images: decode to RGB arrays (headers checked before decoding), encode from them."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from clipmorph.errors import BadInput, without_paths


@dataclass
class DecodedImage:
    """RGB pixels plus what is needed to write the result back faithfully."""

    rgb: np.ndarray  # (H, W, 3) uint8
    alpha: np.ndarray | None  # (H, W) uint8, when the input had transparency
    icc_profile: bytes | None


def header_pixels(source: Path | bytes) -> int:
    """Width x height from the image header alone (no pixel decoded); 0 when it is unreadable
    (``load_image`` then says why)."""
    try:
        with Image.open(source if isinstance(source, Path) else io.BytesIO(source)) as image:
            return image.size[0] * image.size[1]
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return 0


def check_total_pixels(sources: list[Path | bytes], max_total_pixels: int) -> None:
    """Refuse a request whose images, by their headers, add up to more than the budget, before
    any of them is decoded: many small uploads can claim gigapixels."""
    total = sum(header_pixels(source) for source in sources)
    if total > max_total_pixels:
        raise BadInput(
            f"the images add up to {total / 1e6:.0f} MP; the limit for one request is {max_total_pixels / 1e6:.0f} MP",
            "too_large",
        )


def load_image(
    source: Path | bytes, max_pixels: int | None = None, at_least: tuple[int, int] | None = None
) -> DecodedImage:
    """Decode any image Pillow reads, applying EXIF orientation and keeping alpha aside.

    ``max_pixels`` is checked against the header's dimensions before any pixel is decoded.
    ``at_least`` (width, height): a JPEG may be decoded smaller, down to that size (its
    decoder scales by 1/2, 1/4 or 1/8 for a fraction of the work), for a caller that shrinks it.
    """
    if (source.stat().st_size if isinstance(source, Path) else len(source)) == 0:
        raise BadInput("the image is empty (0 bytes)", "empty")
    try:
        with Image.open(source if isinstance(source, Path) else io.BytesIO(source)) as image:
            width, height = image.size
            if max_pixels is not None and width * height > max_pixels:
                size = f"{width}x{height} ({width * height / 1e6:.1f} MP)"
                raise BadInput(f"image is {size}; the limit is {max_pixels / 1e6:.1f} MP", "too_large")
            if at_least is not None:  # in stored pixels: a quarter turn swaps the sides
                image.draft("RGB", at_least[::-1] if orientation(image) in QUARTER_TURNS else at_least)
            image = upright(image)
            image.load()
    except Image.DecompressionBombError as error:
        raise BadInput(f"image too large to decode safely: {error}", "too_large") from error
    except UnidentifiedImageError:
        raise BadInput("not an image Pillow can read (unknown format or corrupt header)", "not_image") from None
    except (OSError, ValueError, SyntaxError) as error:  # truncated or corrupt pixel data
        raise BadInput(f"corrupt or truncated image: {without_paths(str(error))}", "corrupt") from None
    icc = image.info.get("icc_profile")
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        array = np.asarray(rgba)
        return DecodedImage(np.ascontiguousarray(array[..., :3]), np.ascontiguousarray(array[..., 3]), icc)
    if image.mode == "I;16" or image.mode == "I":
        image = image.point(lambda v: v / 256).convert("L")  # 16-bit grey: keep the top 8 bits
    return DecodedImage(np.asarray(image.convert("RGB")).copy(), None, icc)


# EXIF orientation -> the transpose that shows the picture upright (as ImageOps.exif_transpose).
UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
ORIENTATION_TAG = 0x0112
QUARTER_TURNS = (5, 6, 7, 8)  # orientations whose upright picture swaps width and height


def upright(image: Image.Image) -> Image.Image:
    """The picture as its EXIF orientation says it was taken. Only the orientation is read, so a
    malformed tag elsewhere (which makes Pillow's exif_transpose raise when it rewrites the
    metadata) does not refuse a good picture; unreadable metadata leaves it as stored."""
    method = UPRIGHT.get(orientation(image))
    return image.transpose(method) if method is not None else image


def orientation(image: Image.Image) -> int | None:
    """The EXIF orientation tag, or None where there is none or it cannot be read."""
    try:
        value = image.getexif().get(ORIENTATION_TAG)
    except Exception:  # any malformed EXIF block: Pillow raises many different types here
        return None
    return value if isinstance(value, int) else None


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


def jpeg_tile(image: Image.Image, side: int = 160, quality: int = 85) -> bytes:
    """A square gallery tile: the centre square of ``image`` at ``side`` px, as JPEG."""
    short = min(image.size)
    left, top = (image.width - short) // 2, (image.height - short) // 2
    tile = image.convert("RGB").crop((left, top, left + short, top + short)).resize((side, side), Image.LANCZOS)
    buffer = io.BytesIO()
    tile.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
