"""Deterministic, stratified query / database / train splits.

The query set and the database are always disjoint. The training set either equals the database (the
standard unsupervised protocol: hash functions are learnt on the items they will index), is carved out
of the non-query items so that it is disjoint from the database, or is a sample of the database (for
collections too large to train on whole: every database item is still hashed and indexed). Sizes are per
class: a count, or a fraction of each class; a size that leaves a class without database items is one line
with the numbers. A dataset's own test split serves as the query set when it has one.

A validation run (``validation_split``), for choosing settings without looking at the test queries, leaves them out
altogether and draws its queries from the database, out of the database and the training set.

Multi-label items (labels an (N, L) 0/1 matrix) belong to several classes at once, so a draw stratified by class
does not apply: their sizes count items in all (a count, or a fraction of every item), drawn uniformly. So do
unlabelled items (a matrix of no columns).
"""

from __future__ import annotations

import numpy as np

from graphhash.errors import GraphhashError
from graphhash.files.manifest import SPLITS, Split


def sample_per_class(
    labels: np.ndarray,
    eligible: np.ndarray,
    size: int | float,
    rng: np.random.Generator,
    classes: list[str],
    key: str,
) -> np.ndarray:
    """Mask of ``size`` items per class drawn at random from the ``eligible`` ones.

    ``size`` is a count per class (int) or a fraction of each class's eligible items (float, rounded).
    Classes are visited in label order so the draw depends only on ``rng``'s seed. Multi-label items: ``size``
    items drawn from every eligible item (a count, or a fraction of them).
    """
    picked = np.zeros(len(labels), dtype=bool)
    if labels.ndim == 2:
        groups = [("every item", np.flatnonzero(eligible))]
    else:
        groups = [
            (f"class '{name}'", np.flatnonzero(eligible & (labels == label))) for label, name in enumerate(classes)
        ]
    for name, members in groups:
        count = size if isinstance(size, int) else round(size * len(members))
        if count > len(members):
            per = "" if labels.ndim == 2 else " per class"
            raise GraphhashError(f"{key}: {size}{per} exceeds the {len(members)} items of {name}")
        picked[rng.permutation(members)[:count]] = True
    return picked


def split_items(
    labels: np.ndarray,
    classes: list[str],
    *,
    rng: np.random.Generator,
    query_size: int | float,
    train: str,
    train_size: int | float,
    native_query: np.ndarray | None = None,
) -> Split:
    """Split items into query, database and train masks (see the module docstring)."""
    everything = np.ones(len(labels), dtype=bool)
    if native_query is not None:
        query = native_query.copy()
    else:
        query = sample_per_class(labels, everything, query_size, rng, classes, "prepare.query_size")
    pool = ~query
    if native_query is None:
        _classes_kept(labels, classes, pool, "prepare.query_size", query_size, "queries")
    if train == "database":
        database, training = pool, pool.copy()
    elif train == "sample":
        database = pool
        training = sample_per_class(labels, database, train_size, rng, classes, "prepare.train_size")
    else:
        training = sample_per_class(labels, pool, train_size, rng, classes, "prepare.train_size")
        database = pool & ~training
        _classes_kept(labels, classes, database, "prepare.train_size", train_size, "training items")
    split = Split(query=query, database=database, train=training)
    for name in SPLITS:
        if not getattr(split, name).any():
            counts = ", ".join(f"{int(getattr(split, part).sum()):,} {part}" for part in SPLITS)
            raise GraphhashError(f"prepare: the {name} set is empty ({len(labels):,} items: {counts}); adjust "
                                 "prepare.query_size or prepare.train_size")  # fmt: skip
    # Invariants of the protocol, checked on every split rather than trusted.
    if (split.query & split.database).any() or (split.query & split.train).any():
        raise AssertionError("split: query items leaked into the database or the training set")
    if train == "disjoint" and (split.train & split.database).any():
        raise AssertionError("split: train and database overlap although prepare.train is 'disjoint'")
    if train == "sample" and (split.train & ~split.database).any():
        raise AssertionError("split: a training item outside the database although prepare.train is 'sample'")
    return split


def _classes_kept(labels: np.ndarray, classes: list[str], database: np.ndarray, key: str, size: int | float,
                  what: str) -> None:  # fmt: skip
    """One line with the numbers when drawing ``size`` ``what`` per class (by ``key``) leaves a class of
    single-label items without database items."""
    if labels.ndim == 2:
        return
    for label, name in enumerate(classes):
        members = labels == label
        if members.any() and not (database & members).any():
            per = f"{size} {what} per class" if isinstance(size, int) else f"{size:g} of each class as {what}"
            raise GraphhashError(
                f"{key}: {per} leave class '{name}' with 0 of its {int(members.sum()):,} items for the database"
            )


def validation_split(split: Split, labels: np.ndarray, size: int | float, rng: np.random.Generator,
                     classes: list[str]) -> Split:  # fmt: skip
    """The split of a validation run over the items of ``split`` that are not its queries (``split.query`` all
    False): ``size`` database items per class (a count or a fraction; multi-label items: in all) become the
    queries, and leave the database and the training set."""
    if split.query.any():
        raise AssertionError("split: a validation split starts from the items that are not test queries")
    query = sample_per_class(labels, split.database, size, rng, classes, "prepare.validation_size")
    validation = Split(query=query, database=split.database & ~query, train=split.train & ~query)
    for name in SPLITS:
        if not getattr(validation, name).any():
            raise GraphhashError(f"prepare: the validation run's {name} set is empty; lower prepare.validation_size")
    return validation
