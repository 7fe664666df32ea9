"""Data sources: where the items come from, their labels, and how to read one item.

Eight sources, chosen by ``prepare.source`` from ``SOURCES`` (``open_source`` opens one); each is a ``Source``
(``base.py``, with its ``Listing``), in a module of this package by what its items are:

- ``images.py``: ``digits``, scikit-learn's bundled handwritten digits (1,797 real 8x8 images, 10 classes);
  ``folder``, an image folder with one sub-folder per class; ``cifar10``, the CIFAR-10 JPEG layout
  (``cifar10/{train,test}/<class>/*.jpg``), read from the tar itself or from an extracted folder; its own
  train/test split is the standard retrieval protocol.
- ``vectors.py``: ``npy``, pre-embedded vectors, one folder per class and one ``.npy`` vector per item (the layout
  of the HAGCN public code); these vectors are the features, so no backbone runs. ``synthetic``, a labelled
  Gaussian mixture generated on demand from ``prepare.synthetic`` (items, dimension, classes, noise, seed),
  feature-only like ``npy``: for scale tests of every stage after ``extract``. Its path is that sub-section
  written out (``items=10000,dimension=1280,...``), which the manifest records, so later stages reopen the same
  mixture.
- ``paired.py``: ``paired``, ``wiki`` and ``mirflickr_tags``, paired, feature-only data read by
  ``graphhash.data.paired``: a user's own features of any modalities (``paired``: one ``<modality>.npy`` matrix
  each in a folder with ``ids.txt``, or one HDF5 file of the same datasets; optional labels and queries of its
  own), the Wikipedia image-text pairs (two modalities, ``image`` and ``text``; its test pairs are the queries)
  and MIRFlickr-25K's tags (one modality, ``tags``, with 24 labels per item as a multi-label matrix).

Files under a folder or in a tar are read through ``graphhash.data.storage`` (``FolderStore``, ``TarStore``).

Every item holds one vector or image per **modality** (``Source.modalities``, ``image`` for every single-modality
source but MIRFlickr's tags; ``paired``'s are named by its files); the features file holds one matrix per modality.
**Labels** are one class per item, (N,) int64, or a 0/1 matrix (N, L) of bool for multi-label data, where
relevance is a shared label.

Item ids are '/'-separated paths relative to the dataset root, so a tar and its extracted folder give the same ids
(``paired``: the ids its layout lists). Listings are sorted by id, so they never depend on the order the file
system returns. An item that cannot be read (a dangling symbolic link, a loop, no permission) raises
``BadItemError`` naming it, like one that cannot be decoded, so ``extract.on_bad_image`` decides for both.
"""

from __future__ import annotations

from graphhash.data.sources.base import Listing, Source
from graphhash.data.sources.images import Cifar10Source, DigitsSource, FolderSource
from graphhash.data.sources.paired import MirflickrTagsSource, PairedFeaturesSource, WikiSource
from graphhash.data.sources.vectors import NpySource, SyntheticSource

__all__ = ["SOURCES", "Listing", "Source", "SyntheticSource", "open_source"]

SOURCES: dict[str, type[Source]] = {
    "digits": DigitsSource,
    "folder": FolderSource,
    "cifar10": Cifar10Source,
    "npy": NpySource,
    "synthetic": SyntheticSource,
    "wiki": WikiSource,
    "mirflickr_tags": MirflickrTagsSource,
    "paired": PairedFeaturesSource,
}


def open_source(name: str, path: str) -> Source:
    """The source ``name`` (a key of ``SOURCES``) reading from ``path`` (ignored by ``digits``; a synthetic
    source's mixture, ``SyntheticSource.address``)."""
    return SOURCES[name].open(path)
