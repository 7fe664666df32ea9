"""The features file (HDF5): the contract between ``extract`` and every stage after it.

Datasets (N rows, one per item that was read):

- ``features``: float32 (N, D), finite
- ``labels``: int64 (N,), indexing the ``classes`` attribute
- ``ids``: UTF-8 strings (N,), item paths relative to the dataset root
- ``query``, ``database``, ``train``: bool (N,), the split masks

Attributes: ``format``, ``source``, ``backbone``, ``weights``, ``image_size``, ``dim``, ``count``,
``classes`` (JSON list), ``skipped_ids`` (JSON list of ids that could not be read), ``device``,
``precision``, ``content_sha256`` (of the source data, from the manifest) and ``versions`` (JSON object of
library versions).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from graphhash.files.hdf5 import Contract, plain_attrs, read_strings, write_strings
from graphhash.files.manifest import SPLITS

FEATURES = Contract("features", 1, stage="extract")


@dataclass(frozen=True)
class FeatureSet:
    features: np.ndarray
    labels: np.ndarray
    ids: list[str]
    query: np.ndarray
    database: np.ndarray
    train: np.ndarray
    attrs: dict[str, Any]

    def ids_where(self, mask: np.ndarray) -> list[str]:
        return [item_id for item_id, keep in zip(self.ids, mask, strict=True) if keep]


def write_features(
    dest: str | Path,
    blocks: Iterable[np.ndarray],
    *,
    dim: int,
    ids: list[str],
    labels: np.ndarray,
    masks: dict[str, np.ndarray],
    attrs: dict[str, Any],
) -> None:
    """Stream ``blocks`` of feature rows (in id order, N rows in all) into ``dest``, atomically."""
    count = len(ids)
    with FEATURES.write(dest) as f:
        features = f.create_dataset(
            "features", shape=(count, dim), dtype=np.float32, chunks=(max(1, min(count, 1024)), dim)
        )
        row = 0
        for block in blocks:
            features[row : row + len(block)] = block
            row += len(block)
        if row != count:
            raise AssertionError(f"features: wrote {row} rows for {count} ids")
        f.create_dataset("labels", data=np.asarray(labels, dtype=np.int64))
        write_strings(f, "ids", ids)
        for name in SPLITS:
            f.create_dataset(name, data=np.asarray(masks[name], dtype=bool))
        f.attrs.update({"format": FEATURES.tag, "dim": dim, "count": count, **attrs})


def read_features_attrs(path: str | Path) -> dict[str, Any]:
    """A features file's attributes only (backbone, image size, classes...), without loading its rows."""
    with FEATURES.read(path) as f:
        return plain_attrs(f)


# rows read at a time by ``read_rows``: 64 MiB of 1280-d float32 features
READ_BLOCK = 1 << 13


@contextmanager
def open_features(path: str | Path) -> Iterator[FeatureSet]:
    """A features file open for reading, with everything in memory but the feature rows: ``features`` is the
    HDF5 dataset itself, read by slicing it (``read_rows`` reads a mask's rows in blocks). For files larger than
    memory wants twice: a stage that needs the training rows reads only those, and never the whole matrix
    and then a copy of its rows."""
    with FEATURES.read(path) as f:
        yield FeatureSet(
            features=f["features"],
            labels=f["labels"][()],
            ids=read_strings(f["ids"]),
            attrs=plain_attrs(f),
            **{name: f[name][()] for name in SPLITS},
        )


def read_features(path: str | Path) -> FeatureSet:
    """Load a features file written by ``write_features`` (everything into memory)."""
    with open_features(path) as fs:
        return replace(fs, features=fs.features[()])


def _blocks(features: np.ndarray | h5py.Dataset, mask: np.ndarray | None) -> Iterator[np.ndarray]:
    """The rows of ``features`` where ``mask`` is true (every row: None), float32, ``READ_BLOCK`` at a time."""
    for start in range(0, len(features), READ_BLOCK):
        block = np.asarray(features[start : start + READ_BLOCK], dtype=np.float32)
        yield block if mask is None else block[mask[start : start + READ_BLOCK]]


def read_rows(features: np.ndarray | h5py.Dataset, mask: np.ndarray | None = None) -> np.ndarray:
    """The rows of ``features`` (an array or an open file's dataset) where ``mask`` is true (every row: None), as
    one new float32 array, read ``READ_BLOCK`` rows at a time."""
    out = np.empty((len(features) if mask is None else int(mask.sum()), features.shape[1]), dtype=np.float32)
    row = 0
    for block in _blocks(features, mask):
        out[row : row + len(block)] = block
        row += len(block)
    return out


def map_rows(
    features: np.ndarray | h5py.Dataset, mask: np.ndarray, function: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """``function`` (rows -> one output row each) of the rows where ``mask`` is true, applied ``READ_BLOCK``
    rows at a time (never to a copy of them all), the outputs in row order."""
    outputs = [function(block) for block in _blocks(features, mask) if len(block)]
    return np.concatenate(outputs) if outputs else function(np.zeros((0, features.shape[1]), dtype=np.float32))
