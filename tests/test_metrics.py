"""Retrieval metrics: graphhash.evaluation.metrics against brute-force references written here from its docstring.

The references work on unpacked boolean codes (distances: differing bits, by NumPy broadcasting), rank with
``sorted`` (ascending distance, ties by ascending database index) and compute every metric with plain loops
per query, so they share nothing with the library but the conventions.
"""

from __future__ import annotations

import numpy as np
import pytest

from graphhash.errors import GraphhashError
from graphhash.evaluation import metrics
from graphhash.files.codes import pack
from graphhash.hamming import CHUNK

RTOL = 1e-9
ATOL = 1e-12


# ---------------------------------------------------------------- references


def ref_hamming(query_bits: np.ndarray, database_bits: np.ndarray) -> np.ndarray:
    """(q, n) Hamming distances from unpacked boolean codes: the number of differing bits."""
    return (query_bits[:, None, :] != database_bits[None, :, :]).sum(axis=2).astype(np.int64)


def ref_relevance(query_labels: np.ndarray, database_labels: np.ndarray) -> np.ndarray:
    """Same class for 1-D labels; at least one shared label for (n, C) 0/1 matrices."""
    if np.ndim(query_labels) == 1:
        return np.asarray(query_labels)[:, None] == np.asarray(database_labels)[None, :]
    return ((query_labels[:, None, :] != 0) & (database_labels[None, :, :] != 0)).any(axis=2)


def ref_rank(dist_row) -> list[int]:
    n = len(dist_row)
    return sorted(range(n), key=lambda j: (dist_row[j], j))


def ref_ap(rel_ranked: list[bool], k: int) -> float:
    """AP@k = (1 / R_k) * sum_{i <= k} rel_i * P@i; 0 when R_k = 0."""
    hits, total = 0, 0.0
    for i, rel in enumerate(rel_ranked[:k], start=1):
        if rel:
            hits += 1
            total += hits / i
    return total / hits if hits else 0.0


def ref_evaluate(query_bits, database_bits, query_labels, database_labels, bits, map_at, radius, precision_at,
                 rel=None):  # fmt: skip
    """Every metric of metrics.evaluate, brute force, from unpacked codes; ``rel`` (q, n): the relevance, in place
    of the labels'."""
    dist = ref_hamming(query_bits, database_bits)
    rel = ref_relevance(query_labels, database_labels) if rel is None else rel
    q, n = dist.shape
    out = {"map@all": 0.0, **{f"map@{k}": 0.0 for k in map_at}, **{f"p@{k}": 0.0 for k in precision_at},
           **{f"recall@{k}": 0.0 for k in precision_at}}  # fmt: skip
    prec_r = [0.0] * (bits + 1)
    rec_r = [0.0] * (bits + 1)
    rank_prec = [0.0] * len(metrics.RECALL_GRID)
    for i in range(q):
        order = ref_rank(dist[i].tolist())
        ranked = [bool(rel[i, j]) for j in order]
        n_rel = sum(ranked)
        out["map@all"] += ref_ap(ranked, n)
        for k in map_at:
            out[f"map@{k}"] += ref_ap(ranked, k)
        for k in precision_at:
            top = ranked[: min(k, n)]
            out[f"p@{k}"] += sum(top) / len(top)
            out[f"recall@{k}"] += sum(top) / n_rel if n_rel else 0.0
        for r in range(bits + 1):
            ball = dist[i] <= r
            found = int((ball & rel[i]).sum())
            prec_r[r] += found / int(ball.sum()) if ball.any() else 0.0
            rec_r[r] += found / n_rel if n_rel else 0.0
        if n_rel:
            for li, level in enumerate(metrics.RECALL_GRID):
                hits = 0
                for rank, relevant in enumerate(ranked, start=1):
                    hits += relevant
                    if hits / n_rel >= level:
                        rank_prec[li] += hits / rank
                        break
    out = {key: value / q for key, value in out.items()}
    rr = min(radius, bits)
    p, r = prec_r[rr] / q, rec_r[rr] / q
    out[f"p@r{radius}"] = p
    out[f"r@r{radius}"] = r
    out[f"f1@r{radius}"] = 2 * p * r / (p + r) if p + r > 0 else 0.0
    out["pr_by_radius"] = {
        "radius": list(range(bits + 1)),
        "precision": [v / q for v in prec_r],
        "recall": [v / q for v in rec_r],
    }
    out["pr_by_rank"] = {"recall": list(metrics.RECALL_GRID), "precision": [v / q for v in rank_prec]}
    return out


