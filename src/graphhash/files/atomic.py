"""Write files so that a reader never sees a half-written one: a temporary file, then a rename.

Temporary files are named ``.<name>.<random>.tmp`` beside their destination (``os.replace`` is atomic only
within one file system). A run killed mid-write can leave one behind: the next write of the same file
removes it, and ``.dvcignore`` keeps such files out of the hashes DVC takes of folders (``data/codes`` is a
dependency of ``evaluate``), so a stray one never makes a stage look changed.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from graphhash.errors import GraphhashError

TEMPORARY = ".{name}.*.tmp"  # the pattern of the temporary files, also in .dvcignore and .gitignore


class WriteError(GraphhashError):
    """A write the file system refused (a full disk, a file size limit, a read-only folder): the destination is as
    it was, and the temporary file is gone."""


@contextmanager
def atomic_path(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; on success rename it onto ``dest``, on error delete it."""
    dest = Path(dest)
    if dest.is_dir():
        raise GraphhashError(f"{dest}: is a folder; give the path of a file to write")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise GraphhashError(f"{dest}: cannot create its folder: a file is in the way ({exc.filename})") from exc
    for stale in dest.parent.glob(TEMPORARY.format(name=glob.escape(dest.name))):
        stale.unlink(missing_ok=True)  # left by a run killed while writing this file
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb") as f:  # make the bytes durable before they become visible
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except OSError as exc:
        raise WriteError(f"{dest}: cannot write: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_bytes(dest: str | os.PathLike, data: bytes) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def write_text(dest: str | os.PathLike, text: str) -> None:
    write_bytes(dest, text.encode("utf-8"))


def write_json(dest: str | os.PathLike, obj: Any) -> None:
    """``obj`` as JSON, with sorted keys so that equal content gives equal bytes."""
    write_text(dest, json.dumps(obj, indent=1, sort_keys=True) + "\n")


def write_csv(dest: str | os.PathLike, rows: list[dict[str, Any]]) -> None:
    """Rows of equal keys as a CSV file with a header; floats with 6 significant digits."""
    columns = list(rows[0]) if rows else []
    lines = [",".join(columns)] + [",".join(f"{row[c]:.6g}" if isinstance(row[c], float) else str(row[c])
                                            for c in columns) for row in rows]  # fmt: skip
    write_text(dest, "\n".join(lines) + "\n")
