"""Images to pixels of one size, the input every backbone takes: uint8 (size, size, 3), or a batch of them
(N, size, size, 3) in the height-width-channel order that is the channels-last layout backbones run fastest in.

torch is imported inside the functions: the stages that list and digest items (prepare) need none.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


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
