"""Tests for vit_core.io.images: every test image is generated in memory."""

from __future__ import annotations

import hashlib
import io
import struct
import time
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from vit_core.io import images
from vit_core.io.images import ImageError, load_image

RED = (255, 0, 0)
BLUE = (0, 0, 255)


def encode(im: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kwargs)
    return buf.getvalue()


def close_to(pixel, expected, tol=12) -> bool:
    return all(abs(int(a) - int(b)) <= tol for a, b in zip(pixel, expected))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but carries almost no data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


def assert_refused(data: bytes, *fragments: str) -> str:
    with pytest.raises(ImageError) as info:
        load_image(data)
    message = str(info.value)
    assert images.ACCEPTED_HELP in message, message  # always says what is accepted
    # Look for the fragments in the part that explains this refusal, not in the help.
    reason = message.replace(images.ACCEPTED_HELP, "").lower()
    for fragment in fragments:
        assert fragment.lower() in reason, message
    return message


# --- constants and hashing ---------------------------------------------------


def test_public_constants():
    assert images.MAX_PIXELS == 50_000_000
    assert 10 * 1024 * 1024 <= images.MAX_BYTES <= 100 * 1024 * 1024
    for fmt in ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF"):
        assert fmt in images.ACCEPTED_FORMATS
    for fmt in ("EPS", "PSD", "ICO", "PDF", "TGA"):
        assert fmt not in images.ACCEPTED_FORMATS
    assert "50 megapixels" in images.ACCEPTED_HELP
    assert issubclass(ImageError, ValueError)


def test_image_sha256_is_full_hash():
    data = b"abc" * 1000
    assert images.image_sha256(data) == hashlib.sha256(data).hexdigest()
    assert images.image_sha256(data) != images.image_sha256(data + b"x")


# --- things that must load ---------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF"])
def test_round_trip_formats(fmt):
    src = Image.new("RGB", (32, 24), BLUE)
    src.paste(RED, (0, 0, 16, 24))
    out = load_image(encode(src, fmt))
    assert out.mode == "RGB" and out.size == (32, 24)
    assert close_to(out.getpixel((4, 12)), RED, tol=40)
    assert close_to(out.getpixel((28, 12)), BLUE, tol=40)


def test_jpeg_detected_by_content_not_name():
    # Only bytes reach load_image, so a JPEG uploaded as "photo.png" is just JPEG bytes.
    data = encode(Image.new("RGB", (16, 16), RED), "JPEG")
    assert data[:3] == b"\xff\xd8\xff"
    assert close_to(load_image(data).getpixel((8, 8)), RED)


def test_multi_picture_phone_jpeg_gives_first_picture():
    pictures = [Image.new("RGB", (16, 16), c) for c in (RED, BLUE)]
    data = encode(pictures[0], "MPO", save_all=True, append_images=pictures[1:])
    with Image.open(io.BytesIO(data)) as check:
        assert check.format == "MPO" and check.n_frames == 2
    assert close_to(load_image(data).getpixel((8, 8)), RED)


def test_exif_orientation_6_rotates_clockwise():
    src = Image.new("RGB", (40, 20), (0, 0, 0))
    src.paste(RED, (0, 0, 8, 8))  # mark the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6
    out = load_image(encode(src, "JPEG", quality=95, exif=exif.tobytes()))
    assert out.size == (20, 40)
    # Rotating 90 degrees clockwise moves the top-left corner to the top-right.
    assert close_to(out.getpixel((16, 3)), RED, tol=40)
    assert close_to(out.getpixel((3, 3)), (0, 0, 0), tol=40)


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_cmyk_becomes_sane_rgb(fmt):
    src = Image.new("CMYK", (16, 8), (0, 255, 255, 0))  # pure red ink
    src.paste((0, 0, 0, 0), (8, 0, 16, 8))  # no ink: white paper
    out = load_image(encode(src, fmt))
    assert out.mode == "RGB"
    assert close_to(out.getpixel((3, 4)), RED, tol=30)
    assert close_to(out.getpixel((12, 4)), (255, 255, 255), tol=10)


def test_greyscale_l():
    out = load_image(encode(Image.new("L", (8, 8), 100), "PNG"))
    assert out.mode == "RGB" and out.getpixel((0, 0)) == (100, 100, 100)


def test_one_bit():
    src = Image.new("1", (8, 8), 0)
    src.putpixel((1, 1), 1)
    out = load_image(encode(src, "PNG"))
    assert out.getpixel((1, 1)) == (255, 255, 255)
    assert out.getpixel((0, 0)) == (0, 0, 0)


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_sixteen_bit_scaled_by_depth_not_saturated(fmt):
    values = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    src = Image.fromarray(values)
    assert src.mode.startswith("I;16")
    out = load_image(encode(src, fmt))
    got = [out.getpixel((x, 0))[0] for x in range(4)]
    assert got[0] == 0
    assert got[1] == 1  # 257 / 65535 * 255, not 255
    assert abs(got[2] - 128) <= 1  # mid-grey, not white
    assert got[3] == 255


