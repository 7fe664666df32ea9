"""The ``prepare`` stage: list a data source, optionally subsample it, split it, and pin its content."""

from __future__ import annotations

import hashlib
import logging

import numpy as np

from graphhash.data.images import BadItemError
from graphhash.data.labels import labelled, read_labels_file
from graphhash.data.sources import Listing, Source, open_source
from graphhash.data.split import split_items, validation_split
from graphhash.errors import GraphhashError
from graphhash.files.manifest import SPLITS, Manifest, Split, no_label_metrics
from graphhash.params.prepare import PrepareParams

log = logging.getLogger(__name__)


def limit_per_class(labels: np.ndarray, groups: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of at most ``limit`` random items per (group, class); all items when ``limit`` is 0.

    ``groups`` keeps a dataset's own train and test parts apart, so each is capped on its own. Multi-label items
    have no one class to count by: a limit on them is refused.
    """
    if limit == 0:
        return np.arange(len(labels))
    if labels.ndim == 2:
        held = "no labels" if labels.shape[1] == 0 else "several labels each"
        raise GraphhashError(f"prepare.limit_per_class: the items have {held}, so there is no class to limit; set it "
                             "to 0")  # fmt: skip
    kept = []
    for group in np.unique(groups):
        for label in np.unique(labels):
            members = np.flatnonzero((groups == group) & (labels == label))
            kept.append(rng.permutation(members)[:limit])
    return np.sort(np.concatenate(kept))


def content_digest(source: Source, ids: list[str]) -> str:
    """SHA-256 over every item's id and bytes, in id order.

    An item that cannot be read (a dangling link, a link loop) contributes its error instead of its bytes:
    it stays in the manifest, and ``extract`` fails on it or skips it, as ``extract.on_bad_image`` says.
    """
    digest = hashlib.sha256()
    for item_id in ids:
        try:
            data = source.read(item_id)
        except BadItemError as exc:
            log.warning("unreadable: %s", exc)
            digest.update(f"{item_id}\0unreadable\0{exc}\0".encode())
            continue
        digest.update(f"{item_id}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def items(source: Source, params: PrepareParams) -> Listing:
    """The source's items labelled as ``prepare.labels`` says: its own labels (``folders``), none, or a labels
    file's (``graphhash.data.labels``)."""
    if params.labels == "folders":
        return source.listing()
    if params.labels == "none":
        return source.unlabelled()
    file = read_labels_file(params.labels)  # checked before the tree is walked
    return labelled(source.unlabelled(), file, params.path or params.source)


def prepare(params: PrepareParams) -> Manifest:
    """Build the manifest described by the ``prepare`` section of ``params.yaml``."""
    path = params.source_path
    source = open_source(params.source, path)
    listing = items(source, params)
    if not listing.ids:
        raise GraphhashError(f"prepare: source '{params.source}' at {path!r} holds no items")
    rng = np.random.default_rng(params.seed)
    native = listing.native_query if params.split == "auto" else None
    groups = np.zeros(len(listing.ids), dtype=bool) if native is None else native
    keep = limit_per_class(listing.labels, groups, params.limit_per_class, rng)
    ids = [listing.ids[i] for i in keep]
    labels = listing.labels[keep]
    split = split_items(
        labels,
        listing.classes,
        rng=rng,
        query_size=params.query_size,
        train=params.train,
        train_size=params.train_size,
        native_query=None if native is None else native[keep],
    )
    if params.validation_size:  # the test queries are left out altogether; validation queries come from the rest
        rest = ~split.query
        ids, labels = [item_id for item_id, kept in zip(ids, rest, strict=True) if kept], labels[rest]
        split = Split(**{name: getattr(split, name)[rest] for name in SPLITS})
        split = validation_split(split, labels, params.validation_size, rng, listing.classes)
    for why, count in listing.left_out.items():
        log.warning("prepare: %d files left out: %s", count, why)
    unlabelled = no_label_metrics(listing.classes)
    if unlabelled:
        log.warning("prepare: %s; evaluate will write no label metrics", unlabelled)
    log.info(
        "%s: %d items, %d classes: %d query, %d database, %d train",
        params.source,
        len(ids),
        len(listing.classes),
        split.query.sum(),
        split.database.sum(),
        split.train.sum(),
    )
    return Manifest(
        source=params.source,
        path=path,
        modalities=list(source.modalities),
        classes=listing.classes,
        ids=ids,
        labels=labels,
        split=split,
        content_sha256=content_digest(source, ids),
        left_out=listing.left_out,
    )
