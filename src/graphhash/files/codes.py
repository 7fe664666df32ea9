"""Code files (HDF5): the contract between every hashing method and the evaluation.

A code file holds one method's codes at one code length for one modality (``image``; for paired data a method
writes one file per modality, whose codes share one Hamming space):

- ``query``, ``database``: uint8 (n, ceil(bits / 8)), codes packed with ``np.packbits`` along the bits, so
  bit 0 is the most significant bit of byte 0;
- ``query_ids``, ``database_ids``: UTF-8 strings; ``query_labels``, ``database_labels``: int64 classes, or uint8
  0/1 rows (n, L) for multi-label data;
- attributes ``format``, ``method``, ``bits`` and ``modality``.

The hash stages (``nrdh-<filter>``) and the baselines stage (``lsh``, ``itq``, ``cmfh``, ...) write them;
``evaluate`` finds them by their attributes, so file names are only for people.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graphhash.files.features import FeatureSet, map_rows
from graphhash.files.hdf5 import Contract, read_labels, read_strings, write_labels, write_strings

CODES = Contract("codes", 2, stage="hash or baselines")
PARTS = ("query", "database")


@dataclass(frozen=True)
class CodeSet:
    method: str
    bits: int
    modality: str
    query: np.ndarray  # packed uint8
    database: np.ndarray
    query_ids: list[str]
    database_ids: list[str]
    query_labels: np.ndarray
    database_labels: np.ndarray


def nrdh_method(filter_name: str) -> str:
    """The method name of NRDH's codes with one graph filter, e.g. ``nrdh-gcn``."""
    return f"nrdh-{filter_name}"


def code_file(folder: str | Path, method: str, bits: int, modality: str) -> Path:
    """Where a stage writes ``method``'s code file at ``bits`` bits for ``modality`` inside its output folder."""
    return Path(folder) / f"{method}-{bits}-{modality}.h5"


def pack(bits: np.ndarray) -> np.ndarray:
    """Boolean codes (n, bits) to packed bytes (n, ceil(bits / 8)), bit 0 first."""
    return np.packbits(np.asarray(bits, dtype=bool), axis=1)


def unpack(packed: np.ndarray, bits: int) -> np.ndarray:
    return np.unpackbits(packed, axis=1, count=bits).astype(bool)


def encode_splits(
    fs: FeatureSet, encode: Callable[[np.ndarray], np.ndarray], method: str, bits: int, modality: str
) -> CodeSet:
    """Codes of a features file's query and database items in ``modality``, ``encode`` mapping its features to bool
    codes (a block of rows at a time: the features may be an open file's dataset)."""
    view = fs.view(modality)
    return _code_set(fs, {part: map_rows(view, getattr(fs, part), encode) for part in PARTS}, method, bits, modality)


def split_codes(fs: FeatureSet, codes: np.ndarray, method: str, bits: int, modality: str) -> CodeSet:
    """The query and database items' part of bool ``codes`` (N, bits) of every item of a features file."""
    return _code_set(fs, {part: codes[getattr(fs, part)] for part in PARTS}, method, bits, modality)


def _code_set(fs: FeatureSet, found: dict[str, np.ndarray], method: str, bits: int, modality: str) -> CodeSet:
    parts = {}
    for part in PARTS:
        mask = getattr(fs, part)
        parts[part] = pack(found[part])
        parts[f"{part}_ids"] = fs.ids_where(mask)
        parts[f"{part}_labels"] = fs.labels[mask]
    return CodeSet(method=method, bits=bits, modality=modality, **parts)


def write_codes(dest: str | Path, codes: CodeSet) -> None:
    with CODES.write(dest) as f:
        for part in PARTS:
            f.create_dataset(part, data=getattr(codes, part))
            write_strings(f, f"{part}_ids", getattr(codes, f"{part}_ids"))
            write_labels(f, f"{part}_labels", getattr(codes, f"{part}_labels"))
        f.attrs.update({"format": CODES.tag, "method": codes.method, "bits": codes.bits, "modality": codes.modality})


def read_codes(path: str | Path) -> CodeSet:
    with CODES.read(path) as f:
        parts = {}
        for part in PARTS:
            parts[part] = f[part][()]
            parts[f"{part}_ids"] = read_strings(f[f"{part}_ids"])
            parts[f"{part}_labels"] = read_labels(f[f"{part}_labels"])
        return CodeSet(method=str(f.attrs["method"]), bits=int(f.attrs["bits"]), modality=str(f.attrs["modality"]),
                       **parts)  # fmt: skip


def read_code_kind(path: str | Path) -> tuple[str, int, str]:
    """A code file's (method, bits, modality), without loading its codes."""
    with CODES.read(path) as f:
        return str(f.attrs["method"]), int(f.attrs["bits"]), str(f.attrs["modality"])


def find_code_files(folder: str | Path) -> dict[tuple[str, int, str], Path]:
    """Every code file under ``folder``, by its (method, bits, modality): what it holds, whatever its name."""
    return {read_code_kind(path): path for path in sorted(Path(folder).rglob("*.h5"))}