# ---------------------------------------------------------------- helpers


def run_evaluate(qb, db, ql, dl, bits, map_at=(5, 20), radius=2, precision_at=(1, 10), block_size=128):
    return metrics.evaluate(pack(qb), pack(db), ql, dl, bits, map_at, radius, precision_at, block_size)


def assert_same(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for key, value in want.items():
        if isinstance(value, dict):
            assert set(got[key]) == set(value), key
            for sub, seq in value.items():
                np.testing.assert_allclose(got[key][sub], seq, rtol=RTOL, atol=ATOL, err_msg=f"{key}/{sub}")
        else:
            np.testing.assert_allclose(got[key], value, rtol=RTOL, atol=ATOL, err_msg=key)


def check(qb, db, ql, dl, bits, map_at=(5, 20), radius=2, precision_at=(1, 10), block_size=128) -> dict:
    got = run_evaluate(qb, db, ql, dl, bits, map_at, radius, precision_at, block_size)
    want = ref_evaluate(qb, db, ql, dl, bits, map_at, radius, precision_at)
    assert_same(got, want)
    return got


def random_codes(rng, n, bits, p=0.5):
    return rng.random((n, bits)) < p


# ---------------------------------------------------------------- hamming and relevance


@pytest.mark.parametrize("bits", [1, 5, 8, 13, 63, 64, 65, 100, 128, 200])
def test_hamming_matches_bit_count(bits):
    """hamming on packed codes equals the count of differing unpacked bits, as uint16 (q, n)."""
    rng = np.random.default_rng(bits)
    qb, db = random_codes(rng, 7, bits), random_codes(rng, 11, bits)
    got = metrics.hamming(pack(qb), pack(db))
    assert got.dtype == np.uint16
    assert got.shape == (7, 11)
    np.testing.assert_array_equal(got, ref_hamming(qb, db))


@pytest.mark.parametrize("bits", [13, 100, 128])
def test_hamming_extremes(bits):
    """Identical codes are at 0; complementary codes at exactly `bits` (padding bits never count)."""
    rng = np.random.default_rng(7 + bits)
    codes = random_codes(rng, 4, bits)
    d = metrics.hamming(pack(codes), pack(np.concatenate([codes, ~codes])))
    np.testing.assert_array_equal(np.diag(d[:, :4]), 0)
    np.testing.assert_array_equal(np.diag(d[:, 4:]), bits)


def test_relevance_single_label():
    rng = np.random.default_rng(1)
    ql, dl = rng.integers(0, 4, 9), rng.integers(0, 4, 23)
    got = metrics.relevance(ql, dl)
    assert got.dtype == bool
    np.testing.assert_array_equal(got, ref_relevance(ql, dl))


def test_relevance_multi_label_with_empty_rows():
    """(n, C) 0/1 matrices: at least one shared label; a row with no label is relevant to nothing."""
    rng = np.random.default_rng(2)
    ql = (rng.random((10, 5)) < 0.3).astype(np.int64)
    dl = (rng.random((30, 5)) < 0.3).astype(np.int64)
    ql[0] = 0
    dl[:3] = 0
    got = metrics.relevance(ql, dl)
    assert got.dtype == bool
    np.testing.assert_array_equal(got, ref_relevance(ql, dl))
    assert not got[0].any()
    assert not got[:, :3].any()


def test_relevance_multi_label_hand_example():
    ql = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 0]])
    dl = np.array([[1, 1, 0], [0, 0, 1], [0, 0, 0], [1, 0, 1]])
    expected = [[True, False, False, True], [True, True, False, True], [False, False, False, False]]
    np.testing.assert_array_equal(metrics.relevance(ql, dl), expected)


