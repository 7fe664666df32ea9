"""Write files so that a reader never sees a half-written one: temporary file, then rename."""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; on success rename it onto ``dest``, on error delete it.

    The temporary file lives in the same folder so that ``os.replace`` is an atomic rename.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb") as f:  # make the bytes durable before they become visible
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(dest: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as JSON atomically, with sorted keys so equal content gives equal bytes."""
    with atomic_path(dest) as tmp:
        tmp.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def write_csv(dest: str | os.PathLike, rows: list[dict[str, Any]]) -> None:
    """Write rows of equal keys as a CSV file with a header, atomically."""
    columns = list(rows[0]) if rows else []
    lines = [",".join(columns)] + [",".join(f"{row[c]:.6g}" if isinstance(row[c], float) else str(row[c])
                                            for c in columns) for row in rows]  # fmt: skip
    with atomic_path(dest) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_state_dict(dest: str | os.PathLike, state: dict) -> None:
    """``torch.save`` a state dict atomically, with bytes that do not depend on the file's name.

    torch.save names the archive's root folder after the file it writes to; saving through a buffer
    names it ``archive`` whatever the temporary file is called, so equal weights give equal bytes.
    """
    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_path(dest) as tmp:
        tmp.write_bytes(buffer.getvalue())
