"""The representations file (HDF5): NRDH's node representations, written by ``represent@<filter>-<bits>``.

- ``representations``: float32 (N_train, bits), one per training item, in the features file's order
- ``ids``: UTF-8 strings (N_train,)
- attributes ``format``, ``bits``, ``filter``
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graphhash.files.hdf5 import Contract, read_strings, write_strings

REPRESENTATIONS = Contract("representations", 1, stage="represent")


@dataclass(frozen=True)
class Representations:
    values: np.ndarray  # (N_train, bits) float32
    ids: list[str]
    filter: str


def write_representations(dest: str | Path, found: Representations) -> None:
    with REPRESENTATIONS.write(dest) as f:
        f.create_dataset("representations", data=np.asarray(found.values, dtype=np.float32))
        write_strings(f, "ids", found.ids)
        f.attrs.update({"format": REPRESENTATIONS.tag, "bits": found.values.shape[1], "filter": found.filter})


def read_representations(path: str | Path) -> Representations:
    with REPRESENTATIONS.read(path) as f:
        return Representations(f["representations"][()], read_strings(f["ids"]), str(f.attrs["filter"]))
