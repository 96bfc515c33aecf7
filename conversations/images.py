"""Uploaded images checked by content, stripped of metadata and re-encoded at a bounded size."""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from typing import IO

from PIL import Image, ImageOps, UnidentifiedImageError, features

MIB = 1024 * 1024
UNSUPPORTED = "Only PNG, JPEG, WebP and GIF images can be attached."
UNREADABLE = "This file is not a readable image."

# Only these decoders ever see an upload: Pillow picks one by the file's bytes, and
# restricting the list keeps the rarely exercised decoders (TIFF, PSD, ...) out of reach.
OPEN_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")

# Decoded format -> (encoder, media type, extension) of what we store and send upstream.
# GIF keeps its first frame only, stored as PNG: upstream vision APIs read one frame.
# MPO is the multi-picture JPEG many phone cameras write; its first picture is a JPEG.
OUTPUTS = {
    "PNG": ("PNG", "image/png", "png"),
    "JPEG": ("JPEG", "image/jpeg", "jpg"),
    "MPO": ("JPEG", "image/jpeg", "jpg"),
    "WEBP": ("WEBP", "image/webp", "webp"),
    "GIF": ("PNG", "image/png", "png"),
}
ENCODER_OPTIONS: dict[str, dict[str, object]] = {
    "PNG": {"optimize": True},
    "JPEG": {"quality": 88, "optimize": True},
    "WEBP": {"quality": 88},
}
PLAIN_MODES = {"RGB", "RGBA", "L", "LA"}


class ImageRejected(Exception):
    """An upload we refuse; `message` is written for the person who chose the file."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ProcessedImage:
    content: bytes
    media_type: str
    extension: str
    width: int
    height: int
    thumbnail: bytes
    thumbnail_media_type: str

    @property
    def thumbnail_extension(self) -> str:
        return "webp" if self.thumbnail_media_type == "image/webp" else "jpg"


def process_upload(
    data: bytes | IO[bytes], *, max_bytes: int, max_pixels: int, max_side: int, thumb_side: int
) -> ProcessedImage:
    """Validate an upload by its content and re-encode it; raises ImageRejected."""
    raw = _read_limited(data, max_bytes)
    image, source_format = _decode(raw, max_pixels)
    image = _clean(image)
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    encoder, media_type, extension = OUTPUTS[source_format]
    thumbnail, thumbnail_type = _thumbnail(image, thumb_side)
    return ProcessedImage(
        content=_encode(image, encoder),
        media_type=media_type,
        extension=extension,
        width=image.width,
        height=image.height,
        thumbnail=thumbnail,
        thumbnail_media_type=thumbnail_type,
    )


def to_base64(content: bytes) -> str:
    return base64.b64encode(content).decode("ascii")


def _read_limited(data: bytes | IO[bytes], max_bytes: int) -> bytes:
    """The upload's bytes, refused by size before anything is decoded."""
    if isinstance(data, bytes):
        raw = data
    else:
        _refuse_if_too_big(_size_of(data), max_bytes)
        raw = data.read(max_bytes + 1)  # never more, whatever the size claimed
    _refuse_if_too_big(len(raw), max_bytes)
    return raw


def _size_of(stream: IO[bytes]) -> int:
    size = getattr(stream, "size", None)  # Django's File knows it without reading
    if isinstance(size, int):
        return size
    position = stream.tell()
    size = stream.seek(0, io.SEEK_END) - position
    stream.seek(position)
    return size


def _refuse_if_too_big(size: int, max_bytes: int) -> None:
    if size > max_bytes:
        shown, limit = _file_size(size, round_up=True), _file_size(max_bytes)
        raise ImageRejected(f"This image is {shown}; the limit is {limit}.")


def _file_size(size: int, *, round_up: bool = False) -> str:
    # "14.2 MB", "10 MB", "900 KB"; rounded up, an image just over a limit never reads as equal.
    unit, name = (MIB, "MB") if size >= MIB else (1024, "KB")
    tenths = math.ceil(size * 10 / unit) if round_up else round(size * 10 / unit)
    return f"{tenths / 10:.1f}".removesuffix(".0") + " " + name


def _decode(raw: bytes, max_pixels: int) -> tuple[Image.Image, str]:
    """Fully decoded first frame and its format, refused before any pixel is read if too large."""
    header = _open(raw, max_pixels)
    source_format = header.format or ""
    if source_format not in OUTPUTS:
        raise ImageRejected(UNSUPPORTED)
    _refuse_if_too_many_pixels(header.width, header.height, max_pixels)
    try:
        header.verify()  # structure and checksums; leaves the image unusable, hence the reopen
        image = Image.open(io.BytesIO(raw), formats=OPEN_FORMATS)
        image.load()
    except Image.DecompressionBombError:
        raise _too_many_pixels(max_pixels) from None
    except Exception:  # decoders raise many types on hostile input; all mean the same here
        raise ImageRejected(UNREADABLE) from None
    return image, source_format


def _open(raw: bytes, max_pixels: int) -> Image.Image:
    """Read the header only: Image.open does not decode pixels."""
    try:
        return Image.open(io.BytesIO(raw), formats=OPEN_FORMATS)
    except UnidentifiedImageError:
        raise ImageRejected(UNSUPPORTED) from None
    except Image.DecompressionBombError:
        raise _too_many_pixels(max_pixels) from None
    except Exception:
        raise ImageRejected(UNREADABLE) from None


def _refuse_if_too_many_pixels(width: int, height: int, max_pixels: int) -> None:
    # Also below Pillow's own bomb threshold, so its DecompressionBombWarning never lets an
    # image through; read locally rather than changing Image.MAX_IMAGE_PIXELS for the process.
    limit = min(max_pixels, Image.MAX_IMAGE_PIXELS or max_pixels)
    if width * height > limit:
        raise _too_many_pixels(limit, f"{width}\N{MULTIPLICATION SIGN}{height}")


def _too_many_pixels(limit: int, size: str = "") -> ImageRejected:
    megapixels = f"{limit / 1_000_000:.1f}".removesuffix(".0")
    found = f"is {size} pixels" if size else "has too many pixels"
    return ImageRejected(f"This image {found}; the limit is {megapixels} megapixels.")


def _clean(image: Image.Image) -> Image.Image:
    """Upright, in a plain pixel mode, with nothing but the colour profile kept."""
    icc_profile = image.info.get("icc_profile")
    image = ImageOps.exif_transpose(image) or image
    if image.mode not in PLAIN_MODES:
        has_alpha = "A" in image.getbands() or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
    # EXIF (GPS, camera serials), XMP and comments go; the encoders then have nothing to copy.
    image.info = {"icc_profile": icc_profile} if icc_profile else {}
    return image


def _encode(image: Image.Image, encoder: str) -> bytes:
    if encoder == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    options = dict(ENCODER_OPTIONS[encoder])
    if "icc_profile" in image.info:
        options["icc_profile"] = image.info["icc_profile"]
    image.save(buffer, encoder, **options)
    return buffer.getvalue()


def _thumbnail(image: Image.Image, side: int) -> tuple[bytes, str]:
    thumb = image.copy()
    thumb.thumbnail((side, side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if features.check("webp"):
        thumb.save(buffer, "WEBP", quality=80)
        return buffer.getvalue(), "image/webp"
    # Pillow built without libwebp: JPEG has no alpha, so flatten first.
    thumb.convert("RGB").save(buffer, "JPEG", quality=80)
    return buffer.getvalue(), "image/jpeg"
