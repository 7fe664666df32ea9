"""A source's items as arrays, for a DataLoader: what ``extract`` feeds its backbone (or copies, for vectors)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from graphhash.data.sources import Source
from graphhash.errors import GraphhashError
from graphhash.pixels import to_batch


class ItemDataset(Dataset):
    """Item i of ``ids`` as (i, arrays, error), one array per modality of the source: decoded uint8 pixels
    (h, w, 3) of an image, or float32 vectors for vector sources (``interpolation`` None); ``collate`` makes a batch
    of them, resizing the images of one size together to ``image_size`` (``graphhash.pixels.to_batch``).

    An unreadable item yields blanks and its error message instead of raising inside a worker process,
    so the main process decides what to do (fail or skip) and can name the file in one line.
    """

    def __init__(self, source: Source, ids: list[str], image_size: int, interpolation: str | None):
        self.source, self.ids, self.image_size, self.interpolation = source, ids, image_size, interpolation
        self.images = interpolation is not None
        self.item_shapes = [(image_size, image_size, 3)] if self.images else self._vector_shapes()

    def _vector_shapes(self) -> list[tuple[int, ...]]:
        for item_id in self.ids:
            try:
                return [vector.shape for vector in self.source.vectors(item_id)]
            except GraphhashError:
                continue
        raise GraphhashError(f"extract: none of the {len(self.ids)} vectors of the source is readable")

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[int, tuple[np.ndarray, ...], str]:
        item_id = self.ids[i]
        try:
            if not self.images:
                arrays = self.source.vectors(item_id)
                for modality, array, shape in zip(self.source.modalities, arrays, self.item_shapes, strict=True):
                    if array.shape != shape:
                        raise GraphhashError(f"{self.source.where(item_id)}: {modality} vector of shape {array.shape}, "
                                             f"expected {shape}")  # fmt: skip
            else:
                arrays = (np.asarray(self.source.image(item_id), dtype=np.uint8),)
            return i, arrays, ""
        except GraphhashError as exc:
            if not self.images:
                return i, tuple(np.zeros(shape, np.float32) for shape in self.item_shapes), str(exc)
            return i, (np.zeros((1, 1, 3), np.uint8),), str(exc)

    def collate(self, batch: list[tuple[int, tuple[np.ndarray, ...], str]]) -> tuple[list[torch.Tensor], list[str]]:
        """A batch per modality, (B, S, S, 3) uint8 or (B, D_m) float32, and each item's error ('' when read)."""
        errors = [error for _, _, error in batch]
        if not self.images:
            columns = zip(*(arrays for _, arrays, _ in batch), strict=True)
            return [torch.from_numpy(np.stack(column)) for column in columns], errors
        images = [arrays[0] for _, arrays, _ in batch]
        return [torch.from_numpy(to_batch(images, self.image_size, self.interpolation))], errors
