"""The features file (HDF5): the contract between ``extract`` and every stage after it.

Datasets (N rows, one per item that was read):

- ``features/<modality>``: float32 (N, D_m), finite: one matrix per modality (``image``; ``image`` and ``text`` for
  paired data), row i of each the same item
- ``labels``: int64 (N,), indexing the ``classes`` attribute; for multi-label data uint8 (N, L), 0/1 rows over the
  ``classes``
- ``ids``: UTF-8 strings (N,), item paths relative to the dataset root
- ``query``, ``database``, ``train``: bool (N,), the split masks

Attributes: ``format``, ``modalities`` (JSON list: the order of the modalities), ``dims`` (JSON object: each
modality's D_m), ``count``, ``source``, ``backbone``, ``weights``, ``image_size``, ``classes`` (JSON list),
``skipped_ids`` (JSON list of ids that could not be read), ``device``, ``precision``, ``content_sha256`` (of the
source data, from the manifest) and ``versions`` (JSON object of library versions).

A single-modality file is the special case of one matrix: ``FeatureSet.features`` is it. Steps that take several
modalities read ``FeatureSet.views``; ``FeatureSet.view(modality)`` names the file and what it holds when the
modality asked for is not there.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from graphhash.errors import GraphhashError
from graphhash.files.hdf5 import (
    Contract,
    json_attr,
    plain_attrs,
    read_labels,
    read_strings,
    write_labels,
    write_strings,
)
from graphhash.files.manifest import SPLITS
from graphhash.runtime import memory_shortfall

FEATURES = Contract("features", 2, stage="extract")


@dataclass(frozen=True)
class FeatureSet:
    views: dict[str, np.ndarray | h5py.Dataset]  # modality -> (N, D_m), in the file's order
    labels: np.ndarray
    ids: list[str]
    query: np.ndarray
    database: np.ndarray
    train: np.ndarray
    attrs: dict[str, Any]
    path: str = ""

    @property
    def modalities(self) -> list[str]:
        return list(self.views)

    def view(self, modality: str) -> np.ndarray | h5py.Dataset:
        """The features of ``modality``; one line naming the file and its modalities when it holds none."""
        if modality not in self.views:
            raise GraphhashError(f"{self.path or 'features'}: no features of modality {modality!r} (it holds "
                                 f"{', '.join(self.views)}); rerun the extract stage")  # fmt: skip
        return self.views[modality]

    @property
    def features(self) -> np.ndarray | h5py.Dataset:
        """The features of a single-modality file; one line when the file holds several modalities."""
        if len(self.views) != 1:
            raise GraphhashError(f"{self.path or 'features'}: holds the modalities {', '.join(self.views)}, and this "
                                 "step reads one")  # fmt: skip
        return next(iter(self.views.values()))

    def only(self, modality: str) -> FeatureSet:
        """The same items with the features of ``modality`` alone."""
        return replace(self, views={modality: self.view(modality)})

    def with_views(self, views: dict[str, np.ndarray]) -> FeatureSet:
        """The same items with other features (the same modalities)."""
        return replace(self, views=views)

    @property
    def width(self) -> int:
        """The dimensions of an item's features, every modality's together."""
        return sum(int(view.shape[1]) for view in self.views.values())

    def require_memory(self, mask: np.ndarray | None, copies: float, stage: str) -> None:
        """Stop, naming the file, before ``stage`` reads the rows of ``mask`` (every row: None) when ``copies`` float32
        copies of them (of every modality) would not fit in memory (``runtime.memory_shortfall``)."""
        rows, dim = len(self.ids) if mask is None else int(np.count_nonzero(mask)), self.width
        reason = memory_shortfall(int(copies * rows * dim * 4), f"{stage}: {rows:,} rows of {dim:,} dimensions")
        if reason:
            raise GraphhashError(f"{self.path or 'features'}: {reason}")

    def ids_where(self, mask: np.ndarray) -> list[str]:
        return [item_id for item_id, keep in zip(self.ids, mask, strict=True) if keep]


def write_features(
    dest: str | Path,
    blocks: Iterable[dict[str, np.ndarray]],
    *,
    dims: dict[str, int],
    ids: list[str],
    labels: np.ndarray,
    masks: dict[str, np.ndarray],
    attrs: dict[str, Any],
) -> None:
    """Stream ``blocks`` of feature rows, {modality: rows} in the order of ``dims`` and of the ids (N rows in all),
    into ``dest``, atomically."""
    count = len(ids)
    with FEATURES.write(dest) as f:
        views = {modality: f.create_dataset(f"features/{modality}", shape=(count, dim), dtype=np.float32,
                                            chunks=(max(1, min(count, 1024)), dim))
                 for modality, dim in dims.items()}  # fmt: skip
        row = 0
        for block in blocks:
            size = {len(rows) for rows in block.values()}
            if set(block) != set(dims) or len(size) != 1:
                raise AssertionError(f"features: a block of {sorted(block)} with {size} rows, for {sorted(dims)}")
            for modality, rows in block.items():
                views[modality][row : row + len(rows)] = rows
            row += size.pop()
        if row != count:
            raise AssertionError(f"features: wrote {row} rows for {count} ids")
        write_labels(f, "labels", labels)
        write_strings(f, "ids", ids)
        for name in SPLITS:
            f.create_dataset(name, data=np.asarray(masks[name], dtype=bool))
        f.attrs.update({"format": FEATURES.tag, "modalities": json_attr(list(dims)), "dims": json_attr(dims),
                        "count": count, **attrs})  # fmt: skip


def read_features_attrs(path: str | Path) -> dict[str, Any]:
    """A features file's attributes only (backbone, image size, classes...), without loading its rows."""
    with FEATURES.read(path) as f:
        return plain_attrs(f)


