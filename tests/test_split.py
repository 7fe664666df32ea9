"""Stratified, seeded query / database / train splits."""

from __future__ import annotations

import numpy as np
import pytest

from graphhash.data.split import sample_per_class, split_items
from graphhash.errors import GraphhashError
from graphhash.files.manifest import SPLITS, Split

CLASSES = ["a", "b", "c"]
SIZES = [10, 7, 4]  # items per class
# Interleave the classes so that class members are not contiguous.
LABELS = np.array([label for i in range(max(SIZES)) for label in range(3) if i < SIZES[label]], dtype=np.int64)


def split(seed: int = 0, **kwargs):
    args = {"query_size": 2, "train": "database", "train_size": 3} | kwargs
    return split_items(LABELS, CLASSES, rng=np.random.default_rng(seed), **args)


def per_class(mask: np.ndarray) -> list[int]:
    return np.bincount(LABELS[mask], minlength=len(CLASSES)).tolist()


def test_labels_fixture():
    """The test data holds the class sizes it claims."""
    assert np.bincount(LABELS).tolist() == SIZES


def test_query_and_database_disjoint_and_cover_everything_train_is_database():
    """With train='database': query and database are disjoint, cover all items, and train equals database."""
    s = split(train="database")
    assert isinstance(s, Split)
    assert not (s.query & s.database).any()
    assert (s.query | s.database).all()
    assert np.array_equal(s.train, s.database)
    assert s.train is not s.database  # separate arrays: editing one cannot change the other
    for mask in (s.query, s.database, s.train):
        assert mask.dtype == bool and mask.shape == LABELS.shape


def test_disjoint_train():
    """With train='disjoint': query, database and train are pairwise disjoint and together cover all items."""
    s = split(query_size=1, train="disjoint", train_size=2)
    assert not (s.query & s.database).any()
    assert not (s.query & s.train).any()
    assert not (s.train & s.database).any()
    assert (s.query | s.database | s.train).all()
    assert per_class(s.query) == [1, 1, 1]
    assert per_class(s.train) == [2, 2, 2]
    assert per_class(s.database) == [7, 4, 1]


def test_int_query_size_is_an_exact_count_per_class():
    """An int query_size draws exactly that many queries from every class."""
    assert per_class(split(query_size=3).query) == [3, 3, 3]


def test_float_query_size_is_a_rounded_fraction_per_class():
    """A float query_size draws round(fraction * class size) queries per class: 0.3 of 10, 7, 4 -> 3, 2, 1."""
    assert per_class(split(query_size=0.3).query) == [3, 2, 1]
    assert per_class(split(query_size=0.8).query) == [8, 6, 3]  # 5.6 -> 6, 3.2 -> 3


def test_float_train_size_is_a_fraction_of_the_non_query_items():
    """A float train_size is a fraction of each class's non-query items: 0.5 of 8, 5, 2 -> 4, 2 or 3, 1."""
    s = split(query_size=2, train="disjoint", train_size=0.5)
    counts = per_class(s.train)
    assert counts[0] == 4 and counts[2] == 1
    assert counts[1] in (2, 3)  # 2.5: either rounding is acceptable


def test_same_seed_same_split_other_seed_other_split():
    """Equal seeds give identical masks; another seed gives a different draw."""
    a, b, c = (split(seed=seed, train="disjoint", train_size=1) for seed in (5, 5, 6))
    assert SPLITS == ("query", "database", "train")
    for name in SPLITS:
        assert np.array_equal(getattr(a, name), getattr(b, name))
    # 2 of 10 * 2 of 7 * 2 of 4 queries: a repeat by chance has probability 1 / (45 * 21 * 6)
    assert not np.array_equal(a.query, c.query)


def test_native_query_is_used_as_is():
    """A dataset's own query mask is kept exactly, whatever query_size says."""
    native = np.zeros(len(LABELS), dtype=bool)
    native[[0, 4, 5, 20]] = True
    for train in ("database", "disjoint"):
        s = split(native_query=native, query_size=0.9, train=train, train_size=1)
        assert np.array_equal(s.query, native)
        assert not (s.database & native).any() and not (s.train & native).any()
    s.query[:] = False  # the split owns its masks: changing one leaves the caller's array alone
    assert native.sum() == 4


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"query_size": 5}, "prepare.query_size"),  # class 'c' has 4 items
        ({"query_size": 2, "train": "disjoint", "train_size": 3}, "prepare.train_size"),  # 'c' keeps 2 non-query
    ],
)
def test_count_larger_than_a_class_names_the_param(kwargs, param):
    """Asking more items per class than the smallest class holds is an error naming the param and the class."""
    with pytest.raises(GraphhashError, match=param) as info:
        split(**kwargs)
    assert "'c'" in str(info.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"query_size": 0.01},  # rounds to 0 queries in every class
        {"native_query": np.ones(len(LABELS), dtype=bool)},  # everything is a query: no database
        {"native_query": np.zeros(len(LABELS), dtype=bool)},  # no queries at all
    ],
    ids=["no-query", "no-database", "empty-native-query"],
)
def test_empty_set_is_an_error(kwargs):
    """A split leaving the query, database or train set empty is an error."""
    with pytest.raises(GraphhashError, match="empty"):
        split(**kwargs)