# ---------------------------------------------------------------- evaluate vs reference, random cases

RANDOM_CASES = [
    (bits, n, seed)
    for seed, (bits, n) in enumerate(
        [(b, n) for b in (1, 5, 8, 13, 64) for n in (1, 2, 7, 40, 300)] + [(5, 123), (13, 77), (64, 199), (8, 256)]
    )
]


@pytest.mark.parametrize(("bits", "n", "seed"), RANDOM_CASES)
def test_evaluate_random_single_label(bits, n, seed):
    rng = np.random.default_rng(1000 + seed)
    q = int(rng.integers(1, 9))
    classes = int(rng.integers(1, 6))
    qb, db = random_codes(rng, q, bits), random_codes(rng, n, bits)
    ql, dl = rng.integers(0, classes, q), rng.integers(0, classes, n)
    radius = int(rng.integers(0, bits + 2))
    check(qb, db, ql, dl, bits, map_at=(1, 5, 50), radius=radius, precision_at=(1, 3, 100), block_size=3)


@pytest.mark.parametrize("seed", range(6))
def test_evaluate_random_correlated_codes(seed):
    """Codes that carry the labels (so metrics are far from chance), with a few flipped bits."""
    rng = np.random.default_rng(2000 + seed)
    bits, n, q, classes = (5, 13, 8, 64, 16, 24)[seed], int(rng.integers(20, 200)), 6, 4
    centres = random_codes(rng, classes, bits)
    dl, ql = rng.integers(0, classes, n), rng.integers(0, classes, q)
    db = centres[dl] ^ random_codes(rng, n, bits, 0.15)
    qb = centres[ql] ^ random_codes(rng, q, bits, 0.15)
    got = check(qb, db, ql, dl, bits, map_at=(10, 50), radius=2, precision_at=(10,))
    assert got["map@all"] > 0.3


# ---------------------------------------------------------------- ties


@pytest.mark.parametrize("bits", [2, 3])
def test_heavy_ties(bits):
    """With 2 or 3 bits nearly every distance ties; ties rank by ascending database index."""
    rng = np.random.default_rng(bits)
    qb, db = random_codes(rng, 10, bits), random_codes(rng, 150, bits)
    ql, dl = rng.integers(0, 3, 10), rng.integers(0, 3, 150)
    check(qb, db, ql, dl, bits, map_at=(1, 10, 100), radius=1, precision_at=(1, 5, 60), block_size=4)


def test_all_identical_codes_rank_by_index():
    """All codes equal: the ranking is the database order, so AP is that of the index order."""
    bits, n = 8, 30
    qb = np.zeros((3, bits), dtype=bool)
    db = np.zeros((n, bits), dtype=bool)
    ql = np.array([0, 1, 2])
    dl = np.arange(n) % 3
    got = check(qb, db, ql, dl, bits, map_at=(3, 10), radius=0, precision_at=(1, 3))
    # query 0 finds relevant items at ranks 1, 4, 7, ...: P@1 = 1 for it, 0 for the other two
    assert got["p@1"] == pytest.approx(1 / 3)
    # the whole database lies in the radius-0 ball: precision 1/3, recall 1
    assert got["p@r0"] == pytest.approx(1 / 3)
    assert got["r@r0"] == pytest.approx(1.0)


def test_tie_break_is_by_database_index_hand_example():
    """One relevant item tied with an irrelevant one: its AP depends only on which index comes first."""
    qb = np.array([[0, 0, 0, 0]], dtype=bool)
    db = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [1, 1, 1, 1]], dtype=bool)  # distances 1, 1, 4
    first = run_evaluate(qb, db, np.array([7]), np.array([7, 0, 0]), 4)
    second = run_evaluate(qb, db, np.array([7]), np.array([0, 7, 0]), 4)
    assert first["map@all"] == pytest.approx(1.0)
    assert second["map@all"] == pytest.approx(0.5)


# ---------------------------------------------------------------- K, N and radius beyond the data


