"""Decode any image file into an RGB image (``graphhash.pixels`` resizes it for a backbone)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps

from graphhash.errors import GraphhashError, describe

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
_SIXTEEN_BIT_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N"}


class BadItemError(GraphhashError):
    """An item that cannot be read or decoded (a corrupt, truncated, empty or unreadable file, a bad vector).

    ``extract`` fails on it or leaves it out, as ``extract.on_bad_image`` says.
    """


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert grayscale, 16-bit, palette, CMYK and transparent images to 8-bit RGB.

    16-bit grey levels are scaled to 8 bits (not clipped, as Pillow's own conversion does), and
    transparent pixels are composited over white, the usual background of product and web photos.
    """
    img = ImageOps.exif_transpose(img)
    if img.mode in _SIXTEEN_BIT_MODES:
        grey = np.clip(np.asarray(img, dtype=np.float64), 0, 65535) / 257.0
        img = Image.fromarray(np.round(grey).astype(np.uint8), mode="L")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def decode(data: bytes, name: str) -> Image.Image:
    """Decode encoded image bytes to RGB; ``name`` is the file that errors name."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()  # decode now: a truncated file fails here, not later in a worker
            return to_rgb(img)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        unknown = isinstance(exc, Image.UnidentifiedImageError)
        reason = "empty file" if not data else "not an image format Pillow reads" if unknown else describe(exc)
        raise BadItemError(f"{name}: cannot decode image: {reason}") from exc
