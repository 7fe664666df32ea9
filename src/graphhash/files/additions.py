"""The additions folder: the features of the items ``graphhash add`` put in the database, one file per add.

``<folder>/batch-<n>.h5`` (HDF5) holds the items of the n-th add (``graphhash.database.changes``), in the order the
changes file lists them: ``ids`` and ``sha256`` (UTF-8 strings), ``serials`` int64 (their lines in the changes
file), ``features`` float32 (n, D) in ``modality``; attributes ``format``, ``batch``, ``modality``, and the
``embedding``: what made the features (JSON: the backbone, its weights and image size, as the run's features file
records them). A file is kept while its items and embedding are still those the changes and the run ask for, so a
retrained hash network re-hashes the additions without embedding them again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from graphhash.files.atomic import write_json
from graphhash.files.hdf5 import Contract, read_strings, write_strings

ADDITIONS = Contract("additions", 1, stage="additions")


@dataclass(frozen=True)
class Batch:
    batch: int
    modality: str
    ids: list[str]
    sha256: list[str]
    serials: np.ndarray  # (n,) int64
    features: np.ndarray  # (n, D) float32
    embedding: dict[str, Any]


LISTING = "batches.json"


def batch_file(folder: str | Path, batch: int) -> Path:
    return Path(folder) / f"batch-{batch:06d}.h5"


def write_listing(folder: str | Path, counts: dict[int, int]) -> None:
    """``batches.json``: each batch file's name and how many items it holds."""
    write_json(Path(folder) / LISTING, {batch_file(folder, n).name: count for n, count in sorted(counts.items())})


def write_batch(folder: str | Path, batch: Batch) -> None:
    with ADDITIONS.write(batch_file(folder, batch.batch)) as f:
        f.attrs.update({"format": ADDITIONS.tag, "batch": batch.batch, "modality": batch.modality,
                        "embedding": json.dumps(batch.embedding, sort_keys=True)})  # fmt: skip
        write_strings(f, "ids", batch.ids)
        write_strings(f, "sha256", batch.sha256)
        f.create_dataset("serials", data=np.asarray(batch.serials, dtype=np.int64))
        f.create_dataset("features", data=np.ascontiguousarray(batch.features, dtype=np.float32))


def read_batch(path: str | Path) -> Batch:
    with ADDITIONS.read(path) as f:
        return Batch(batch=int(f.attrs["batch"]), modality=str(f.attrs["modality"]), ids=read_strings(f["ids"]),
                     sha256=read_strings(f["sha256"]), serials=f["serials"][()], features=f["features"][()],
                     embedding=json.loads(str(f.attrs["embedding"])))  # fmt: skip
