"""Decode an item's file: any image into an RGB image (``graphhash.pixels`` resizes it for a backbone), a ``.npy``
file into its array (``load_npy``)."""

from __future__ import annotations

import io
import tokenize
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from graphhash.errors import GraphhashError, describe

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
_SIXTEEN_BIT_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N"}


# The most pixels a query image may have (``graphhash search``, ``encode``, ``serve``: ``--max-pixels``): a 40 MP
# photo decodes to 120 MB of RGB; a small file can declare far more (a 343 KB PNG of 13,300 x 13,300 16-bit pixels
# decodes to 1 GB), and Pillow itself refuses only above 179 MP.
MAX_PIXELS = 40_000_000


class BadItemError(GraphhashError):
    """An item that cannot be read or decoded (a corrupt, truncated, empty or unreadable file, a bad vector).

    ``extract`` fails on it or leaves it out, as ``extract.on_bad_image`` says.
    """


class TooManyPixelsError(BadItemError):
    """An image whose header declares more pixels than the limit asked for: refused before it is decoded."""


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


def decode(data: bytes, name: str, max_pixels: int | None = None) -> Image.Image:
    """Decode encoded image bytes to RGB; ``name`` is the file that errors name. With ``max_pixels``, an image whose
    header declares more pixels is refused (``TooManyPixelsError``) before its pixels are decoded."""
    try:
        with warnings.catch_warnings():  # Pillow's own warning above 89 MP: the limit below is the one that counts
            if max_pixels is not None:
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))  # reads the header only
        with img:
            width, height = img.size
            if max_pixels is not None and width * height > max_pixels:
                raise TooManyPixelsError(f"{name}: {width:,} x {height:,} pixels ({width * height / 1e6:,.1f} MP) "
                                         f"is over the limit of {max_pixels / 1e6:g} MP (--max-pixels)")  # fmt: skip
            img.load()  # decode now: a truncated file fails here, not later in a worker
            return to_rgb(img)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        unknown = isinstance(exc, Image.UnidentifiedImageError)
        reason = "empty file" if not data else "not an image format Pillow reads" if unknown else describe(exc)
        raise BadItemError(f"{name}: cannot decode image: {reason}") from exc


def load_npy(data: bytes | Path, where: str, *, mapped: bool = False) -> np.ndarray:
    """The array of a ``.npy`` file (its bytes, or its path: read in place, without a copy of the bytes; ``mapped``:
    a path memory-mapped, so that its shape can be checked before anything is read); a file without NumPy's header,
    a damaged one or one holding Python objects is ``BadItemError``, one line naming ``where``."""
    with open(data, "rb") if isinstance(data, Path) else io.BytesIO(data) as f:
        if f.read(len(np.lib.format.MAGIC_PREFIX)) != np.lib.format.MAGIC_PREFIX:
            raise BadItemError(f"{where}: not a .npy array (no NumPy header)")
        f.seek(0)
        try:
            if mapped and isinstance(data, Path):
                return np.load(data, mmap_mode="r", allow_pickle=False)
            return np.load(f, allow_pickle=False)
        except (OSError, ValueError, EOFError, tokenize.TokenError) as exc:  # TokenError: a garbled v1 header
            reason = "it holds Python objects" if "allow_pickle" in str(exc) else "damaged header or data"
            raise BadItemError(f"{where}: cannot read the .npy array: {reason}") from None
