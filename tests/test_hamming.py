"""graphhash.hamming against brute-force references written here from its docstring.

Distances come from unpacked bits (np.unpackbits, a count of differing bits, no popcount); rankings from
np.lexsort over (database index, distance), so they share nothing with the library's counting kernel but
the conventions: ascending distance, ties by ascending database index.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from graphhash import hamming as H
from graphhash.errors import GraphhashError
from graphhash.files.codes import pack

SRC = Path(__file__).resolve().parents[1] / "src"


# ---------------------------------------------------------------- references


def ref_distances(query: np.ndarray, database: np.ndarray) -> np.ndarray:
    """(q, n) Hamming distances of packed codes: differing bits of the unpacked codes."""
    a, b = np.unpackbits(query, axis=1), np.unpackbits(database, axis=1)
    return (a[:, None, :] != b[None, :, :]).sum(axis=2)


def ref_ranking(distances: np.ndarray) -> np.ndarray:
    """Each row's database indices in rank order: by distance, then index (lexsort's last key is primary)."""
    index = np.arange(distances.shape[1])
    return np.stack([np.lexsort((index, row)) for row in distances]) if len(distances) else np.zeros((0, 0), int)


def codes(rng, n: int, bits: int, p: float = 0.5) -> np.ndarray:
    return pack(rng.random((n, bits)) < p)


# ---------------------------------------------------------------- words, the one popcount


def test_words_pad_to_whole_words():
    packed = np.array([[0xFF, 0x01, 0x80], [0, 0, 0]], dtype=np.uint8)
    got = H.words(packed)
    assert got.dtype == np.uint64
    assert got.shape == (2, 1)
    assert got.view(np.uint8).tolist() == [[0xFF, 0x01, 0x80, 0, 0, 0, 0, 0], [0] * 8]
    assert H.words(np.zeros((3, 9), np.uint8)).shape == (3, 2)


def test_words_reject_what_is_not_packed_codes():
    with pytest.raises(GraphhashError, match="uint8"):
        H.words(np.zeros((2, 8), dtype=bool))
    with pytest.raises(GraphhashError, match="2-D"):
        H.words(np.zeros(8, dtype=np.uint8))


def test_popcount_is_defined_once_in_the_project():
    """The one popcount kernel: no other module under src/ defines its own."""
    defining = [
        p.relative_to(SRC).as_posix() for p in SRC.rglob("*.py") if re.search(r"def _?popcount\b", p.read_text())
    ]
    assert defining == ["graphhash/hamming.py"]


# ---------------------------------------------------------------- hamming


@pytest.mark.parametrize("bits", [1, 7, 8, 63, 64, 65, 128, 200])
def test_hamming_matches_unpacked_bits(bits):
    rng = np.random.default_rng(bits)
    q, db = codes(rng, 9, bits), codes(rng, 300, bits)
    got = H.hamming(q, db, threads=2)
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, ref_distances(q, db))


def test_hamming_rejects_codes_of_different_widths():
    with pytest.raises(GraphhashError, match="bytes"):
        H.hamming(np.zeros((1, 8), np.uint8), np.zeros((2, 9), np.uint8))


# ---------------------------------------------------------------- top_k


TOP_K_CASES = [
    # (bits, queries, items, k): heavy ties with few bits; more items than one chunk of the kernel; several
    # query blocks on the thread pool; several words; k beyond the database
    (2, 7, 500, 100),
    (3, 5, 2 * H.CHUNK + 37, 3 * H.CHUNK),
    (8, H.QUERY_BLOCK + 9, 200, 17),
    (64, 11, 700, 50),
    (65, 6, 400, 401),
    (130, 6, H.CHUNK + 5, 20),
    (200, 3, 90, 1),
]


@pytest.mark.parametrize(("bits", "queries", "items", "k"), TOP_K_CASES)
def test_top_k_is_the_first_k_of_the_ranking(bits, queries, items, k):
    rng = np.random.default_rng(bits * 1000 + items)
    q, db = codes(rng, queries, bits), codes(rng, items, bits)
    ids, distances = H.top_k(q, db, k)
    distance = ref_distances(q, db)
    expected = ref_ranking(distance)[:, : min(k, items)]
    assert ids.dtype == np.int64
    assert distances.dtype == np.int32
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_array_equal(distances, np.take_along_axis(distance, expected, axis=1))


def test_top_k_all_codes_equal_is_database_order():
    q, db = np.zeros((2, 4), np.uint8), np.zeros((50, 4), np.uint8)
    ids, distances = H.top_k(q, db, 10)
    np.testing.assert_array_equal(ids, np.tile(np.arange(10), (2, 1)))
    assert not distances.any()


def test_top_k_does_not_depend_on_threads():
    rng = np.random.default_rng(5)
    q, db = codes(rng, 3 * H.QUERY_BLOCK + 1, 5), codes(rng, 300, 5)
    one, two = H.top_k(q, db, 40, threads=1), H.top_k(q, db, 40, threads=2)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], two[1])


def test_top_k_edges():
    rng = np.random.default_rng(6)
    q, db = codes(rng, 4, 16), codes(rng, 10, 16)
    ids, distances = H.top_k(q, db, 0)
    assert ids.shape == distances.shape == (4, 0)
    ids, _ = H.top_k(q, db[:0], 5)
    assert ids.shape == (4, 0)
    with pytest.raises(GraphhashError, match="k must be"):
        H.top_k(q, db, -1)
    with pytest.raises(GraphhashError, match="threads"):
        H.top_k(q, db, 3, threads=0)


# ---------------------------------------------------------------- rerank


def ref_rerank(query, database, candidates, k):
    """Valid candidates per row sorted by (distance, index) with Python's sort; padded with -1."""
    distance = ref_distances(query, database)
    ids = np.full((len(query), k), -1)
    distances = np.full((len(query), k), -1)
    for i, row in enumerate(candidates):
        ranked = sorted((int(distance[i, j]), int(j)) for j in row if j >= 0)[:k]
        for r, (d, j) in enumerate(ranked):
            ids[i, r], distances[i, r] = j, d
    return ids, distances