def require_finite(x: np.ndarray, where: str) -> np.ndarray:
    """``x`` itself when every value is finite; else one line naming ``where`` and the first row holding a NaN or an
    infinity (one such value spreads through everything computed from it, down to codes of all zeros). Checked
    ``READ_BLOCK`` rows at a time, so the check never holds a mask as large as ``x``."""
    bad = [np.zeros(0, dtype=np.int64)]
    for start in range(0, len(x), READ_BLOCK):
        block = np.asarray(x[start : start + READ_BLOCK])
        bad.append(start + np.flatnonzero(~np.isfinite(block).reshape(len(block), -1).all(axis=1)))
    rows = np.concatenate(bad)
    if len(rows):
        found = f"{len(rows):,} rows, the first row {rows[0]}" if len(rows) > 1 else f"row {rows[0]}"
        raise GraphhashError(f"{where}: NaN or infinite features in {found}")
    return x


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
            views={modality: f[f"features/{modality}"] for modality in json.loads(f.attrs["modalities"])},
            labels=read_labels(f["labels"]),
            ids=read_strings(f["ids"]),
            attrs=plain_attrs(f),
            path=str(path),
            **{name: f[name][()] for name in SPLITS},
        )


def read_features(path: str | Path) -> FeatureSet:
    """Load a features file written by ``write_features`` (everything into memory).

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "features.h5"
    >>> query = np.array([True, False, False])
    >>> write_features(path, [{"image": np.eye(3, 4, dtype=np.float32)}], dims={"image": 4}, ids=["a", "b", "c"],
    ...                labels=np.array([0, 1, 1]), masks={"query": query, "database": ~query, "train": ~query},
    ...                attrs={"backbone": "none"})
    >>> fs = read_features(path)
    >>> fs.features.shape, fs.ids_where(fs.query), fs.labels.tolist()
    ((3, 4), ['a'], [0, 1, 1])
    """
    with open_features(path) as fs:
        return fs.with_views({modality: view[()] for modality, view in fs.views.items()})


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
