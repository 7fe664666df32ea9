"""The CNN hash network's training images: read, resized and augmented (crop, flip, colour jitter), each augmentation
drawn from a generator seeded by (seed, epoch, item), so that it does not depend on the number of DataLoader
workers."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from graphhash.pixels import to_pixels

RESAMPLING = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}
JITTER = 0.4  # colour jitter: brightness, contrast and saturation factors drawn from [1 - JITTER, 1 + JITTER]


def augmented(img: Image.Image, size: int, interpolation: str, augment: tuple[str, ...], crop_scale: float,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Pixels (S, S, 3) uint8 of ``img`` after the crop and flip of ``augment``, and its colour-jitter factors
    (3,) float32 (brightness, contrast, saturation; all 1 without jitter), which ``jitter`` applies on the batch.

    crop: a random box of area fraction U(crop_scale, 1) and aspect ratio log-uniform in [3/4, 4/3],
    clipped to the image, resized to S x S; flip: left-right with probability 1/2; jitter: each factor drawn
    from U(1 - JITTER, 1 + JITTER).
    """
    w, h = img.size
    box = (0, 0, w, h)
    if "crop" in augment:
        area = w * h * rng.uniform(crop_scale, 1.0)
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        cw, ch = min(w, max(1, round(math.sqrt(area * ratio)))), min(h, max(1, round(math.sqrt(area / ratio))))
        left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        box = (left, top, left + cw, top + ch)
    # Pillow crops and resizes in one call, a tenth of to_pixels' cost on small images (the two filters agree
    # within 2 grey levels, well inside what the augmentations change)
    pixels = np.asarray(img.resize((size, size), RESAMPLING[interpolation], box=box))
    if "flip" in augment and rng.random() < 0.5:
        pixels = np.ascontiguousarray(pixels[:, ::-1])
    factors = np.ones(3, dtype=np.float32)
    if "jitter" in augment:
        factors = rng.uniform(1 - JITTER, 1 + JITTER, size=3).astype(np.float32)
    return pixels, factors


def jitter(x: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Colour jitter of a batch (B, 3, S, S) of values in [0, 255], ``factors`` (B, 3): brightness (scale by b),
    then contrast (c, around the image's mean grey level), then saturation (s, around each pixel's grey
    level), clipped to [0, 255] at the end. The three are linear, so they compose into one map per image,
    s c b x + (1 - s) c b grey(x) + (1 - c) b mean(grey(x)): three passes over the batch instead of a dozen
    (the jitter had been the costliest part of loading)."""
    weights = torch.tensor([0.299, 0.587, 0.114], device=x.device)
    b, c, s = (factors[:, k].view(-1, 1, 1, 1) for k in range(3))
    grey = torch.einsum("bchw,c->bhw", x, weights)[:, None]
    mean = grey.mean(dim=(2, 3), keepdim=True)
    return (x * (s * c * b)).add_(grey * ((1 - s) * c * b)).add_(mean * ((1 - c) * b)).clamp_(0.0, 255.0)


class Images(Dataset):
    """Item i of ``ids`` as (i, pixels (S, S, 3) uint8, colour-jitter factors (3,) or None), augmented for
    ``epoch`` when asked; ``read`` gives an item's RGB image by its id (a data source's ``image``)."""

    def __init__(self, read: Callable[[str], Image.Image], ids: list[str], size: int, interpolation: str, *,
                 augment: Sequence[str], crop_scale: float, seed: int):  # fmt: skip
        self.read, self.ids, self.size, self.interpolation = read, ids, size, interpolation
        self.augment, self.crop_scale, self.seed = tuple(augment), crop_scale, seed
        self.epoch = -1  # -1: no augmentation (caching, encoding)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray, np.ndarray | None]:
        """(i, pixels (S, S, 3) uint8, colour-jitter factors (3,) or None)."""
        img = self.read(self.ids[i])
        if self.epoch < 0 or not self.augment:
            return i, to_pixels(img, self.size, self.interpolation), None
        rng = np.random.default_rng([self.seed, self.epoch, i])
        pixels, factors = augmented(img, self.size, self.interpolation, self.augment, self.crop_scale, rng)
        return i, pixels, factors if "jitter" in self.augment else None


def _collate(batch: list) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    factors = None if batch[0][2] is None else torch.from_numpy(np.stack([f for _, _, f in batch]))
    return torch.tensor([i for i, _, _ in batch]), torch.from_numpy(np.stack([p for _, p, _ in batch])), factors


def loader(images: Images, batches: list[list[int]], device: torch.device, workers: int) -> DataLoader:
    """(rows, pixels, factors) of ``images`` in the given batches, read by ``workers`` processes."""
    return DataLoader(images, batch_sampler=batches, num_workers=workers, collate_fn=_collate,
                      pin_memory=device.type == "cuda")  # fmt: skip
