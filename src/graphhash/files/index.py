"""The index file: a FAISS binary index of one method's database codes at one code length for one modality, with the
items it holds, written by ``index@<filter>-<bits>`` as ``<folder>/<modality>/index.h5`` and updated in place by
``graphhash add`` and ``graphhash remove`` (``graphhash.database``).

One HDF5 file, so that a reader opens either the whole index before a change or the whole index after it (the
file is replaced by a rename: ``graphhash.files.atomic``), never parts of two:

- ``faiss`` uint8: the index, ``faiss.serialize_index_binary``; its id for a code is the code's slot, its row below;
- ``codes`` uint8 (n, B), the codes of every slot (for the exact re-ranking); ``ids`` UTF-8 strings and ``labels``
  (int64 classes, -1 for an added item, or uint8 0/1 rows for multi-label data, none set for an added item);
- ``serials`` int64 (n,): -1 for an item of the pipeline's database, else the line of the changes file that added
  it (``graphhash.database.changes``); ``removed`` bool (n,): slots removed but kept in place, for index kinds
  whose FAISS structure keeps its ids (ivf, hnsw; flat drops the slot);
- attributes ``format``, ``method``, ``bits``, ``modality``, ``kind`` (flat, ivf or hnsw: ``auto`` already
  resolved), ``options`` (JSON: the kind's hyperparameters), ``count`` (items searched: slots not removed) and
  ``model_sha256``, the digest of the hash network's weights that made the codes, so that codes of two networks
  are never mixed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from graphhash.errors import GraphhashError
from graphhash.files.hdf5 import Contract, read_labels, read_strings, write_labels, write_strings

INDEX = Contract("index", 3, stage="index")
INDEX_FILE = "index.h5"
PIPELINE = -1  # the serial of an item of the pipeline's own database


@dataclass(frozen=True)
class StoredIndex:
    index: faiss.IndexBinary
    codes: np.ndarray  # (n, B) uint8, the code of every slot
    ids: list[str]
    labels: np.ndarray  # (n,) int64, or (n, L) bool
    method: str
    bits: int
    modality: str
    kind: str
    options: dict[str, Any]
    model_sha256: str = ""
    serials: np.ndarray | None = None  # (n,) int64; None: every slot a pipeline item
    removed: np.ndarray | None = None  # (n,) bool; None: none

    def __post_init__(self) -> None:
        n = len(self.ids)
        if self.serials is None:
            object.__setattr__(self, "serials", np.full(n, PIPELINE, dtype=np.int64))
        if self.removed is None:
            object.__setattr__(self, "removed", np.zeros(n, dtype=bool))

    @property
    def count(self) -> int:
        """The items searched: slots not removed."""
        return len(self.ids) - int(self.removed.sum())

    def live(self) -> np.ndarray:
        """The slots searched, in database order."""
        return np.flatnonzero(~self.removed)


def write_index(folder: str | Path, stored: StoredIndex) -> None:
    with INDEX.write(Path(folder) / INDEX_FILE) as f:
        f.attrs.update({"format": INDEX.tag, "method": stored.method, "bits": stored.bits,
                        "modality": stored.modality, "kind": stored.kind,
                        "options": json.dumps(stored.options, sort_keys=True), "count": stored.count,
                        "model_sha256": stored.model_sha256})  # fmt: skip
        f.create_dataset("faiss", data=faiss.serialize_index_binary(stored.index))
        f.create_dataset("codes", data=np.ascontiguousarray(stored.codes, dtype=np.uint8))
        write_strings(f, "ids", stored.ids)
        write_labels(f, "labels", stored.labels)
        f.create_dataset("serials", data=stored.serials.astype(np.int64))
        f.create_dataset("removed", data=stored.removed.astype(bool))


def read_index(folder: str | Path) -> StoredIndex:
    """The index and its items; a folder that is missing or holds a damaged index is one line naming it."""
    folder = Path(folder)
    if not folder.is_dir():
        what = "does not exist" if not folder.exists() else "is a file"
        raise GraphhashError(f"{folder}: {what}, not an index folder (the index stage writes one; dvc repro)")
    path = folder / INDEX_FILE
    with INDEX.read(path) as f:
        items = {"codes": f["codes"][()], "ids": read_strings(f["ids"]), "labels": read_labels(f["labels"]),
                 "serials": f["serials"][()], "removed": f["removed"][()].astype(bool)}  # fmt: skip
        attrs = {key: f.attrs[key] for key in ("method", "bits", "modality", "kind", "options", "model_sha256")}
        index = faiss.deserialize_index_binary(f["faiss"][()])
    slots = len(items["ids"])
    if index.code_size != items["codes"].shape[1] or not slots == len(items["serials"]) == len(items["removed"]):
        raise GraphhashError(f"{path}: its FAISS index and its items do not match; rerun the {INDEX.stage} stage")
    return StoredIndex(index=index, method=str(attrs["method"]), bits=int(attrs["bits"]),
                       modality=str(attrs["modality"]), kind=str(attrs["kind"]),
                       options=json.loads(str(attrs["options"])), model_sha256=str(attrs["model_sha256"]),
                       **items)  # fmt: skip


def index_kind(path: str | Path) -> tuple[str, int, str]:
    """An index file's (method, bits, modality), without loading it."""
    with INDEX.read(path) as f:
        return str(f.attrs["method"]), int(f.attrs["bits"]), str(f.attrs["modality"])


def index_stage(folder: Path) -> str:
    """The stage that writes the index folder ``<index>/nrdh-<filter>-<bits>/<modality>``: ``index@<filter>-<bits>``."""
    return "index@" + Path(folder).parent.name.removeprefix("nrdh-")


def find_indexes(folder: str | Path) -> dict[tuple[str, int, str], Path]:
    """Every index folder below ``folder`` (``<stage output>/<modality>/``), by the (method, bits, modality) it
    records. A folder without its index file (an index stage killed before it wrote it) is one line naming it and
    its stage: the other indexes are not searched in its place."""
    for part in sorted(p for p in Path(folder).glob("*/*") if p.is_dir()):
        if not (part / INDEX_FILE).is_file():
            raise GraphhashError(f"{part}: an incomplete index (no {INDEX_FILE}); rerun its stage: dvc repro "
                                 f"{index_stage(part)}")  # fmt: skip
    return {index_kind(path): path.parent for path in sorted(Path(folder).glob(f"*/*/{INDEX_FILE}"))}