def test_rgba_transparent_pixel_becomes_white():
    src = Image.new("RGBA", (8, 8), (255, 0, 0, 255))
    src.putpixel((0, 0), (0, 0, 0, 0))  # fully transparent black
    src.putpixel((1, 0), (255, 0, 0, 128))  # half-transparent red
    out = load_image(encode(src, "PNG"))
    assert out.getpixel((0, 0)) == (255, 255, 255)
    assert close_to(out.getpixel((1, 0)), (255, 127, 127), tol=2)
    assert out.getpixel((5, 5)) == RED


def test_la_transparent_pixel_becomes_white():
    src = Image.new("LA", (8, 8), (0, 255))
    src.putpixel((0, 0), (0, 0))
    out = load_image(encode(src, "PNG"))
    assert out.getpixel((0, 0)) == (255, 255, 255)
    assert out.getpixel((4, 4)) == (0, 0, 0)


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_transparency_becomes_white(fmt):
    src = Image.new("P", (8, 8), 1)
    src.putpalette([0, 0, 0, 255, 0, 0] + [0, 0, 0] * 254)  # 0 black, 1 red
    src.putpixel((0, 0), 0)
    out = load_image(encode(src, fmt, transparency=0))
    assert out.getpixel((0, 0)) == (255, 255, 255)  # black index is transparent
    assert out.getpixel((4, 4)) == RED


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_animation_gives_first_frame(fmt):
    frames = [Image.new("RGB", (16, 16), c) for c in (RED, BLUE, (0, 255, 0))]
    extra = {"lossless": True} if fmt == "WEBP" else {}
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, **extra)
    with Image.open(io.BytesIO(data)) as check:
        assert getattr(check, "n_frames", 1) == 3  # really animated
    assert close_to(load_image(data).getpixel((8, 8)), RED)


def test_image_at_pixel_limit_passes_size_check():
    # A header claiming exactly MAX_PIXELS gets past the size check and fails only
    # at decoding (no pixel data), so the message is about damage, not size.
    message = assert_refused(png_header_only(10_000, 5_000), "damaged")
    assert "megapixel limit" not in message


def test_large_image_loads():
    out = load_image(encode(Image.new("RGB", (6000, 4000), BLUE), "JPEG"))
    assert out.size == (6000, 4000)
    assert close_to(out.getpixel((5999, 3999)), BLUE)


# --- things that must be refused ---------------------------------------------


@pytest.mark.parametrize("size", [(10_000, 5_001), (10_000, 10_000), (20_000, 20_000)])
def test_pixel_bombs_refused_from_header(size):
    data = png_header_only(*size)
    start = time.perf_counter()
    with warnings.catch_warnings():
        # Pillow warns above its own (higher) limit; our refusal must not depend on it.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        message = assert_refused(data, "megapixels")
    assert time.perf_counter() - start < 0.5
    assert "damaged" not in message


def test_bomb_refusal_does_not_touch_pillow_globals():
    before = Image.MAX_IMAGE_PIXELS
    assert_refused(png_header_only(20_000, 20_000), "megapixels")
    assert Image.MAX_IMAGE_PIXELS == before


def test_empty_bytes():
    assert_refused(b"", "empty")


def test_oversized_byte_count():
    data = b"\xff\xd8\xff" + bytes(images.MAX_BYTES)
    start = time.perf_counter()
    assert_refused(data, "MB", "limit")
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_files_refused(fmt):
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), fmt)
    assert_refused(data[: len(data) // 2], "damaged", fmt)


def test_corrupt_header_refused():
    data = encode(Image.new("RGB", (16, 16), RED), "PNG")
    assert_refused(data[:20], "PNG", "damaged")


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
        (b"<svg width='10' height='10'><rect/></svg>", "SVG"),
        (b"<!DOCTYPE html>\n<html><body>hi</body></html>", "HTML"),
        (b"just some notes, not a picture\n", "text"),
        (bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8)), "known image"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "HEIC"),
        (b"8BPS\x00\x01" + bytes(40), "Photoshop"),
    ],
)
def test_non_images_refused_and_named(data, named):
    assert_refused(data, "cannot be read as an image", named)


@pytest.mark.parametrize(("fmt", "named"), [("ICO", "ICO"), ("EPS", "EPS"), ("TGA", "")])
def test_formats_pillow_reads_but_we_do_not_accept(fmt, named):
    # Each of these is a valid file Pillow itself can open; formats= must stop it.
    data = encode(Image.new("RGB", (16, 16), RED), fmt)
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == fmt
    assert_refused(data, "cannot be read as an image", named)
