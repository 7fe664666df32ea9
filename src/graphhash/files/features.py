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

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def read_features(path: str | Path) -> FeatureSet:
    """Load a features file written by ``write_features`` (everything into memory)."""
    with FEATURES.read(path) as f:
        return FeatureSet(
            features=f["features"][()],
            labels=f["labels"][()],
            ids=read_strings(f["ids"]),
            attrs=plain_attrs(f),
            **{name: f[name][()] for name in SPLITS},
        )