def test_k_and_n_larger_than_database():
    """map@1000 with 50 items is map@all; p@1000 is computed over the n items (relevant / n)."""
    rng = np.random.default_rng(3)
    bits, n = 8, 50
    qb, db = random_codes(rng, 12, bits), random_codes(rng, n, bits)
    ql, dl = rng.integers(0, 4, 12), rng.integers(0, 4, n)
    got = check(qb, db, ql, dl, bits, map_at=(1000,), radius=2, precision_at=(1000,))
    assert got["map@1000"] == pytest.approx(got["map@all"], rel=RTOL)
    relevant_fraction = np.mean([(dl == c).sum() / n for c in ql])
    assert got["p@1000"] == pytest.approx(relevant_fraction, rel=RTOL)


def test_precision_at_n_equal_to_database_size():
    """p@n and p@(n + 1) agree, and both equal the fraction of relevant items."""
    rng = np.random.default_rng(4)
    qb, db = random_codes(rng, 5, 6), random_codes(rng, 20, 6)
    ql, dl = rng.integers(0, 2, 5), rng.integers(0, 2, 20)
    got = check(qb, db, ql, dl, 6, map_at=(20, 21), precision_at=(20, 21))
    assert got["p@20"] == pytest.approx(got["p@21"], rel=RTOL)
    assert got["map@20"] == pytest.approx(got["map@21"], rel=RTOL)


@pytest.mark.parametrize("radius", [5, 6, 50])
def test_radius_at_or_beyond_bits(radius):
    """A radius >= bits retrieves everything; the keys name the radius asked for (p@r50 with 5 bits)."""
    bits = 5
    rng = np.random.default_rng(radius)
    qb, db = random_codes(rng, 6, bits), random_codes(rng, 40, bits)
    ql, dl = rng.integers(0, 3, 6), rng.integers(0, 3, 40)
    ql[0] = 9  # a query with no relevant item: recall 0 for it
    got = check(qb, db, ql, dl, bits, radius=radius)
    assert {f"p@r{radius}", f"r@r{radius}", f"f1@r{radius}"} <= set(got)
    assert got[f"p@r{radius}"] == pytest.approx(np.mean([(dl == c).mean() for c in ql]), rel=RTOL)
    assert got[f"r@r{radius}"] == pytest.approx(5 / 6, rel=RTOL)


def test_empty_radius_balls():
    """Codes far apart and radius 0: every ball is empty, so precision, recall and F1 are all 0."""
    bits = 16
    qb = np.zeros((4, bits), dtype=bool)
    db = np.ones((25, bits), dtype=bool)
    db[:, :3] = False  # distance 13 from every query
    ql, dl = np.array([0, 1, 0, 1]), np.arange(25) % 2
    got = check(qb, db, ql, dl, bits, radius=0)
    assert got["p@r0"] == 0.0
    assert got["r@r0"] == 0.0
    assert got["f1@r0"] == 0.0
    assert got["pr_by_radius"]["precision"][:13] == [0.0] * 13
    assert got["pr_by_radius"]["recall"][13] == pytest.approx(1.0)


def test_some_balls_empty_some_not():
    """Mixed: empty balls count as precision 0 and stay in the mean."""
    rng = np.random.default_rng(5)
    bits = 13
    qb, db = random_codes(rng, 9, bits), random_codes(rng, 15, bits)
    ql, dl = rng.integers(0, 2, 9), rng.integers(0, 2, 15)
    for radius in (0, 1, 2, 3):
        check(qb, db, ql, dl, bits, radius=radius)


# ---------------------------------------------------------------- multi-label