@pytest.mark.parametrize(("bits", "k"), [(3, 5), (16, 8), (64, 30), (100, 12), (200, 40)])
def test_rerank_sorts_candidates_by_distance_then_index(bits, k):
    """Shuffled candidates, -1 padding anywhere, rows with fewer valid candidates than k, an empty row."""
    rng = np.random.default_rng(bits)
    q, db = codes(rng, 12, bits), codes(rng, 80, bits)
    candidates = np.stack([rng.permutation(80)[:25] for _ in range(12)])
    candidates[rng.random(candidates.shape) < 0.3] = -1
    candidates[0] = -1
    ids, distances = H.rerank(q, db, candidates, k)
    expected_ids, expected_distances = ref_rerank(q, db, candidates, k)
    assert ids.dtype == np.int64
    assert distances.dtype == np.int32
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_array_equal(distances, expected_distances)
    assert (ids[0] == -1).all()
    assert (distances[0] == -1).all()


def test_rerank_of_every_item_is_top_k():
    """Candidates = the whole database in any order: the result is the evaluator's ranking."""
    rng = np.random.default_rng(11)
    q, db = codes(rng, 20, 4), codes(rng, 60, 4)  # 4 bits: mostly ties
    candidates = np.stack([rng.permutation(60) for _ in range(20)])
    ids, distances = H.rerank(q, db, candidates, 25, threads=2)
    top_ids, top_distances = H.top_k(q, db, 25)
    np.testing.assert_array_equal(ids, top_ids)
    np.testing.assert_array_equal(distances, top_distances)


def test_rerank_rejects_bad_candidates():
    q, db = np.zeros((2, 1), np.uint8), np.zeros((5, 1), np.uint8)
    with pytest.raises(GraphhashError, match="database indices"):
        H.rerank(q, db, np.array([[0, 5], [1, 2]]), 2)
    with pytest.raises(GraphhashError, match="database indices"):
        H.rerank(q, db, np.array([[0, -2], [1, 2]]), 2)
    with pytest.raises(GraphhashError, match="integer"):
        H.rerank(q, db, np.array([[0.0, 1.0], [1.0, 2.0]]), 2)
    ids, distances = H.rerank(q, db, np.zeros((2, 0), np.int64), 3)
    assert (ids == -1).all()
    assert (distances == -1).all()


# ---------------------------------------------------------------- first_at_distance


def test_first_at_distance_in_database_order():
    rng = np.random.default_rng(12)
    q, db = codes(rng, 8, 6), codes(rng, H.CHUNK + 300, 6)
    distance = ref_distances(q, db)
    tie = rng.integers(0, 7, 8)
    count = rng.integers(0, 40, 8)
    count[0] = 10**6  # more than there are: padded with -1
    got = H.first_at_distance(q, db, tie, count)
    assert got.shape == (8, count.max())
    for i in range(8):
        expected = np.flatnonzero(distance[i] == tie[i])[: count[i]]
        np.testing.assert_array_equal(got[i, : len(expected)], expected)
        assert (got[i, len(expected) :] == -1).all()


# ---------------------------------------------------------------- item_ranks (the evaluator's kernel)


@pytest.mark.parametrize(("bits", "items"), [(2, 300), (5, 2 * H.CHUNK + 11), (64, 1000), (100, H.CHUNK + 3)])
def test_item_ranks_are_ranks_in_the_ranking(bits, items):
    """Chosen items' 1-based ranks, ascending, and the items at each distance; empty and full choices too."""
    rng = np.random.default_rng(items + bits)
    q, db = codes(rng, 6, bits), codes(rng, items, bits)
    lists = [np.flatnonzero(rng.random(items) < f) for f in (0.1, 0.5, 0.0, 1.0)]
    offsets = np.concatenate([[0], np.cumsum([len(x) for x in lists])])
    subset = np.array([0, 1, 2, 3, 0, 1])
    counts, ranks, rank_offsets = H.item_ranks(H.words(q), H.words(db), np.concatenate(lists), offsets, subset)
    distance = ref_distances(q, db)
    rank_of = np.argsort(ref_ranking(distance), axis=1) + 1  # rank_of[i, j]: item j's 1-based rank
    assert counts.shape == (6, 64 * H.words(db).shape[1] + 1)
    for i, s in enumerate(subset):
        np.testing.assert_array_equal(counts[i], np.bincount(distance[i], minlength=counts.shape[1]))
        np.testing.assert_array_equal(ranks[rank_offsets[i] : rank_offsets[i + 1]], np.sort(rank_of[i, lists[s]]))
