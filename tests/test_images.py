"""Image checks on real files made with Pillow: accepted types, hostile files, metadata, sizes."""

from __future__ import annotations

import base64
import io
import struct
import zipfile
import zlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import ExifTags, Image, ImageFile, PngImagePlugin

from conversations.images import ImageRejected, ProcessedImage, process_upload, to_base64

LIMITS = {
    "max_bytes": 10 * 1024 * 1024,
    "max_pixels": 40_000_000,
    "max_side": 2048,
    "thumb_side": 320,
}
UNSUPPORTED = "Only PNG, JPEG, WebP and GIF images can be attached."
UNREADABLE = "This file is not a readable image."


def image_bytes(fmt: str = "PNG", size=(64, 48), color="red", mode="RGB", **save) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, fmt, **save)
    return buffer.getvalue()


def noise_bytes(fmt: str = "PNG", size=(200, 200)) -> bytes:
    """Incompressible pixels, so the file is large and its pixel data fills most of it."""
    buffer = io.BytesIO()
    Image.effect_noise(size, 100).convert("RGB").save(buffer, fmt)
    return buffer.getvalue()


def process(data, **limits) -> ProcessedImage:
    return process_upload(data, **{**LIMITS, **limits})


def reopen(content: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(content))
    image.load()
    return image


