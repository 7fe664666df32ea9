"""The neighbours file (HDF5): every item's nearest training items, written by the ``neighbours`` stage.

- ``indices``: int64 (N, K), rows among the training items (the features file's training rows in file
  order), most similar first
- ``similarities``: float32 (N, K), their cosine similarities
- attributes ``format``, ``k``, ``count``
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graphhash.errors import GraphhashError
from graphhash.files.hdf5 import Contract

NEIGHBOURS = Contract("neighbours", 1, stage="neighbours")


@dataclass(frozen=True)
class Neighbours:
    indices: np.ndarray  # (N, K) int64, rows of the training items
    similarities: np.ndarray  # (N, K) float32

    def __getitem__(self, rows: np.ndarray) -> Neighbours:
        """The neighbours of the items ``rows`` selects (a mask or indices)."""
        return Neighbours(self.indices[rows], self.similarities[rows])


def write_neighbours(dest: str | Path, found: Neighbours) -> None:
    with NEIGHBOURS.write(dest) as f:
        f.create_dataset("indices", data=found.indices)
        f.create_dataset("similarities", data=found.similarities)
        f.attrs.update({"format": NEIGHBOURS.tag, "k": found.indices.shape[1], "count": len(found.indices)})


def read_neighbours(path: str | Path, items: int, k: int) -> Neighbours:
    """The first ``k`` neighbours of each of the ``items`` items of the features file the file was built from."""
    with NEIGHBOURS.read(path) as f:
        found = Neighbours(f["indices"][()], f["similarities"][()])
    if found.indices.shape[0] != items or found.indices.shape[1] < k:
        raise GraphhashError(f"{path}: {found.indices.shape} neighbours do not cover {items} items x {k}; "
                             f"rerun the {NEIGHBOURS.stage} stage")  # fmt: skip
    return Neighbours(found.indices[:, :k], found.similarities[:, :k])
