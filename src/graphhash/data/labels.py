"""Labels from a file (``prepare.labels: <file>``): the items' ids and their labels, for data whose classes are not
its folders.

The file is a CSV, or a TSV when its name ends in ``.tsv``: one row per item, two fields, the item's id (for a
tree of files, its path relative to ``prepare.path``, '/'-separated) and its label, or for multi-label data its
labels separated by ';' (``beach;dog``). The file is multi-label when any row's labels hold a ';'; an item of a
multi-label file may then have one label, or none (an empty field). A first row whose first field is ``path`` or
``id`` is a header; empty rows and rows starting with ``#`` are skipped.

Against the source's items (``labelled``): a row naming no item, an item listed twice, a row of more than two
fields (several labels written as fields rather than joined by ';') or a single-label row without a label is one
line naming the file and the row; items the file does not list are left out of the run (counted in the manifest's
``left_out`` and logged), and a file that lists none of them is refused.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graphhash.data.sources.base import Listing
from graphhash.errors import GraphhashError

HEADERS = ("path", "id")  # a first field that makes the first row a header
SEPARATOR = ";"  # between the labels of one item


@dataclass(frozen=True)
class LabelsFile:
    """A labels file as read: each id's labels and its row number (1-based, for messages), in file order."""

    path: str
    labels: dict[str, tuple[str, ...]]
    rows: dict[str, int]
    multi: bool


def _records(path: Path) -> Iterator[tuple[int, list[str]]]:
    """The file's (row number, fields), empty and comment rows skipped."""
    delimiter = "\t" if path.name.lower().endswith(".tsv") else ","
    with path.open(newline="", encoding="utf-8-sig") as f:  # utf-8-sig: a spreadsheet's byte-order mark is dropped
        for number, fields in enumerate(csv.reader(f, delimiter=delimiter), start=1):
            if not fields or not "".join(fields).strip() or fields[0].lstrip().startswith("#"):
                continue
            yield number, [field.strip() for field in fields]


def read_labels_file(path: str | Path) -> LabelsFile:
    """The labels file at ``path`` (see the module's text); one-line errors name the file and the row."""
    path = Path(path)
    if not path.is_file():
        raise GraphhashError(f"prepare.labels: {str(path)!r} is not a file (folders, none, or a CSV or TSV file)")
    labels: dict[str, tuple[str, ...]] = {}
    rows: dict[str, int] = {}
    multi = False
    try:
        for number, fields in _records(path):
            if not rows and not labels and fields[0].lower() in HEADERS:
                continue
            if len(fields) != 2:
                why = f"the item's id, then its labels; several go in one field, separated by '{SEPARATOR}'"
                raise GraphhashError(f"{path}: row {number} has {len(fields)} fields, expected 2 ({why})")
            item_id, field = fields
            if item_id in rows:
                raise GraphhashError(f"{path}: {item_id!r} is listed twice (rows {rows[item_id]} and {number})")
            multi = multi or SEPARATOR in field
            labels[item_id] = tuple(label.strip() for label in field.split(SEPARATOR) if label.strip())
            rows[item_id] = number
    except (UnicodeDecodeError, csv.Error) as exc:
        raise GraphhashError(f"{path}: not a UTF-8 CSV or TSV file ({exc})") from None
    if not labels:
        raise GraphhashError(f"{path}: lists no items")
    if not multi:
        empty = next((item_id for item_id, found in labels.items() if not found), None)
        if empty is not None:
            raise GraphhashError(f"{path}: row {rows[empty]} ({empty!r}) has no label")
    return LabelsFile(str(path), labels, rows, multi)


def labelled(listing: Listing, file: LabelsFile, root: str) -> Listing:
    """``listing`` (unlabelled) with the labels of ``file``: single-label files give int classes, multi-label ones a
    bool matrix over every label named; the items the file does not list are left out. ``root``: where the items
    are, for messages."""
    known = set(listing.ids)
    unknown = [item_id for item_id in file.labels if item_id not in known]
    if unknown:
        first = min(unknown, key=file.rows.__getitem__)
        raise GraphhashError(f"{file.path}: {len(unknown):,} of its {len(file.labels):,} rows name no item under "
                             f"{root} (the first, row {file.rows[first]}: {first!r}); an id is a file's path "
                             "relative to prepare.path ('/'-separated), or a paired layout's id")  # fmt: skip
    kept = [i for i, item_id in enumerate(listing.ids) if item_id in file.labels]
    left_out = dict(listing.left_out)
    if len(kept) < len(listing.ids):
        left_out[f"not listed in {file.path}"] = len(listing.ids) - len(kept)
    ids = [listing.ids[i] for i in kept]
    classes = sorted({label for item_id in ids for label in file.labels[item_id]})
    column = {label: c for c, label in enumerate(classes)}
    if file.multi:
        labels = np.zeros((len(ids), len(classes)), dtype=bool)
        for row, item_id in enumerate(ids):
            labels[row, [column[label] for label in file.labels[item_id]]] = True
    else:
        labels = np.array([column[file.labels[item_id][0]] for item_id in ids], dtype=np.int64)
    query = None if listing.native_query is None else listing.native_query[kept]
    return Listing(ids=ids, labels=labels, classes=classes, native_query=query, left_out=left_out)
