"""Turn uploaded bytes into a plain RGB picture, or say clearly why not.

Everything a person uploads passes through :func:`load_image`, so it is the one
place that guards memory (size limits checked from the header, before any
pixel is decoded) and the one place that irons out format quirks (EXIF
rotation, CMYK, 16-bit, transparency, animation) so the rest of the app only
ever sees an 8-bit RGB image.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
from PIL import Image, ImageOps

# Pillow format IDs we let Image.open even try. Anything else (PSD, ICO, EPS,
# PDF...) is refused unopened; EPS in particular would start Ghostscript.
# The multi-picture JPEGs many phones write come in through "JPEG" (Pillow then
# reports them as "MPO"); "MPO" itself is not an opener name and must not be listed.
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")
MAX_PIXELS = 50_000_000
# A 50 MP phone JPEG at high quality is roughly 15-25 MB; leave some headroom.
MAX_BYTES = 30 * 1024 * 1024

ACCEPTED_HELP = (
    "Accepted: JPEG, PNG, WebP, BMP, TIFF or GIF, "
    f"up to {MAX_PIXELS // 1_000_000} megapixels and {MAX_BYTES // (1024 * 1024)} MB."
)

# Leading bytes of files, so a refusal can say what the upload seems to be.
# Consulted only after Pillow has failed, so it never refuses anything itself.
_ACCEPTED_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF8", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
_OTHER_MAGIC = (
    (b"8BPS", "a Photoshop (PSD) file"),
    (b"%PDF", "a PDF document"),
    (b"%!PS", "a PostScript/EPS file"),
    (b"\xc5\xd0\xd3\xc6", "a PostScript/EPS file"),
    (b"\x00\x00\x01\x00", "an icon (ICO) file"),
    (b"PK\x03\x04", "a ZIP archive or Office document"),
)
_HEIF_BRANDS = (b"heic", b"heix", b"heif", b"mif1", b"msf1", b"avif", b"avis")


class ImageError(ValueError):
    """An upload that cannot be used; the message is meant for the person."""


def image_sha256(data: bytes) -> str:
    """Return the hex SHA-256 of the whole upload, used as a cache key."""
    return hashlib.sha256(data).hexdigest()


def _describe(data: bytes) -> str:
    """Say, for a person, what bytes Pillow could not open seem to be."""
    head = data[:64]
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        # The iPhone default, so worth a specific hint.
        return "it is a HEIC/HEIF/AVIF photo, which is not accepted; share or export it as JPEG"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "it looks like a WebP, but it is damaged or incomplete"
    for magic, name in _ACCEPTED_MAGIC:
        if head.startswith(magic):
            return f"it looks like a {name}, but it is damaged or incomplete"
    for magic, name in _OTHER_MAGIC:
        if head.startswith(magic):
            return f"it is {name}, which is not accepted"
    try:
        text = data[:4096].decode("utf-8").lstrip("\ufeff \t\r\n").lower()
    except UnicodeDecodeError:
        return "its contents do not match any known image format"
    if "<svg" in text:
        return "it looks like an SVG drawing, which is not accepted"
    if text.startswith(("<!doctype html", "<html")) or "<body" in text:
        return "it looks like an HTML web page, not an image"
    return "it looks like text, not an image"


def _to_8bit(im: Image.Image) -> Image.Image:
    """Scale a 16/32-bit or float greyscale image to 8-bit "L".

    Pillow's own convert("L") clips everything above 255 to white, which turns a
    16-bit photo into a near-white blob, so divide by the range of the bit depth
    instead.
    """
    arr = np.nan_to_num(np.asarray(im).astype(np.float64))
    top = float(arr.max()) if arr.size else 0.0
    if im.mode.startswith("I;16"):
        full = 65535.0
    elif im.mode == "F" and top <= 1.0:
        full = 1.0  # float images conventionally hold 0..1
    else:
        # Mode "I" carries no bit depth, so take the smallest that holds the data.
        full = next((2.0**bits - 1 for bits in (8, 16, 32) if top <= 2.0**bits - 1), top)
    scaled = np.clip(np.rint(arr * (255.0 / full)), 0, 255).astype(np.uint8)
    return Image.fromarray(scaled)  # 2-D uint8 becomes mode "L"


def _to_rgb(im: Image.Image) -> Image.Image:
    """Convert any decoded mode to RGB, putting transparent areas on white."""
    if im.mode.startswith("I") or im.mode == "F":
        im = _to_8bit(im)
    has_alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
    if has_alpha:
        # White rather than black: most transparent uploads are logos or
        # stickers drawn for a light background.
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")


def load_image(data: bytes) -> Image.Image:
    """Decode uploaded bytes into an upright 8-bit RGB image.

    The format is detected from the content, never from a file name. Size
    limits are enforced from the header before any pixel data is decoded.

    Args:
        data: The raw bytes of the uploaded file.

    Returns:
        A fully loaded RGB image: EXIF rotation applied, transparency on white,
        only the first frame of an animation.

    Raises:
        ImageError: If the bytes are empty, too large, not an accepted format,
            damaged, or claim more than MAX_PIXELS pixels. The message says what
            was wrong and what is accepted.
    """
    if not data:
        raise ImageError(f"The file is empty. {ACCEPTED_HELP}")
    if len(data) > MAX_BYTES:
        raise ImageError(
            f"The file is {len(data) / (1024 * 1024):.1f} MB, over the "
            f"{MAX_BYTES // (1024 * 1024)} MB limit. {ACCEPTED_HELP}"
        )
    try:
        # Lazy: reads only the header. formats= keeps other plugins (and any
        # external programs they would run) out of reach.
        im = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except Image.DecompressionBombError as exc:
        # Pillow's own hard limit sits far above ours, so this is our refusal too.
        raise ImageError(
            f"The image is far larger than {MAX_PIXELS // 1_000_000} megapixels. "
            f"{ACCEPTED_HELP}"
        ) from exc
    except Exception as exc:  # Pillow raises many types for unreadable headers.
        raise ImageError(
            f"This file cannot be read as an image: {_describe(data)}. {ACCEPTED_HELP}"
        ) from exc

    with im:
        width, height = im.size
        if width * height > MAX_PIXELS:
            raise ImageError(
                f"The image is {width} x {height} pixels "
                f"({width * height / 1_000_000:.0f} megapixels), over the "
                f"{MAX_PIXELS // 1_000_000} megapixel limit. {ACCEPTED_HELP}"
            )
        if width == 0 or height == 0:
            raise ImageError(f"The image has no pixels ({width} x {height}). {ACCEPTED_HELP}")
        try:
            # Decode here, inside the guard, so truncated or corrupt data is
            # reported now rather than surfacing later in the model code.
            im.load()
        except Exception as exc:  # decoders raise OSError, SyntaxError, EOFError...
            raise ImageError(
                f"The {im.format} file is damaged or incomplete and could not be "
                f"decoded. {ACCEPTED_HELP}"
            ) from exc
        try:
            upright = ImageOps.exif_transpose(im)
        except Exception:  # Broken EXIF should not cost the person their photo.
            upright = im.copy()
        try:
            return _to_rgb(upright)
        except ValueError as exc:  # e.g. LAB TIFFs, which Pillow cannot turn into RGB
            raise ImageError(
                f"The image uses a colour mode ({upright.mode}) that cannot be shown "
                f"as RGB. {ACCEPTED_HELP}"
            ) from exc
