"""The image sources: ``digits`` (scikit-learn's bundled digits), ``folder`` (one sub-folder per class) and
``cifar10`` (the CIFAR-10 JPEG layout, from the tar or an extracted folder)."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from graphhash.data.images import IMAGE_EXTENSIONS
from graphhash.data.sources.base import Listing, Source, class_folders, every_file, make_listing
from graphhash.data.storage import FolderStore, Store, TarStore
from graphhash.errors import GraphhashError


class DigitsSource(Source):
    """scikit-learn's bundled digits; grey levels 0..16 become dark ink on white paper (``path`` is unused)."""

    reads_path = False

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
    """A tree of image files (``*.{jpg,jpeg,png,bmp,webp}`` at any depth under ``path``), ids their paths relative
    to it. Its own labels (``prepare.labels: folders``) are its first-level sub-folders, one per class:
    ``<path>/<class>/**/*.jpg``; unlabelled (``none``, or a labels file), every image file at any depth."""

    extensions = IMAGE_EXTENSIONS

    def __init__(self, path: str):
        root = Path(path)
        if not root.is_dir():
            raise GraphhashError(f"prepare.path: {path!r} is not a folder")
        self.store = FolderStore(root)

    def listing(self) -> Listing:
        grouped, left_out = class_folders(self.store, "", self.extensions)
        return make_listing(grouped, left_out=left_out)

    def unlabelled(self) -> Listing:
        return every_file(self.store, self.extensions)

    def read(self, item_id: str) -> bytes:
        return self.store.read(item_id)

    def where(self, item_id: str) -> str:
        return self.store.where(item_id)


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
        train, train_left_out = class_folders(self.store, "train", IMAGE_EXTENSIONS)
        test, test_left_out = class_folders(self.store, "test", IMAGE_EXTENSIONS)
        if sorted(train) != sorted(test):
            raise GraphhashError(f"{self.store.where('')}: train and test hold different class folders")
        grouped = {cls: train[cls] + test[cls] for cls in train}
        native_query = {f for files in test.values() for f in files}
        return make_listing(grouped, native_query, train_left_out + test_left_out)

    def read(self, item_id: str) -> bytes:
        return self.store.read(item_id)

    def where(self, item_id: str) -> str:
        return self.store.where(item_id)
