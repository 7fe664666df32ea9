"""Data sources: where the items come from, their labels, and how to read one item.

Four sources, chosen by ``prepare.source`` from ``SOURCES``:

- ``digits``: scikit-learn's bundled handwritten digits (1,797 real 8x8 images, 10 classes).
- ``folder``: an image folder with one sub-folder per class.
- ``cifar10``: the CIFAR-10 JPEG layout (``cifar10/{train,test}/<class>/*.jpg``), read from the tar itself
  or from an extracted folder; its own train/test split is the standard retrieval protocol.
- ``npy``: pre-embedded vectors, one folder per class and one ``.npy`` vector per item (the layout of the
  HAGCN public code); these vectors are the features, so no backbone runs.

Item ids are '/'-separated paths relative to the dataset root, so a tar and its extracted folder give the
same ids. Listings are sorted by id, so they never depend on the order the file system returns. An item
that cannot be read (a dangling symbolic link, a loop, no permission) raises ``BadItemError`` naming it, like
one that cannot be decoded, so ``extract.on_bad_image`` decides for both.
"""

from __future__ import annotations

import io
import os
import tarfile
import tokenize
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from graphhash.data.images import IMAGE_EXTENSIONS, BadItemError, decode
from graphhash.errors import GraphhashError

NPY_EXTENSIONS = (".npy",)
NPY_MAGIC = b"\x93NUMPY"


@dataclass(frozen=True)
class Listing:
    """What a source holds: ids sorted, integer labels indexing ``classes``, and its own query split."""

    ids: list[str]
    labels: np.ndarray
    classes: list[str]
    native_query: np.ndarray | None  # True for the dataset's own test items; None when it has no split


class Source(ABC):
    """A dataset at ``path``: list it once, then read any item by id (also from DataLoader worker processes)."""

    holds_vectors = False  # True when items are feature vectors rather than images

    @abstractmethod
    def __init__(self, path: str): ...

    @abstractmethod
    def listing(self) -> Listing: ...

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


# -- storage: files under a folder, or members of a tar -------------------------------------------------


def _is_hidden(path: str) -> bool:
    return any(part.startswith(".") for part in path.split("/"))


class FolderStore:
    """Files under ``root``, addressed by '/'-separated relative paths."""

    def __init__(self, root: Path):
        self.root = root

    def child(self, name: str) -> FolderStore:
        return FolderStore(self.root / name)

    def subdirs(self, rel: str) -> list[str]:
        base = self.root / rel
        return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))

    def files(self, rel: str) -> list[str]:
        """Every non-hidden file below ``rel`` (recursively), relative to the root."""
        found = []
        for dirpath, dirnames, filenames in os.walk(self.root / rel):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            found += [f"{rel_dir}/{f}" for f in filenames if not f.startswith(".")]
        return found

    def read(self, rel: str) -> bytes:
        try:
            return (self.root / rel).read_bytes()
        except OSError as exc:  # a dangling link, a link loop, a folder named like a file, no permission
            raise BadItemError(f"{self.where(rel)}: cannot read: {exc.strerror or type(exc).__name__}") from None

    def where(self, rel: str) -> str:
        return str(self.root / rel)


