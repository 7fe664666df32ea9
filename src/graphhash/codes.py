"""Code files: the contract between every hashing method and the evaluation.

``data/codes/<method>-<bits>.h5`` holds

- ``query``, ``database``: uint8 (n, ceil(bits / 8)), codes packed with ``np.packbits`` along the bits, so
  bit 0 is the most significant bit of byte 0;
- ``query_ids``, ``database_ids``: UTF-8 strings; ``query_labels``, ``database_labels``: int64;
- attributes ``method`` and ``bits``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from graphhash.atomic import atomic_path
from graphhash.errors import GraphhashError
from graphhash.features import FeatureSet, read_strings, write_strings


@dataclass(frozen=True)
class CodeSet:
    method: str
    bits: int
    query: np.ndarray  # packed uint8
    database: np.ndarray
    query_ids: list[str]
    database_ids: list[str]
    query_labels: np.ndarray
    database_labels: np.ndarray


def pack(bits: np.ndarray) -> np.ndarray:
    """Boolean codes (n, bits) to packed bytes (n, ceil(bits / 8)), bit 0 first."""
    return np.packbits(np.asarray(bits, dtype=bool), axis=1)


def unpack(packed: np.ndarray, bits: int) -> np.ndarray:
    return np.unpackbits(packed, axis=1, count=bits).astype(bool)


def encode_splits(fs: FeatureSet, encode: Callable[[np.ndarray], np.ndarray], method: str, bits: int) -> CodeSet:
    """Codes of a features file's query and database items, ``encode`` mapping features to bool codes."""
    parts = {}
    for part in ("query", "database"):
        mask = getattr(fs, part)
        parts[part] = pack(encode(fs.features[mask]))
        parts[f"{part}_ids"] = fs.ids_where(mask)
        parts[f"{part}_labels"] = fs.labels[mask]
    return CodeSet(method=method, bits=bits, **parts)


def write_codes(dest: str | Path, codes: CodeSet) -> None:
    with atomic_path(dest) as tmp, h5py.File(tmp, "w") as f:
        for part in ("query", "database"):
            f.create_dataset(part, data=getattr(codes, part))
            write_strings(f, f"{part}_ids", getattr(codes, f"{part}_ids"))
            f.create_dataset(f"{part}_labels", data=np.asarray(getattr(codes, f"{part}_labels"), dtype=np.int64))
        f.attrs.update({"method": codes.method, "bits": codes.bits})


def read_codes(path: str | Path) -> CodeSet:
    try:
        with h5py.File(path, "r") as f:
            parts = {}
            for part in ("query", "database"):
                parts[part] = f[part][()]
                parts[f"{part}_ids"] = read_strings(f[f"{part}_ids"])
                parts[f"{part}_labels"] = f[f"{part}_labels"][()]
            return CodeSet(method=str(f.attrs["method"]), bits=int(f.attrs["bits"]), **parts)
    except (OSError, KeyError) as exc:
        raise GraphhashError(f"{path}: not a valid code file ({exc})") from exc
