"""HDF5 files that say what they are: a ``format`` attribute ``graphhash-<kind>/<version>`` on every file.

Each file kind is one ``Contract``: its name, its version and the stage that writes it. Reading checks the
tag first, so a file of another kind, of another version, or not HDF5 at all is one line naming the file
and the stage to rerun, instead of a KeyError deep inside a stage.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from graphhash.errors import GraphhashError
from graphhash.files.atomic import atomic_path


@dataclass(frozen=True)
class Contract:
    """One kind of HDF5 file: ``kind`` (features, codes, ...), its format ``version`` and the ``stage`` writing it."""

    kind: str
    version: int
    stage: str

    @property
    def tag(self) -> str:
        return f"graphhash-{self.kind}/{self.version}"

    @contextmanager
    def write(self, dest: str | Path) -> Iterator[h5py.File]:
        """An HDF5 file being written to a temporary path, renamed onto ``dest`` when the block succeeds.

        The writer sets ``attrs["format"] = contract.tag`` (first, with its other attributes).
        """
        with atomic_path(dest) as tmp:
            try:
                with h5py.File(tmp, "w") as f:
                    yield f
                    if f.attrs.get("format") != self.tag:
                        raise AssertionError(f"{dest}: written without its format tag {self.tag}")
            except RuntimeError as exc:  # HDF5's own report of a write the file system refused
                raise OSError(0, f"HDF5: {exc}") from None

    @contextmanager
    def read(self, path: str | Path) -> Iterator[h5py.File]:
        """The file open for reading, once its tag says it is this kind and version.

        Missing datasets or attributes inside the block are reported as a damaged file.
        """
        rerun = f"rerun the {self.stage} stage"
        try:
            f = h5py.File(path, "r")
        except (OSError, ValueError) as exc:
            reason = "no such file" if not Path(path).exists() else _reason(exc)
            raise GraphhashError(f"{path}: cannot open as a {self.kind} file ({reason}); {rerun}") from None
        with f:
            found = _text(f.attrs.get("format"))
            if found != self.tag:
                if found.startswith(f"graphhash-{self.kind}/"):
                    problem = f"is {self.kind} format {found.rpartition('/')[2]}, this graphhash reads {self.version}"
                else:
                    problem = f"is not a {self.kind} file (format {found or 'missing'}, expected {self.tag})"
                raise GraphhashError(f"{path}: {problem}; {rerun}")
            try:
                yield f
            except (KeyError, OSError) as exc:
                raise GraphhashError(f"{path}: damaged {self.kind} file ({_reason(exc)}); {rerun}") from None


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else "" if value is None else str(value)


def _reason(exc: Exception) -> str:
    return str(exc).strip().strip("'\"").splitlines()[0] if str(exc).strip() else type(exc).__name__


def write_strings(group: h5py.Group, name: str, values: list[str]) -> None:
    """A dataset of UTF-8 strings (ids), readable from any HDF5 tool."""
    group.create_dataset(name, data=np.array(values, dtype=object), dtype=h5py.string_dtype("utf-8"))


def read_strings(dataset: h5py.Dataset) -> list[str]:
    return [s.decode("utf-8") for s in dataset[()]]


def write_labels(group: h5py.Group, name: str, labels: np.ndarray) -> None:
    """Items' labels as every file of the pipeline stores them: int64 classes (n,), or uint8 0/1 rows (n, L) for
    multi-label data."""
    labels = np.asarray(labels)
    group.create_dataset(name, data=labels.astype(np.uint8 if labels.ndim == 2 else np.int64))


def no_labels(count: int) -> np.ndarray:
    """The labels of ``count`` unlabelled items: a multi-label matrix of no columns, (count, 0) bool (no item is
    relevant to another by labels; ``graphhash.data.sources.base``)."""
    return np.zeros((count, 0), dtype=bool)


def read_labels(dataset: h5py.Dataset) -> np.ndarray:
    """Labels written by ``write_labels``: (n,) int64 classes, or (n, L) bool rows."""
    labels = dataset[()]
    return labels.astype(bool) if labels.ndim == 2 else labels


def json_attr(value: Any) -> str:
    """Lists and mappings are stored as JSON strings, readable from any HDF5 tool."""
    return json.dumps(value, sort_keys=True)


def plain_attrs(f: h5py.File) -> dict[str, Any]:
    """A file's attributes as Python values (NumPy scalars unwrapped)."""
    return {key: (value.item() if isinstance(value, np.generic) else value) for key, value in f.attrs.items()}