class TarStore:
    """Members of an uncompressed tar, read by offset without extracting; paths relative to ``prefix``."""

    def __init__(self, tar_path: Path, prefix: str = "", index: tuple[dict, set] | None = None):
        self.tar_path = tar_path
        self.prefix = prefix
        # full member name -> (data offset, size), and the set of folder names (explicit or implied)
        self._files, self._dirs = index if index is not None else self._index(tar_path)

    @staticmethod
    def _index(tar_path: Path) -> tuple[dict[str, tuple[int, int]], set[str]]:
        files, dirs = {}, set()
        try:
            with tarfile.open(tar_path, "r:") as tar:
                for m in tar:
                    name = m.name.removeprefix("./").rstrip("/")  # `tar cf x.tar ./cifar10` names start with ./
                    if m.isfile():
                        files[name] = (m.offset_data, m.size)
                        folder = name.rpartition("/")[0]
                    else:
                        folder = name if m.isdir() else ""
                    while folder and folder not in dirs:  # a folder and its parents (string ops: 60k members)
                        dirs.add(folder)
                        folder = folder.rpartition("/")[0]
        except (OSError, tarfile.TarError) as exc:
            raise GraphhashError(f"{tar_path}: cannot read tar (an uncompressed tar is needed): {exc}") from exc
        return files, dirs

    def child(self, name: str) -> TarStore:
        return TarStore(self.tar_path, f"{self.prefix}{name}/", (self._files, self._dirs))

    def subdirs(self, rel: str) -> list[str]:
        base = f"{self.prefix}{rel}/" if rel else self.prefix
        names = {d[len(base) :].split("/")[0] for d in self._dirs if d.startswith(base)}
        return sorted(n for n in names if n and not n.startswith("."))

    def files(self, rel: str) -> list[str]:
        base = f"{self.prefix}{rel}/"
        return [f[len(self.prefix) :] for f in self._files if f.startswith(base) and not _is_hidden(f)]

    def read(self, rel: str) -> bytes:
        offset, size = self._files[self.prefix + rel]
        with open(self.tar_path, "rb") as f:
            f.seek(offset)
            return f.read(size)

    def where(self, rel: str) -> str:
        return f"{self.tar_path}:{self.prefix}{rel}"


Store = FolderStore | TarStore


def _class_folders(store: Store, rel: str, extensions: tuple[str, ...]) -> dict[str, list[str]]:
    """Map each class folder under ``rel`` to its sorted files with one of ``extensions``."""
    classes = store.subdirs(rel)
    if not classes:
        raise GraphhashError(f"{store.where(rel)}: no class folders (expected one sub-folder per class)")
    grouped = {}
    for cls in classes:
        cls_rel = f"{rel}/{cls}" if rel else cls
        files = sorted(f for f in store.files(cls_rel) if f.lower().endswith(extensions))
        if not files:
            raise GraphhashError(f"{store.where(cls_rel)}: class folder has no files ending in {', '.join(extensions)}")
        grouped[cls] = files
    return grouped


def _listing(grouped: dict[str, list[str]], native_query: set[str] | None = None) -> Listing:
    classes = sorted(grouped)
    pairs = sorted((f, label) for label, cls in enumerate(classes) for f in grouped[cls])
    ids = [f for f, _ in pairs]
    labels = np.array([label for _, label in pairs], dtype=np.int64)
    query = None if native_query is None else np.array([f in native_query for f in ids], dtype=bool)
    return Listing(ids=ids, labels=labels, classes=classes, native_query=query)


# -- the four sources -----------------------------------------------------------------------------------


class DigitsSource(Source):
    """scikit-learn's bundled digits; grey levels 0..16 become dark ink on white paper (``path`` is unused)."""

    def __init__(self, path: str = "") -> None:
        from sklearn.datasets import load_digits

        digits = load_digits()
        self._images = digits.images.astype(np.uint8)  # values 0..16, exact in uint8
        self._labels = digits.target.astype(np.int64)

    def listing(self) -> Listing:
        ids = [f"digits/{i:04d}" for i in range(len(self._labels))]
        return Listing(ids=ids, labels=self._labels, classes=[str(c) for c in range(10)], native_query=None)

    def _index(self, item_id: str) -> int:
        return int(item_id.split("/")[1])

    def read(self, item_id: str) -> bytes:
        return self._images[self._index(item_id)].tobytes()

    def where(self, item_id: str) -> str:
        return f"sklearn digits #{self._index(item_id)}"

    def image(self, item_id: str) -> Image.Image:
        ink = self._images[self._index(item_id)].astype(np.float64) / 16.0
        grey = np.round(255.0 * (1.0 - ink)).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")


