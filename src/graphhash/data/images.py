"""Decode any image file into an RGB array of a fixed size, the input every backbone takes."""

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


def to_pixels(img: Image.Image, size: int, interpolation: str) -> np.ndarray:
    """Resize to ``size`` x ``size`` (the whole image, no crop) and return uint8 pixels, shape (H, W, 3).

    ``interpolation`` is ``bicubic``, ``bilinear`` or ``nearest``. One image of ``to_batch``: see there.
    """
    return to_batch([np.asarray(img, dtype=np.uint8)], size, interpolation)[0]


def to_batch(images: list[np.ndarray], size: int, interpolation: str) -> np.ndarray:
    """Resize RGB images, uint8 (h, w, 3) of any sizes, to one batch of uint8 pixels (N, size, size, 3).

    Resizing uses torch's antialiased uint8 kernels, which follow Pillow's filters (at most 2 grey levels
    apart). Images of one size are resized in one call: the same values as one call per image, at a sixth
    to a tenth of the cost (0.03 against 0.2 ms per 32 px CIFAR-10 image to 160 px on 2 cores), which matters
    when a small CPU resizes between the model's batches. Height-width-channel order is the channels-last
    layout the backbones run fastest in: ``torch.from_numpy(batch).permute(0, 3, 1, 2)`` needs no copy.
    """
    import torch  # here: the stages that list and digest items (prepare) need no torch
    import torch.nn.functional as F

    out = np.empty((len(images), size, size, 3), dtype=np.uint8)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, image in enumerate(images):
        by_shape.setdefault(image.shape, []).append(i)
    for rows in by_shape.values():
        nchw = torch.from_numpy(np.stack([images[i] for i in rows])).permute(0, 3, 1, 2)
        resized = F.interpolate(nchw, size=(size, size), mode=interpolation, antialias=interpolation != "nearest")
        out[rows] = resized.permute(0, 2, 3, 1).numpy()
    return out
