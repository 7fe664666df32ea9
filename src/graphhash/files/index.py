"""The index folder: a FAISS binary index of one code file's database codes (one method, code length and modality),
written by ``index@<filter>-<bits>`` as ``<folder>/<modality>/``.

- ``index.faiss``: the index, from ``faiss.write_index_binary``; row i is database item i
- ``items.h5`` (HDF5): ``codes`` uint8 (n, B), the database codes the index holds (for the exact re-ranking),
  ``ids`` UTF-8 strings and ``labels`` of the database items (int64 classes, or uint8 0/1 rows for multi-label
  data); attributes ``format``, ``method``, ``bits``, ``modality``, ``kind`` (flat, ivf or hnsw: ``auto`` already
  resolved), ``options`` (JSON: the kind's hyperparameters), ``count`` and ``faiss_sha256``, the digest of
  ``index.faiss``, so that a folder whose two files come from different runs is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from graphhash.errors import GraphhashError
from graphhash.files.atomic import atomic_path, file_sha256
from graphhash.files.hdf5 import Contract, read_labels, read_strings, write_labels, write_strings

INDEX = Contract("index", 2, stage="index")
FAISS_FILE, ITEMS_FILE = "index.faiss", "items.h5"


@dataclass(frozen=True)
class StoredIndex:
    index: faiss.IndexBinary
    codes: np.ndarray  # (n, B) uint8, the database codes
    ids: list[str]
    labels: np.ndarray  # (n,) int64, or (n, L) bool
    method: str
    bits: int
    modality: str
    kind: str
    options: dict[str, Any]


def write_index(folder: str | Path, stored: StoredIndex) -> None:
    folder = Path(folder)
    with atomic_path(folder / FAISS_FILE) as tmp:
        faiss.write_index_binary(stored.index, str(tmp))
        digest = file_sha256(tmp)
    with INDEX.write(folder / ITEMS_FILE) as f:
        f.create_dataset("codes", data=np.ascontiguousarray(stored.codes, dtype=np.uint8))
        write_strings(f, "ids", stored.ids)
        write_labels(f, "labels", stored.labels)
        f.attrs.update({"format": INDEX.tag, "method": stored.method, "bits": stored.bits,
                        "modality": stored.modality, "kind": stored.kind,
                        "options": json.dumps(stored.options, sort_keys=True), "count": len(stored.ids),
                        "faiss_sha256": digest})  # fmt: skip


def read_index(folder: str | Path) -> StoredIndex:
    """The index and its items; a folder that is missing, incomplete or mixed is one line naming it."""
    folder = Path(folder)
    if not folder.is_dir():
        what = "does not exist" if not folder.exists() else "is a file"
        raise GraphhashError(f"{folder}: {what}, not an index folder (the index stage writes one; dvc repro)")
    with INDEX.read(folder / ITEMS_FILE) as f:
        items = {"codes": f["codes"][()], "ids": read_strings(f["ids"]), "labels": read_labels(f["labels"])}
        attrs = {key: f.attrs[key] for key in ("method", "bits", "modality", "kind", "options", "faiss_sha256")}
    path = folder / FAISS_FILE
    if not path.is_file() or file_sha256(path) != str(attrs["faiss_sha256"]):
        problem = "is missing" if not path.is_file() else f"does not belong to {ITEMS_FILE} (another run's)"
        raise GraphhashError(f"{path}: {problem}; rerun the {INDEX.stage} stage")
    index = faiss.read_index_binary(str(path))
    if index.ntotal != len(items["ids"]) or index.code_size != items["codes"].shape[1]:
        held = f"{len(items['ids'])} of {items['codes'].shape[1]}"
        raise GraphhashError(f"{path}: holds {index.ntotal} codes of {index.code_size} bytes, but {ITEMS_FILE} "
                             f"{held}; rerun the {INDEX.stage} stage")  # fmt: skip
    return StoredIndex(index=index, method=str(attrs["method"]), bits=int(attrs["bits"]),
                       modality=str(attrs["modality"]), kind=str(attrs["kind"]),
                       options=json.loads(str(attrs["options"])), **items)  # fmt: skip
