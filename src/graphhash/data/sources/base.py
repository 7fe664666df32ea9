"""What every source is (``Source``) and what its listing holds (``Listing``), with the helpers that list a tree
of files (``tree_files``) or of class folders (``class_folders``, ``make_listing``), shared by the folder, CIFAR-10
and npy sources.

**Unlabelled items** are a multi-label matrix with no columns: labels (N, 0) bool, no classes. Every query then has
no relevant item by labels, so the evaluate stage writes the label-free metrics only, and sizes count items in all
(``graphhash.data.split``)."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from graphhash.data.images import decode
from graphhash.data.storage import Store
from graphhash.errors import GraphhashError
from graphhash.files.hdf5 import no_labels


@dataclass(frozen=True)
class Listing:
    """What a source holds: ids sorted, labels (integer classes indexing ``classes``, or a (N, L) bool matrix whose
    columns are the ``classes``), and its own query split."""

    ids: list[str]
    labels: np.ndarray
    classes: list[str]
    native_query: np.ndarray | None  # True for the dataset's own test items; None when it has no split
    left_out: dict[str, int] = field(default_factory=dict)  # files seen and not listed: {why: how many}

    def unlabelled(self) -> Listing:
        """The same items without labels (``prepare.labels: none``)."""
        return Listing(
            ids=self.ids,
            labels=no_labels(len(self.ids)),
            classes=[],
            native_query=self.native_query,
            left_out=self.left_out,
        )


class Source(ABC):
    """A dataset at ``path``: list it once, then read any item by id (also from DataLoader worker processes)."""

    holds_vectors = False  # True when items are feature vectors rather than images
    reads_path = True  # False when ``prepare.path`` is unused (the data is bundled or generated)
    modalities: tuple[str, ...] = ("image",)  # what each item holds, one vector or image per modality

    @abstractmethod
    def __init__(self, path: str): ...

    @classmethod
    def open(cls, path: str) -> Source:
        """The source at ``path``, the path the manifest records (a synthetic source reads its mixture from it)."""
        return cls(path)

    @abstractmethod
    def listing(self) -> Listing:
        """Every item with the source's own labels (for a tree of files: its class folders)."""

    def unlabelled(self) -> Listing:
        """Every item, without labels (``prepare.labels: none``, or before a labels file gives them): for a tree of
        files, every file of the source's kind found at any depth; for any other source its listing, labels
        dropped."""
        return self.listing().unlabelled()

    @abstractmethod
    def read(self, item_id: str) -> bytes:
        """The item's raw bytes (what the manifest's content digest covers); BadItemError when unreadable."""

    @abstractmethod
    def where(self, item_id: str) -> str:
        """A human-readable location of the item, for error messages."""

    def image(self, item_id: str) -> Image.Image:
        return decode(self.read(item_id), self.where(item_id))

    def vector(self, item_id: str) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} holds images, not vectors")

    def vectors(self, item_id: str) -> tuple[np.ndarray, ...]:
        """The item's float32 vector in each modality, in ``modalities`` order (a vector source's)."""
        return (self.vector(item_id),)


def tree_files(store: Store, rel: str, extensions: tuple[str, ...]) -> tuple[list[str], int]:
    """The sorted files under ``rel``, at any depth, whose names end in one of ``extensions`` (any case), and how
    many other files there are. Hidden files and folders (a name starting with a dot: ``.DS_Store``, macOS's
    ``._photo.jpg``) are not seen at all (``storage.is_hidden``); a name that is not UTF-8 is one line."""
    found = store.files(rel)
    for name in found:
        _require_utf8(store, name)
    files = sorted(f for f in found if f.lower().endswith(extensions))
    return files, len(found) - len(files)


def every_file(store: Store, extensions: tuple[str, ...]) -> Listing:
    """The unlabelled listing of a tree of files: every file of one of ``extensions`` at any depth, ids relative
    to the root. An empty tree, or one without such files, is one line."""
    root, kinds = store.where(""), ", ".join(extensions)
    files, others = tree_files(store, "", extensions)
    if not files:
        held = f"holds {others:,} files, none ending in {kinds}" if others else "holds no files"
        raise GraphhashError(f"{root}: {held}")
    left_out = {f"not ending in {kinds}": others} if others else {}
    return Listing(ids=files, labels=no_labels(len(files)), classes=[], native_query=None, left_out=left_out)


def class_folders(store: Store, rel: str, extensions: tuple[str, ...]) -> tuple[dict[str, list[str]], Counter]:
    """Map each class folder under ``rel`` to its sorted files with one of ``extensions`` (at any depth below it),
    and count the files left out, by why: beside the class folders (in no class), or of another kind
    (``tree_files``)."""
    classes = store.subdirs(rel)
    if not classes:
        raise GraphhashError(f"{store.where(rel)}: no class folders (expected one sub-folder per class); for images "
                             "without classes set prepare.labels: none, or give their labels in a file "
                             "(prepare.labels: labels.csv)")  # fmt: skip
    kinds = ", ".join(extensions)
    left_out: Counter = Counter()
    beside = [f for f in store.files(rel) if "/" not in f.removeprefix(f"{rel}/" if rel else "")]
    if beside:
        left_out["beside the class folders, in no class"] += len(beside)
    grouped = {}
    for cls in classes:
        cls_rel = f"{rel}/{cls}" if rel else cls
        _require_utf8(store, cls_rel)
        files, others = tree_files(store, cls_rel, extensions)
        if not files:
            raise GraphhashError(f"{store.where(cls_rel)}: class folder has no files ending in {kinds}")
        if others:
            left_out[f"in class folders, not ending in {kinds}"] += others
        grouped[cls] = files
    return grouped, left_out


def _require_utf8(store: Store, name: str) -> None:
    """Ids are UTF-8 text (the manifest, the HDF5 files): a file name that is not is one line naming it."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # the OS's undecodable bytes, kept by Python as lone surrogates
        shown = os.fsencode(store.where(name)).decode("utf-8", "backslashreplace")
        raise GraphhashError(f"{shown}: the file name is not UTF-8; rename it (e.g. with convmv)") from None


def make_listing(
    grouped: dict[str, list[str]], native_query: set[str] | None = None, left_out: Counter | None = None
) -> Listing:
    """The listing of ``grouped`` (class -> its files), ids sorted; ``native_query``: the dataset's test files;
    ``left_out``: the files not listed, by why."""
    classes = sorted(grouped)
    pairs = sorted((f, label) for label, cls in enumerate(classes) for f in grouped[cls])
    ids = [f for f, _ in pairs]
    labels = np.array([label for _, label in pairs], dtype=np.int64)
    query = None if native_query is None else np.array([f in native_query for f in ids], dtype=bool)
    return Listing(ids=ids, labels=labels, classes=classes, native_query=query, left_out=dict(left_out or {}))
