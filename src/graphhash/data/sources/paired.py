"""The paired, feature-only sources: ``paired`` (a user's own features of two or more modalities, in a folder of
``.npy`` files or an HDF5 file), ``wiki`` (image-text pairs) and ``mirflickr_tags`` (multi-label tags), each a
``PairedSource`` over a reader of ``graphhash.data.paired``."""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path

import numpy as np
from PIL import Image

from graphhash.data.images import BadItemError
from graphhash.data.paired import PairedSet, read_mirflickr_tags, read_paired, read_wiki
from graphhash.data.sources.base import Listing, Source
from graphhash.errors import GraphhashError


class PairedSource(Source):
    """Feature-only data of one or more named modalities, read whole by a ``graphhash.data.paired`` reader from
    ``path`` (a dataset's folder; for ``paired``, also an HDF5 file): every item is a row of each modality's matrix.
    An item's bytes (what the manifest's digest covers) are its rows in every modality, as float64, then its label
    (nothing for unlabelled items)."""

    holds_vectors = True
    name: str = ""  # the source's key in SOURCES, for messages
    folder_only = True  # False: the reader says itself what ``path`` may be

    def __init__(self, path: str):
        self.path = Path(path)
        if self.folder_only and not self.path.is_dir():
            raise GraphhashError(f"prepare.path: {path!r} is not a folder (the {self.name} dataset's folder)")
        self.data = self.read_paired(self.path)
        self.modalities = tuple(self.data.views)
        self._rows = {item_id: row for row, item_id in enumerate(self.data.ids)}

    @staticmethod
    @abstractmethod
    def read_paired(path: Path) -> PairedSet:
        """The dataset at ``path``, checked (one-line errors naming the file)."""

    def listing(self) -> Listing:
        order = sorted(range(len(self.data.ids)), key=self.data.ids.__getitem__)
        query = None if self.data.query is None else self.data.query[order]
        return Listing(ids=[self.data.ids[i] for i in order], labels=self.data.labels[order],
                       classes=list(self.data.classes), native_query=query)  # fmt: skip

    def _row(self, item_id: str) -> int:
        if item_id not in self._rows:
            raise BadItemError(f"{self.where(item_id)}: no such item in the dataset")
        return self._rows[item_id]

    def where(self, item_id: str) -> str:
        return f"{self.path}: item {item_id}"

    def read(self, item_id: str) -> bytes:
        row = self._row(item_id)
        parts = [np.asarray(view[row], dtype=np.float64).tobytes() for view in self.data.views.values()]
        return b"".join([*parts, np.asarray(self.data.labels[row]).astype(np.int64).tobytes()])

    def image(self, item_id: str) -> Image.Image:
        raise NotImplementedError(f"source '{self.name}' holds feature vectors, not images")

    def vectors(self, item_id: str) -> tuple[np.ndarray, ...]:
        row = self._row(item_id)
        return tuple(np.asarray(view[row], dtype=np.float32) for view in self.data.views.values())


class PairedFeaturesSource(PairedSource):
    """A user's own paired features (``read_paired``): a folder of ``<modality>.npy`` files with ``ids.txt``, or an
    HDF5 file of the same datasets; its own labels and queries when the layout holds them."""

    name = "paired"
    folder_only = False
    read_paired = staticmethod(read_paired)


class WikiSource(PairedSource):
    """The Wikipedia image-text pairs (``read_wiki``): modalities ``image`` and ``text``, the 693 test pairs the
    queries (``prepare.split: auto``)."""

    name = "wiki"
    read_paired = staticmethod(read_wiki)


class MirflickrTagsSource(PairedSource):
    """MIRFlickr-25K's tags (``read_mirflickr_tags``): one modality, ``tags``, with 24 labels per item; no split of
    its own."""

    name = "mirflickr_tags"
    read_paired = staticmethod(read_mirflickr_tags)