def pixel(image: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    value = image.getpixel(xy)
    assert isinstance(value, tuple)
    return value


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit black PNG: tiny on disk, width*height pixels once decoded."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    block = row * 1000
    idat = b"".join(compressor.compress(block) for _ in range(height // 1000))
    idat += compressor.compress(row * (height % 1000)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("fmt", "media_type", "extension", "decoded_as"),
    [
        ("PNG", "image/png", "png", "PNG"),
        ("JPEG", "image/jpeg", "jpg", "JPEG"),
        ("WEBP", "image/webp", "webp", "WEBP"),
        ("GIF", "image/png", "png", "PNG"),
    ],
)
def test_each_accepted_type_round_trips(fmt, media_type, extension, decoded_as):
    result = process(image_bytes(fmt, size=(64, 48)))
    assert (result.media_type, result.extension) == (media_type, extension)
    assert (result.width, result.height) == (64, 48)
    stored = reopen(result.content)
    assert stored.format == decoded_as
    assert stored.size == (64, 48)
    assert pixel(stored.convert("RGB"), (10, 10))[0] > 200  # still red


def test_an_animated_gif_keeps_its_first_frame_as_png():
    frames = [Image.new("RGB", (40, 30), color) for color in ("red", "blue", "green")]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert getattr(reopen(buffer.getvalue()), "n_frames", 1) == 3
    result = process(buffer.getvalue())
    stored = reopen(result.content)
    assert (result.media_type, stored.format) == ("image/png", "PNG")
    assert getattr(stored, "n_frames", 1) == 1
    assert pixel(stored.convert("RGB"), (5, 5)) == (255, 0, 0)


def test_a_transparent_gif_stays_transparent():
    image = Image.new("P", (20, 20), 0)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    buffer = io.BytesIO()
    image.save(buffer, "GIF", transparency=0)
    stored = reopen(process(buffer.getvalue()).content)
    assert stored.mode == "RGBA"
    assert pixel(stored, (3, 3))[3] == 0


def test_a_multi_picture_jpeg_from_a_camera_is_stored_as_jpeg():
    picture = Image.new("RGB", (32, 32), "red")
    buffer = io.BytesIO()
    picture.save(buffer, "MPO", save_all=True, append_images=[picture])
    result = process(buffer.getvalue())
    assert (result.media_type, reopen(result.content).format) == ("image/jpeg", "JPEG")


def test_the_type_comes_from_the_content_not_the_file_name():
    upload = SimpleUploadedFile("photo.jpg", image_bytes("PNG"), content_type="image/jpeg")
    assert process(upload).media_type == "image/png"


def test_html_named_like_a_png_is_refused():
    upload = SimpleUploadedFile("x.png", b"<!doctype html><script>alert(1)</script>")
    with pytest.raises(ImageRejected) as rejected:
        process(upload)
    assert rejected.value.message == UNSUPPORTED


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x.png", image_bytes("PNG"))
    return buffer.getvalue()


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"just some text\n", id="text"),
        pytest.param(b"<html><body onload=alert(1)>hi</body></html>", id="html"),
        pytest.param(
            b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', id="svg"
        ),
        pytest.param(zip_bytes(), id="zip"),
        pytest.param(image_bytes("BMP"), id="bmp"),
        pytest.param(image_bytes("TIFF"), id="tiff"),
        pytest.param(image_bytes("PDF"), id="pdf"),
        pytest.param(image_bytes("ICO", size=(32, 32)), id="ico"),
        pytest.param(b"", id="empty"),
    ],
)
def test_anything_but_the_four_image_types_is_refused(data):
    with pytest.raises(ImageRejected) as rejected:
        process(data)
    assert rejected.value.message == UNSUPPORTED


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
def test_a_truncated_image_is_refused(fmt):
    whole = noise_bytes(fmt)
    with pytest.raises(ImageRejected) as rejected:
        process(whole[: len(whole) // 2])
    assert rejected.value.message == UNREADABLE


def test_a_png_with_a_damaged_chunk_is_refused():
    whole = bytearray(noise_bytes("PNG"))
    whole[len(whole) // 2] ^= 0xFF  # inside IDAT: the checksum no longer matches
    with pytest.raises(ImageRejected, match="not a readable image"):
        process(bytes(whole))


def test_a_file_over_the_byte_limit_is_refused_before_decoding(monkeypatch):
    monkeypatch.setattr(Image, "open", pytest.fail)
    data = b"\x89PNG" + b"\x00" * 3000
    with pytest.raises(ImageRejected) as rejected:
        process(data, max_bytes=2048)
    assert rejected.value.message == "This image is 3 KB; the limit is 2 KB."


class UnreadableUpload(io.BytesIO):
    size = 15 * 1024 * 1024  # what Django's UploadedFile reports

    def read(self, *args):
        pytest.fail("the file was read")


def test_a_large_upload_is_measured_without_reading_it():
    with pytest.raises(ImageRejected) as rejected:
        process(UnreadableUpload())
    assert rejected.value.message == "This image is 15 MB; the limit is 10 MB."


def test_a_stream_without_a_size_is_measured_too():
    with pytest.raises(ImageRejected, match="This image is 4 KB; the limit is 2 KB"):
        process(io.BytesIO(b"\x00" * 4096), max_bytes=2048)


@pytest.fixture
def pixels_never_decoded(monkeypatch):
    def refuse(*args, **kwargs):
        pytest.fail("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    monkeypatch.setattr(PngImagePlugin.PngImageFile, "verify", refuse)


def test_a_decompression_bomb_is_refused_from_its_header(pixels_never_decoded):
    bomb = png_bomb(10_000, 5_000)  # 50 megapixels, over our 40 but under Pillow's own limit
    assert len(bomb) < 20_000
    with pytest.raises(ImageRejected) as rejected:
        process(bomb)
    assert rejected.value.message == (
        "This image is 10000\N{MULTIPLICATION SIGN}5000 pixels; the limit is 40 megapixels."
    )


def test_pillows_own_bomb_error_becomes_a_rejection(pixels_never_decoded):
    bomb = png_bomb(20_000, 20_000)  # 400 megapixels: Pillow refuses it while opening
    assert len(bomb) < 100_000
    with pytest.raises(ImageRejected, match="too many pixels; the limit is 40 megapixels"):
        process(bomb)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_a_higher_limit_still_stops_where_pillow_would_warn(pixels_never_decoded):
    with pytest.raises(ImageRejected, match="10000\N{MULTIPLICATION SIGN}10000 pixels"):
        process(png_bomb(10_000, 10_000), max_pixels=500_000_000)
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # read, never changed


def photo_with_metadata(orientation: int = 1) -> bytes:
    image = Image.new("RGB", (60, 40), "blue")
    image.paste((255, 0, 0), (0, 0, 30, 40))  # left half red
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "SecretCam"
    exif[ExifTags.IFD.GPSInfo] = {1: "N", 2: (52.0, 22.0, 1.5), 3: "E", 4: (4.0, 53.0, 2.0)}
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif, comment=b"home address")
    return buffer.getvalue()


@pytest.mark.parametrize("thumbnail", [False, True])
def test_exif_gps_and_comments_are_stripped(thumbnail):
    original = photo_with_metadata()
    assert reopen(original).getexif().get_ifd(ExifTags.IFD.GPSInfo)
    result = process(original)
    content = result.thumbnail if thumbnail else result.content
    stored = reopen(content)
    assert not stored.getexif()
    assert not {"exif", "xmp", "comment"} & stored.info.keys()
    assert b"SecretCam" not in content
    assert b"home address" not in content


def test_exif_orientation_is_applied():
    result = process(photo_with_metadata(orientation=6))  # stored sideways, shown upright
    stored = reopen(result.content)
    assert (result.width, result.height) == stored.size == (40, 60)
    top, bottom = pixel(stored, (20, 5)), pixel(stored, (20, 55))
    assert top[0] > 200 > top[2]  # the red left half went to the top
    assert bottom[2] > 200 > bottom[0]


def test_the_colour_profile_is_kept():
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    result = process(image_bytes("JPEG", icc_profile=profile))
    assert reopen(result.content).info["icc_profile"] == profile


@pytest.mark.parametrize(
    ("size", "expected"),
    [((4000, 1000), (2048, 512)), ((1000, 3000), (683, 2048)), ((300, 200), (300, 200))],
)
def test_downscaling_keeps_the_aspect_ratio_within_max_side(size, expected):
    result = process(image_bytes("JPEG", size=size))
    assert (result.width, result.height) == reopen(result.content).size == expected


def test_the_longest_side_follows_the_setting():
    result = process(image_bytes("PNG", size=(400, 100)), max_side=200)
    assert reopen(result.content).size == (200, 50)


@pytest.mark.parametrize(("size", "expected"), [((640, 480), (320, 240)), ((100, 50), (100, 50))])
def test_thumbnail_fits_thumb_side(size, expected):
    result = process(image_bytes("PNG", size=size))
    thumbnail = reopen(result.thumbnail)
    assert (thumbnail.format, result.thumbnail_media_type) == ("WEBP", "image/webp")
    assert thumbnail.size == expected
    assert result.thumbnail_extension == "webp"


def test_a_cmyk_jpeg_is_stored_as_rgb():
    result = process(image_bytes("JPEG", mode="CMYK", color=(0, 255, 255, 0)))
    assert reopen(result.content).mode == "RGB"


def test_transparency_survives_in_png_and_webp():
    for fmt in ("PNG", "WEBP"):
        data = image_bytes(fmt, mode="RGBA", color=(255, 0, 0, 0))
        assert pixel(reopen(process(data).content), (1, 1))[3] == 0


def test_every_image_is_re_encoded():
    # Bytes appended after the image (a polyglot's payload) never survive.
    data = image_bytes("PNG") + b"<script>alert(1)</script>"
    assert b"<script>" not in process(data).content


def test_to_base64_round_trips():
    content = image_bytes("PNG")
    assert base64.b64decode(to_base64(content)) == content
    assert to_base64(b"\xff\xfe") == "//4="