class FolderSource(Source):
    """An image folder: ``<path>/<class>/**/*.{jpg,jpeg,png,bmp,webp}``."""

    extensions = IMAGE_EXTENSIONS

    def __init__(self, path: str):
        root = Path(path)
        if not root.is_dir():
            raise GraphhashError(f"prepare.path: {path!r} is not a folder")
        self.store = FolderStore(root)

    def listing(self) -> Listing:
        return _listing(_class_folders(self.store, "", self.extensions))

    def read(self, item_id: str) -> bytes:
        return self.store.read(item_id)

    def where(self, item_id: str) -> str:
        return self.store.where(item_id)


class NpySource(FolderSource):
    """Pre-embedded vectors: ``<path>/<class>/*.npy``, each of shape (D,) or (1, D), finite."""

    extensions = NPY_EXTENSIONS
    holds_vectors = True

    def image(self, item_id: str) -> Image.Image:
        raise NotImplementedError("source 'npy' holds vectors, not images")

    def vector(self, item_id: str) -> np.ndarray:
        where, data = self.where(item_id), self.read(item_id)
        if not data.startswith(NPY_MAGIC):
            raise BadItemError(f"{where}: not a .npy array (no NumPy header)")
        try:
            array = np.load(io.BytesIO(data), allow_pickle=False)
        except (OSError, ValueError, EOFError, tokenize.TokenError) as exc:  # TokenError: a garbled v1 header
            reason = "it holds Python objects" if "allow_pickle" in str(exc) else "damaged header or data"
            raise BadItemError(f"{where}: cannot read the .npy array: {reason}") from None
        if array.ndim == 2 and array.shape[0] == 1:
            array = array[0]
        if array.ndim != 1 or not np.issubdtype(array.dtype, np.number) or array.size == 0:
            raise BadItemError(f"{where}: expected a numeric vector of shape (D,) or (1, D), got {array.dtype} "
                               f"{array.shape}")  # fmt: skip
        if not np.isfinite(array).all():
            raise BadItemError(f"{where}: the vector holds {int((~np.isfinite(array)).sum())} NaN or infinite values")
        return array.astype(np.float32)


class Cifar10Source(Source):
    """CIFAR-10 as JPEG files: ``cifar10/{train,test}/<class>/*.jpg``, from the tar or an extracted folder."""

    def __init__(self, path: str):
        p = Path(path)
        if p.is_file():
            if not tarfile.is_tarfile(p):
                raise GraphhashError(f"prepare.path: {path!r} is a file but not a tar")
            self.store: Store = TarStore(p)
        elif p.is_dir():
            self.store = FolderStore(p)
        else:
            raise GraphhashError(f"prepare.path: {path!r} is neither the CIFAR-10 tar nor a folder")
        if "cifar10" in self.store.subdirs(""):
            self.store = self.store.child("cifar10")
        missing = [s for s in ("train", "test") if s not in self.store.subdirs("")]
        if missing:
            where = self.store.where("")
            raise GraphhashError(f"{where}: not the CIFAR-10 layout: no {' or '.join(missing)} folder")

    def listing(self) -> Listing:
        train = _class_folders(self.store, "train", IMAGE_EXTENSIONS)
        test = _class_folders(self.store, "test", IMAGE_EXTENSIONS)
        if sorted(train) != sorted(test):
            raise GraphhashError(f"{self.store.where('')}: train and test hold different class folders")
        grouped = {cls: train[cls] + test[cls] for cls in train}
        return _listing(grouped, native_query={f for files in test.values() for f in files})

    def read(self, item_id: str) -> bytes:
        return self.store.read(item_id)

    def where(self, item_id: str) -> str:
        return self.store.where(item_id)


SOURCES: dict[str, type[Source]] = {
    "digits": DigitsSource,
    "folder": FolderSource,
    "cifar10": Cifar10Source,
    "npy": NpySource,
}


def open_source(name: str, path: str) -> Source:
    """The source ``name`` (a key of ``SOURCES``) reading from ``path`` (ignored by ``digits``)."""
    return SOURCES[name](path)
