"""The changes file: every ``graphhash add`` and ``graphhash remove`` made to a run's database, in order.

One JSON object per line after a comment line, in a file git tracks (``data/changes.jsonl``, ``vars.paths.changes``
in dvc.yaml) and the pipeline declares as an input of the ``additions`` and ``index`` stages, so ``dvc status``
shows what a change left to rebuild and ``dvc repro`` rebuilds it::

    {"batch": 1, "id": "new/cat.jpg", "modality": "image", "op": "add", "path": "new/cat.jpg", "sha256": "9f2c..."}
    {"id": "digits/0042", "op": "remove"}

- ``add``: an item joins the database after every item before it. ``batch`` numbers the ``graphhash add`` that
  added it (its features are ``batch-<n>.h5`` of the additions folder), ``path`` is where its file is (relative
  to the repository when inside it, as every path of the pipeline), ``sha256`` the digest of its bytes. An item of
  features rather than an image (``graphhash add --vectors``: one modality of a paired run) is ``row`` of the
  ``.npy`` matrix at ``path``, and ``sha256`` the digest of that row's float32 bytes.
- ``remove``: an item leaves the database: an addition, or an item of the pipeline's own database.

A change's number (from 1, in the file's order) is its *serial*: an addition is known by it in the index files, so
that an item added, removed and added again is the later addition, at the end of the database. The file is rewritten
whole by a rename (``graphhash.files.atomic``): a reader sees every line of one change or none.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from graphhash.errors import GraphhashError
from graphhash.files.atomic import write_text

OPS = ("add", "remove")
HEADER = "# graphhash's database changes: one JSON object per line, in order (graphhash add, graphhash remove)\n"
ADD_FIELDS = ("batch", "id", "modality", "path", "sha256")


@dataclass(frozen=True)
class Change:
    op: str  # add | remove
    id: str
    batch: int = 0  # add: which graphhash add
    modality: str = ""  # add: what the item holds
    path: str = ""  # add: its file
    sha256: str = ""  # add: its bytes' digest
    row: int = -1  # add: a row of the .npy matrix at path (an item of features); -1: an image file

    def line(self) -> str:
        fields = asdict(self) if self.op == "add" else {"op": self.op, "id": self.id}
        if fields.get("row", 0) < 0:  # an image: no row
            del fields["row"]
        return json.dumps(fields, sort_keys=True, ensure_ascii=False)


@dataclass(frozen=True)
class Addition:
    """An item in the database by a change: its serial (the line that added it) and that change."""

    serial: int
    change: Change


@dataclass(frozen=True)
class State:
    """The database's changes, netted: the additions still in it, in the order they were added, and the items of the
    pipeline's database taken out."""

    additions: dict[str, Addition]  # by id, in the order they were added
    removed: frozenset[str]
    batches: int  # the last batch number used


def read_changes(path: str | Path) -> list[Change]:
    """The changes in ``path`` in order (no file: none); a line that is not a change is one line naming it."""
    path = Path(path)
    if not path.exists():
        return []
    changes = []
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip() or text.startswith("#"):
            continue
        try:
            raw = json.loads(text)
            if not isinstance(raw, dict) or raw.get("op") not in OPS or not isinstance(raw.get("id"), str):
                raise ValueError('not {"op": "add" or "remove", "id": ...}')
            if raw["op"] == "add":
                missing = [key for key in ADD_FIELDS if key not in raw]
                if missing:
                    raise ValueError(f"an add without {', '.join(missing)}")
                change = Change(op="add", id=raw["id"], batch=int(raw["batch"]), modality=str(raw["modality"]),
                                path=str(raw["path"]), sha256=str(raw["sha256"]),
                                row=int(raw.get("row", -1)))  # fmt: skip
            else:
                change = Change(op="remove", id=raw["id"])
        except (ValueError, TypeError) as exc:
            raise GraphhashError(f"{path}:{number}: not a change ({exc}); fix or remove the line") from None
        changes.append(change)
    return changes


def write_changes(path: str | Path, changes: list[Change]) -> None:
    write_text(path, HEADER + "".join(change.line() + "\n" for change in changes))


def net(changes: list[Change]) -> State:
    """What ``changes`` leave: an item added and later removed is gone; a removal of an item that is not an addition
    takes out an item of the pipeline's database."""
    live: dict[str, Addition] = {}
    removed: set[str] = set()
    for serial, change in enumerate(changes, start=1):
        if change.op == "add":
            live.pop(change.id, None)
            live[change.id] = Addition(serial, change)
        elif change.id in live:
            del live[change.id]
        else:
            removed.add(change.id)
    in_order = dict(sorted(live.items(), key=lambda pair: pair[1].serial))
    return State(in_order, frozenset(removed), max((c.batch for c in changes), default=0))


@contextmanager
def locked(path: str | Path, *, wait: bool) -> Iterator[None]:
    """Hold the lock of the changes file ``path`` (a ``.<name>.lock`` file beside it): one change at a time, across
    processes. ``wait``: queue behind a change in progress; otherwise refuse at once, in one line."""
    path = Path(path)
    lock = path.parent / f".{path.name}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise GraphhashError(f"{path}: another add or remove is changing the database; run this one when it "
                                 "has finished") from None  # fmt: skip
        yield
    finally:
        os.close(fd)  # releases the lock