def test_sample_per_class_draws_only_eligible_items():
    """sample_per_class picks `size` items per class, all among the eligible ones."""
    eligible = np.arange(len(LABELS)) % 2 == 0
    picked = sample_per_class(LABELS, eligible, 2, np.random.default_rng(1), CLASSES, "k")
    assert not (picked & ~eligible).any()
    assert per_class(picked) == [2, 2, 2]


def test_sample_per_class_is_random_within_a_class():
    """Across seeds, every member of a class gets drawn sometimes (not always the first ones)."""
    seen = np.zeros(len(LABELS), dtype=bool)
    for seed in range(40):
        seen |= sample_per_class(LABELS, np.ones(len(LABELS), bool), 1, np.random.default_rng(seed), CLASSES, "k")
    # seeds are fixed, so this is deterministic; with 1 of 4 drawn, class c's items each show up w.p. 1 - 0.75**40
    assert seen[LABELS == 2].all()


# Multi-label items: a 0/1 row over the classes each; every item has one or more labels
MULTI = np.random.default_rng(5).random((40, 3)) < 0.4
MULTI[~MULTI.any(axis=1), 0] = True


def test_multi_label_sizes_count_items_in_all_drawn_uniformly():
    """A count is that many queries (a fraction: of every item), drawn uniformly, seeded; the rest the database."""
    found = split_items(MULTI, CLASSES, rng=np.random.default_rng(0), query_size=7, train="database", train_size=3)
    assert int(found.query.sum()) == 7 and not (found.query & found.database).any()
    assert (found.query | found.database).all() and np.array_equal(found.train, found.database)
    fraction = split_items(MULTI, CLASSES, rng=np.random.default_rng(0), query_size=0.25, train="database",
                           train_size=3)  # fmt: skip
    assert int(fraction.query.sum()) == 10
    again = split_items(MULTI, CLASSES, rng=np.random.default_rng(0), query_size=7, train="database", train_size=3)
    np.testing.assert_array_equal(again.query, found.query)
    drawn = [split_items(MULTI, CLASSES, rng=np.random.default_rng(seed), query_size=7, train="disjoint",
                         train_size=5) for seed in range(40)]  # fmt: skip
    assert all(int(d.train.sum()) == 5 and not (d.train & (d.query | d.database)).any() for d in drawn)
    assert np.mean([d.query for d in drawn], axis=0).min() > 0  # every item is drawn by some seed


def test_a_multi_label_count_beyond_the_items_names_the_param():
    with pytest.raises(GraphhashError, match=r"prepare\.query_size: 41 exceeds the 40 items of every item"):
        split_items(MULTI, CLASSES, rng=np.random.default_rng(0), query_size=41, train="database", train_size=3)


def test_a_size_that_leaves_a_class_without_database_items_is_one_line_with_the_numbers():
    """Ten class folders of 20 and 20 queries per class: one line saying which class is left with nothing."""
    with pytest.raises(GraphhashError, match=r"^prepare.query_size: 4 queries per class leave class 'c' with 0 of its "
                       r"4 items for the database$"):  # fmt: skip
        split(query_size=4)
    with pytest.raises(GraphhashError, match=r"^prepare.train_size: 0.99 of each class as training items leave class "
                       r"'a' with 0 of its 10 items for the database$"):  # fmt: skip
        split(query_size=0.5, train="disjoint", train_size=0.99)


def test_sample_trains_on_a_seeded_sample_of_the_database_which_stays_whole():
    """train: sample: the database is every non-query item; the training set is train_size per class of it."""
    s = split(query_size=1, train="sample", train_size=2)
    assert (s.query | s.database).all() and not (s.query & s.database).any()
    assert not (s.train & ~s.database).any()
    assert per_class(s.train) == [2, 2, 2]
    assert per_class(s.database) == [9, 6, 3]
    assert np.array_equal(split(query_size=1, train="sample", train_size=2).train, s.train)  # seeded


def test_unlabelled_items_count_sizes_in_all_drawn_uniformly():
    """Unlabelled items (a label matrix of no columns): sizes count items in all, a fraction of every item."""
    labels = np.zeros((50, 0), dtype=bool)
    s = split_items(labels, [], rng=np.random.default_rng(3), query_size=0.1, train="sample", train_size=12)
    assert s.query.sum() == 5 and s.database.sum() == 45 and s.train.sum() == 12
    again = split_items(labels, [], rng=np.random.default_rng(3), query_size=0.1, train="sample", train_size=12)
    assert np.array_equal(again.query, s.query)
    counts = np.zeros(50)  # uniform: over many seeds every item is a query about as often
    for seed in range(400):
        counts += split_items(labels, [], rng=np.random.default_rng(seed), query_size=5, train="database",
                              train_size=0.5).query  # fmt: skip
    assert counts.min() > 10 and counts.max() < 80  # expected 40 each; binomial(400, 0.1) stays within these