@pytest.mark.parametrize("seed", range(5))
def test_evaluate_multi_label(seed):
    """(n, C) 0/1 label matrices, including rows with no label at all."""
    rng = np.random.default_rng(3000 + seed)
    bits, n, q, c = (5, 8, 13, 64, 3)[seed], int(rng.integers(1, 120)), 7, int(rng.integers(2, 7))
    qb, db = random_codes(rng, q, bits), random_codes(rng, n, bits)
    ql = (rng.random((q, c)) < 0.3).astype(np.int64)
    dl = (rng.random((n, c)) < 0.3).astype(np.int64)
    ql[0] = 0
    dl[: max(1, n // 5)] = 0
    check(qb, db, ql, dl, bits, map_at=(1, 10, 500), radius=int(rng.integers(0, bits + 1)), precision_at=(2, 500))


@pytest.mark.parametrize(("labels", "multi"), [(70, False), (130, True)])
def test_labels_beyond_one_machine_word(labels, multi):
    """More than 64 classes or labels: the label bit sets span several words; long codes too."""
    rng = np.random.default_rng(labels)
    bits, q, n = 200, 9, 150
    qb, db = random_codes(rng, q, bits, p=0.05), random_codes(rng, n, bits, p=0.05)
    if multi:
        ql = (rng.random((q, labels)) < 0.01).astype(np.int64)
        dl = (rng.random((n, labels)) < 0.01).astype(np.int64)
        ql[:, -1], dl[::3, -1] = 1, 1  # sharing only the last label, in the last word, is relevant
    else:
        ql, dl = rng.choice([0, 63, 64, 69], q), rng.choice([0, 63, 64, 69], n)
    check(qb, db, ql, dl, bits, map_at=(10, 100), radius=12, precision_at=(5, 50))


def test_multi_label_equals_single_label_for_one_hot():
    """One-hot label matrices give the same metrics as the class indices."""
    rng = np.random.default_rng(6)
    bits = 8
    qb, db = random_codes(rng, 10, bits), random_codes(rng, 60, bits)
    ql, dl = rng.integers(0, 4, 10), rng.integers(0, 4, 60)
    single = run_evaluate(qb, db, ql, dl, bits)
    multi = run_evaluate(qb, db, np.eye(4, dtype=np.int64)[ql], np.eye(4, dtype=np.int64)[dl], bits)
    assert_same(multi, single)


# ---------------------------------------------------------------- queries without relevant items


def test_query_without_relevant_item_counts_zero():
    """Its AP, recall and rank-PR entries are 0 and it stays in the mean, lowering every average."""
    rng = np.random.default_rng(8)
    bits = 8
    qb, db = random_codes(rng, 5, bits), random_codes(rng, 80, bits)
    ql, dl = rng.integers(0, 3, 5), rng.integers(0, 3, 80)
    base = check(qb, db, ql, dl, bits)
    ql_extra = np.concatenate([ql, [99]])
    qb_extra = np.concatenate([qb, random_codes(rng, 1, bits)])
    extra = check(qb_extra, db, ql_extra, dl, bits)
    for key in ("map@all", "map@5", "map@20", "p@1", "p@10", "r@r2"):
        assert extra[key] == pytest.approx(base[key] * 5 / 6, rel=RTOL), key
    np.testing.assert_allclose(
        extra["pr_by_rank"]["precision"], np.array(base["pr_by_rank"]["precision"]) * 5 / 6, rtol=RTOL
    )


def test_single_query_without_relevant_item():
    qb, db = np.zeros((1, 4), dtype=bool), np.zeros((3, 4), dtype=bool)
    got = check(qb, db, np.array([1]), np.array([0, 0, 0]), 4, radius=4)
    assert got["map@all"] == 0.0
    assert got["pr_by_rank"]["precision"] == [0.0] * len(metrics.RECALL_GRID)


def test_ap_hand_example():
    """Relevant items at ranks 1, 3 and 6 of 6: AP@all = (1 + 2/3 + 3/6) / 3, AP@4 = (1 + 2/3) / 2."""
    bits = 3
    qb = np.zeros((1, bits), dtype=bool)
    db = np.zeros((6, bits), dtype=bool)  # all tie: rank = index
    dl = np.array([1, 0, 1, 0, 0, 1])
    got = run_evaluate(qb, db, np.array([1]), dl, bits, map_at=(4,), precision_at=(3,))
    assert got["map@all"] == pytest.approx((1 + 2 / 3 + 3 / 6) / 3)
    assert got["map@4"] == pytest.approx((1 + 2 / 3) / 2)
    assert got["p@3"] == pytest.approx(2 / 3)
    # recall 1/3 first reached at rank 1, 2/3 at rank 3, 1 at rank 6
    grid = np.asarray(metrics.RECALL_GRID)
    expected = np.where(grid <= 1 / 3 + 1e-12, 1.0, np.where(grid <= 2 / 3 + 1e-12, 2 / 3, 0.5))
    np.testing.assert_allclose(got["pr_by_rank"]["precision"], expected, rtol=RTOL)


def test_recall_level_reached_exactly_despite_float_rounding():
    """With 100 relevant items, 0.55 * 100 is 55.000000000000007 in floats: recall 0.55 is still reached at
    the 55th relevant item, not the 56th."""
    bits, n = 4, 300
    qb = np.zeros((1, bits), dtype=bool)
    db = np.zeros((n, bits), dtype=bool)  # all tie: rank = index
    rng = np.random.default_rng(13)
    dl = np.zeros(n, dtype=np.int64)
    dl[np.sort(rng.choice(n, 100, replace=False))] = 1
    got = check(qb, db, np.array([1]), dl, bits)
    rank_of_55th = int(np.flatnonzero(dl)[54]) + 1
    level = list(metrics.RECALL_GRID).index(0.55)
    assert got["pr_by_rank"]["precision"][level] == pytest.approx(55 / rank_of_55th, rel=RTOL)


# ---------------------------------------------------------------- blocks


@pytest.mark.parametrize("block_size", [1, 2, 3, 7])
def test_block_size_does_not_change_results(block_size):
    rng = np.random.default_rng(9)
    bits = 13
    qb, db = random_codes(rng, 10, bits), random_codes(rng, 90, bits)
    ql, dl = rng.integers(0, 3, 10), rng.integers(0, 3, 90)
    single = run_evaluate(qb, db, ql, dl, bits, block_size=1000)
    assert_same(run_evaluate(qb, db, ql, dl, bits, block_size=block_size), single)
    check(qb, db, ql, dl, bits, block_size=block_size)


def test_result_shape():
    """The keys and curve lengths evaluate returns."""
    rng = np.random.default_rng(10)
    bits = 5
    qb, db = random_codes(rng, 3, bits), random_codes(rng, 30, bits)
    got = run_evaluate(qb, db, np.array([0, 1, 2]), rng.integers(0, 3, 30), bits, (5, 20), 2, (1, 10))
    assert set(got) == {
        "map@all", "map@5", "map@20", "p@1", "p@10", "recall@1", "recall@10", "p@r2", "r@r2", "f1@r2",
        "pr_by_radius", "pr_by_rank",
    }  # fmt: skip
    assert got["pr_by_radius"]["radius"] == list(range(bits + 1))
    assert len(got["pr_by_radius"]["precision"]) == len(got["pr_by_radius"]["recall"]) == bits + 1
    assert got["pr_by_rank"]["recall"] == list(metrics.RECALL_GRID)
    assert len(got["pr_by_rank"]["precision"]) == 20
    assert metrics.RECALL_GRID[0] == pytest.approx(0.05)
    assert metrics.RECALL_GRID[-1] == pytest.approx(1.0)


def test_f1_from_mean_precision_and_recall():
    rng = np.random.default_rng(11)
    bits = 8
    qb, db = random_codes(rng, 8, bits), random_codes(rng, 100, bits)
    ql, dl = rng.integers(0, 2, 8), rng.integers(0, 2, 100)
    got = check(qb, db, ql, dl, bits, radius=3)
    p, r = got["p@r3"], got["r@r3"]
    assert p > 0
    assert r > 0
    assert got["f1@r3"] == pytest.approx(2 * p * r / (p + r), rel=RTOL)
    assert p == pytest.approx(got["pr_by_radius"]["precision"][3], rel=RTOL)
    assert r == pytest.approx(got["pr_by_radius"]["recall"][3], rel=RTOL)


# ---------------------------------------------------------------- regression: the HAGCN pitfall


def test_random_codes_give_chance_map():
    """Random 32-bit codes, 10 balanced classes (labels sorted by class): mAP@all is chance, about 0.1, not ~0.9."""
    rng = np.random.default_rng(12)
    bits, q, n = 32, 200, 2000
    qb, db = random_codes(rng, q, bits), random_codes(rng, n, bits)
    ql = np.repeat(np.arange(10), q // 10)
    dl = np.repeat(np.arange(10), n // 10)
    got = run_evaluate(qb, db, ql, dl, bits, map_at=(100, 1000), precision_at=(100,))
    assert 0.07 < got["map@all"] < 0.13
    assert 0.05 < got["p@100"] < 0.15


# ---------------------------------------------------------------- more items than one chunk, threads, groups


@pytest.mark.parametrize(("bits", "n"), [(3, 2 * CHUNK + 5), (70, CHUNK + 100)])
def test_more_items_than_one_chunk_of_the_kernel(bits, n):
    """Heavy ties across chunks (3 bits), and codes of two words (the kernel's other loop)."""
    rng = np.random.default_rng(bits)
    qb, db = random_codes(rng, 4, bits), random_codes(rng, n, bits)
    ql, dl = rng.integers(0, 3, 4), rng.integers(0, 3, n)
    check(qb, db, ql, dl, bits, map_at=(10, 1000), radius=1, precision_at=(5, 3000))


def test_multi_label_more_items_than_one_chunk():
    rng = np.random.default_rng(21)
    bits, n, q = 6, CHUNK + 77, 5
    qb, db = random_codes(rng, q, bits), random_codes(rng, n, bits)
    ql = (rng.random((q, 4)) < 0.4).astype(np.int64)
    dl = (rng.random((n, 4)) < 0.3).astype(np.int64)
    ql[0] = 0
    check(qb, db, ql, dl, bits, map_at=(50, 2000), radius=2, precision_at=(100,))


def test_threads_and_groups_do_not_change_results(monkeypatch):
    """Bit-identical with 1 or 2 threads, and whatever the groups of queries the ranks are made in."""
    rng = np.random.default_rng(22)
    bits = 5
    qb, db = random_codes(rng, 23, bits), random_codes(rng, 300, bits)
    ql, dl = rng.integers(0, 4, 23), rng.integers(0, 4, 300)
    args = (pack(qb), pack(db), ql, dl, bits, (5, 50), 2, (1, 10), 4)
    one = metrics.evaluate(*args, threads=1)
    assert metrics.evaluate(*args, threads=2) == one
    monkeypatch.setattr(metrics, "RANK_BUDGET", 7)  # a group per query or two
    assert metrics.evaluate(*args, threads=2) == one
    multi = (pack(qb), pack(db), np.eye(4, dtype=np.int64)[ql], np.eye(4, dtype=np.int64)[dl], *args[4:])
    assert metrics.evaluate(*multi, threads=2) == metrics.evaluate(*multi, threads=1)


def test_any_integer_labels():
    """Class labels need not be 0..C-1: negative and large ones, and query classes the database lacks."""
    rng = np.random.default_rng(23)
    bits = 8
    qb, db = random_codes(rng, 9, bits), random_codes(rng, 70, bits)
    ql = rng.choice([-5, 3, 10**12, 42], 9)
    dl = rng.choice([-5, 3, 10**12], 70)
    check(qb, db, ql, dl, bits, map_at=(5, 50), radius=2, precision_at=(10,))


def test_rejects_empty_sets_and_mismatched_codes():
    q, db = pack(np.zeros((2, 8), bool)), pack(np.zeros((3, 8), bool))
    labels = np.zeros(3, np.int64)
    with pytest.raises(GraphhashError, match="queries and a database"):
        metrics.evaluate(q[:0], db, labels[:0], labels, 8)
    with pytest.raises(GraphhashError, match="queries and a database"):
        metrics.evaluate(q, db[:0], labels[:2], labels[:0], 8)
    with pytest.raises(GraphhashError, match="bytes"):
        metrics.evaluate(q, pack(np.zeros((3, 16), bool)), labels[:2], labels, 8)
    with pytest.raises(GraphhashError, match="do not fit"):
        metrics.evaluate(q, db, labels[:2], labels, 9)


# ---------------------------------------------------------------- the label-free protocol


def ref_true_neighbours(query: np.ndarray, database: np.ndarray, r: int) -> np.ndarray:
    """Each query's r nearest database items by cosine, ties by ascending index: a float64 sort per query."""
    q = query / np.linalg.norm(query, axis=1, keepdims=True)
    d = database / np.linalg.norm(database, axis=1, keepdims=True)
    sims = q.astype(np.float64) @ d.astype(np.float64).T
    return np.array([sorted(sorted(range(len(d)), key=lambda j, row=row: (-row[j], j))[:r]) for row in sims])


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("block_size", [1, 3, 512])
def test_cosine_neighbours_equal_a_sort_per_query_ties_by_database_index(block_size):
    """Rows of four ones among 12 dimensions: their cosines are exact multiples of 1/4 in float32, so most are tied,
    and the tied items at the cut must be the lowest-indexed ones."""
    rng = np.random.default_rng(5)

    def rows(count):
        x = np.zeros((count, 12), dtype=np.float32)
        for row in x:
            row[rng.choice(12, 4, replace=False)] = 1.0
        return x

    query, database = rows(17), rows(90)
    for r in (1, 7, 40, 90):
        got = metrics.cosine_neighbours(unit(query), unit(database), r, block_size=block_size)
        np.testing.assert_array_equal(got, ref_true_neighbours(query, database, r))
    gaussian_q, gaussian_d = rng.normal(size=(9, 6)), rng.normal(size=(50, 6))  # untied, any norms
    got = metrics.cosine_neighbours(unit(gaussian_q), unit(gaussian_d), 10, block_size=block_size)
    np.testing.assert_array_equal(got, ref_true_neighbours(gaussian_q, gaussian_d, 10))


def test_more_true_neighbours_than_database_items_is_one_line_naming_the_key():
    x = unit(np.eye(3, dtype=np.float32))
    with pytest.raises(GraphhashError, match=r"^evaluate.neighbours: 4 true neighbours per query, but the database "
                       r"holds 3 items; set it to at most 3$"):  # fmt: skip
        metrics.cosine_neighbours(x, x, 4)


@pytest.mark.parametrize("bits", [8, 64, 70])
def test_label_free_metrics_equal_a_brute_force(bits):
    """nmap@K and recall@K: every metric of the evaluator with each query's R true neighbours as its relevant items
    equals the brute force on the relevance matrix those neighbours make (labels unused)."""
    rng = np.random.default_rng(bits)
    features = rng.normal(size=(130, 5))
    query, database = features[:30], features[30:]
    r = 12
    truth = ref_true_neighbours(query, database, r)
    rel = np.zeros((30, 100), dtype=bool)
    rel[np.arange(30)[:, None], truth] = True
    qb, db = random_codes(rng, 30, bits), random_codes(rng, 100, bits, p=0.3)
    got = metrics.evaluate(pack(qb), pack(db), None, None, bits, (5, 20), 2, (1, 10, 50), 7,
                           neighbours=metrics.cosine_neighbours(unit(query), unit(database), r))  # fmt: skip
    want = ref_evaluate(qb, db, None, None, bits, (5, 20), 2, (1, 10, 50), rel=rel)
    assert_same(got, want)
    assert 0 < got["recall@50"] < 1 and got["recall@50"] > got["recall@10"]


def test_neighbours_that_are_not_database_rows_are_one_line():
    qb, db = pack(np.zeros((2, 8), dtype=bool)), pack(np.zeros((5, 8), dtype=bool))
    with pytest.raises(GraphhashError, match="need a row of database indices"):
        metrics.evaluate(qb, db, None, None, 8, neighbours=np.array([[0, 5], [1, 2]]))
    with pytest.raises(GraphhashError, match="need a row of database indices"):
        metrics.evaluate(qb, db, None, None, 8, neighbours=np.array([[0, 1]]))
