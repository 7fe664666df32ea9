"""Resumable work: what a long step has finished, saved beside its output so that an interrupted run (an exception,
Ctrl-C, a kill) resumes where it stopped, and ends with the same bytes as an uninterrupted one.

The work of one output lives in ``<its folder>/.<its name>.resume/<fingerprint>/``, one folder per ``fingerprint``
of everything that determines the work's values (params, data, library versions...): a rerun with the same inputs
finds its files, one with other inputs starts afresh, and folders of other fingerprints are stale and removed. Each
file is written atomically (a temporary name, then renamed), so a file is whole or absent. When the output is
written, ``remove`` deletes the work. Extraction saves a chunk per batch; the CNN hash network a checkpoint per epoch.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

from graphhash.files.atomic import write_bytes


def fingerprint(settings: object, *arrays: np.ndarray) -> str:
    """16 hex digits of the SHA-256 of ``settings`` (JSON, keys sorted) and the bytes of ``arrays``."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for values in arrays:
        digest.update(np.ascontiguousarray(values).tobytes())
    return digest.hexdigest()[:16]


class Resume:
    """The saved work towards ``output``, for one ``fingerprint``.

    ``clean`` removes the work of other fingerprints: only one process of several sharing the folder (a rank) may.
    """

    def __init__(self, output: str | Path, fingerprint: str, clean: bool = True):
        output = Path(output)
        self.parent = output.parent / f".{output.name}.resume"
        if clean and self.parent.is_dir():
            for stale in self.parent.iterdir():
                if stale.name != fingerprint:
                    shutil.rmtree(stale, ignore_errors=True)
        self.root = self.parent / fingerprint
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        return self.root / name

    def has(self, name: str) -> bool:
        return self.path(name).is_file()

    def save(self, name: str, data: bytes) -> None:
        write_bytes(self.path(name), data)

    def remove(self) -> None:
        """Delete this work, and the resume folder once nothing else is in it."""
        shutil.rmtree(self.root, ignore_errors=True)
        if self.parent.is_dir() and not any(self.parent.iterdir()):
            self.parent.rmdir()
