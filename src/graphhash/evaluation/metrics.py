"""Retrieval metrics for binary codes, exact and fast.

Conventions (the deep-hashing literature's, stated so numbers can be compared):

- **Distance and ranking.** Hamming distance on packed codes (popcount of XOR). The database is ranked by
  ascending distance, ties broken by ascending database index.
- **Relevance.** Single-label: same class. Multi-label (labels given as an (n, C) 0/1 matrix): at least
  one shared label. Without labels (the classical unsupervised protocol of ITQ and spectral hashing): a query's
  relevant items are its R nearest database items by cosine similarity of the raw features, ties by ascending
  database index (``cosine_neighbours``; ``evaluate(neighbours=...)``); its mAP@K is written nmap@K.
- **mAP@K.** AP@K = (1 / R_K) * sum_{i <= K} rel_i * P@i, with R_K the relevant items in the top K; a
  query with no relevant item in its top K scores 0 and stays in the mean. mAP@all is K = database size.
- **Hamming radius r.** Precision = relevant / retrieved within distance <= r (0 for an empty ball);
  recall = relevant within r / all relevant (0 when the query has none); both averaged over queries, and
  F1 = 2PR / (P + R) from those means.
- **Curves.** Precision and recall by radius r = 0..bits; precision by rank at fixed recall levels (the
  precision at the first rank whose recall reaches the level, 0 if never reached); precision@N and recall@N
  (the fraction of the query's relevant items among the first N; 0 when it has none).

How it is fast without sorting: every metric follows from two things per query, the number of database
items at each distance and the ranks of the relevant items in ascending order. ``graphhash.hamming``'s
counting kernel gives both in one pass over the database (O(N) per query; see that module): the relevant
items are known before the pass (a class's members, or for label matrices a scan of the label bit sets),
and only their ranks are kept. From them, with the h-th relevant item at rank r_h (h = 1..R):

- AP@K = (1 / h_K) * sum_{h <= h_K} h / r_h, with h_K the relevant items ranked <= K, summed in rank order;
- P@N = #{h: r_h <= N} / N, recall@N = #{h: r_h <= N} / R;
- within radius r, the retrieved items are exactly the first c_r = #{items at distance <= r} of the
  ranking, so the relevant ones among them are #{h: r_h <= c_r};
- precision at recall level l: h / r_h for the first h >= l * R.

The sums run in rank order, as the definitions read, so the values are those of a per-query loop over the
sorted ranking. Blocks of ``block_size`` queries run on ``threads`` threads (default: Numba's thread count,
the cores); per-query values are summed within a block in query order, then block by block, so the result
does not depend on the thread count. 10,000 queries x 50,000 items at 64 bits take 0.55 to 0.9 s on 2
shared cores (``bench/evaluator_limit.py``, docs/benchmarks.md): 8 to 11 times one bare, vectorised
XOR-popcount pass over all pairs on the same threads (the counting kernel updates count[d] item by item,
which the bare pass does not), and 3 to 6 times faster than the previous evaluator (two passes per query,
one thread), with the same values. Memory: the relevant items' ranks for a group of queries at a time
(``RANK_BUDGET``), and arrays of a few thousand items per thread.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from graphhash.errors import GraphhashError
from graphhash.hamming import hamming as hamming  # re-exported: the distances the evaluator ranks by
from graphhash.hamming import in_blocks, item_ranks, thread_count, words

RECALL_GRID = tuple(np.round(np.linspace(0.05, 1.0, 20), 2))
RANK_BUDGET = 1 << 21  # ranks (int64) held at once per thread: the chosen items of a group of queries


def relevance(query_labels: np.ndarray, database_labels: np.ndarray) -> np.ndarray:
    """(q, n) bool: same class for 1-D labels, at least one shared label for (n, C) label matrices."""
    if query_labels.ndim == 1:
        return query_labels[:, None] == database_labels[None, :]
    return (query_labels.astype(np.float32) @ database_labels.astype(np.float32).T) > 0


class _RelevantItems:
    """Each query's relevant database items (ascending indices), as ``item_ranks`` takes them.

    1-D class labels: the members of each class, listed once; a query's list is its class's (empty for a
    class the database lacks). (n, C) label matrices: the labels as bit sets in uint64 words, and each
    query's list is made when its group is ranked, from the items whose bit set meets the query's. Given
    ``neighbours`` (q, R): query i's list is row i, the labels unused.
    """

    def __init__(self, query_labels: np.ndarray, database_labels: np.ndarray, neighbours: np.ndarray | None = None):
        self.lists_given = neighbours is not None
        self.multi = False
        if self.lists_given:
            q, r = neighbours.shape
            self.items = np.ascontiguousarray(np.sort(neighbours, axis=1), dtype=np.int64).reshape(-1)
            self.offsets = np.arange(q + 1, dtype=np.int64) * r
            self.subset = np.arange(q, dtype=np.int64)
            self.sizes = np.full(q, r, dtype=np.int64)
            return
        self.multi = query_labels.ndim > 1
        if self.multi:
            self.query_bits = words(np.packbits(query_labels != 0, axis=1))
            self.database_bits = words(np.packbits(database_labels != 0, axis=1))
            return
        classes, members = np.unique(database_labels, return_inverse=True)
        self.items = np.argsort(members, kind="stable").astype(np.int64)  # by class, then database index
        sizes = np.bincount(members, minlength=len(classes))
        self.offsets = np.concatenate([[0], np.cumsum(sizes), [len(database_labels)]]).astype(np.int64)
        place = np.minimum(np.searchsorted(classes, query_labels), max(len(classes) - 1, 0))
        known = (classes[place] == query_labels) if len(classes) else np.zeros(len(query_labels), dtype=bool)
        self.subset = np.where(known, place, len(classes)).astype(np.int64)  # len(classes): the empty list
        self.sizes = self.offsets[self.subset + 1] - self.offsets[self.subset]

    def groups(self, part: slice, database_size: int) -> list[slice]:
        """``part`` of the queries in groups whose relevant items number about RANK_BUDGET at most."""
        if self.multi:
            step = max(1, RANK_BUDGET // max(database_size, 1))
            return [slice(a, min(a + step, part.stop)) for a in range(part.start, part.stop, step)]
        cuts = [part.start]
        held = 0
        for i in range(part.start, part.stop):
            if held and held + self.sizes[i] > RANK_BUDGET:
                cuts.append(i)
                held = 0
            held += self.sizes[i]
        return [slice(a, b) for a, b in zip(cuts, [*cuts[1:], part.stop], strict=True)]

    def lists(self, group: slice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(items, offsets, subset) for ``item_ranks`` on the queries of ``group``."""
        if self.multi:
            items, offsets = _shared_label_items(self.query_bits[group], self.database_bits)
            return items, offsets, np.arange(group.stop - group.start, dtype=np.int64)
        return self.items, self.offsets, self.subset[group]


@numba.njit(cache=True, nogil=True)
def _shared_label_items(query_bits, database_bits):
    """CSR lists of the database items sharing a label with each query: items[offsets[i]:offsets[i + 1]]."""
    q, n = query_bits.shape[0], database_bits.shape[0]
    offsets = np.zeros(q + 1, np.int64)
    for i in range(q):
        found = 0
        for j in range(n):
            found += _shares(query_bits[i], database_bits[j])
        offsets[i + 1] = offsets[i] + found
    items = np.empty(offsets[q], np.int64)
    for i in range(q):
        m = offsets[i]
        for j in range(n):
            if _shares(query_bits[i], database_bits[j]):
                items[m] = j
                m += 1
    return items, offsets


@numba.njit(inline="always")
def _shares(a, b):
    hit = np.uint64(0)
    for w in range(a.shape[0]):
        hit |= a[w] & b[w]
    return hit != 0


@numba.njit(inline="always")
def _at_most(ranks, value):
    """How many of the ascending ``ranks`` are <= value (a binary search; cheaper to compile than NumPy's)."""
    low, high = 0, ranks.shape[0]
    while low < high:
        middle = (low + high) // 2
        if ranks[middle] <= value:
            low = middle + 1
        else:
            high = middle
    return low


@numba.njit(cache=True, nogil=True)
def _scores(counts, ranks, rank_offsets, n, bits, cutoffs, precision_at, grid, out):
    """Per query i: the metrics from its counts per distance and its relevant items' ascending ranks.

    ``out`` = (ap (q, len(cutoffs)), p_at (q, len(precision_at)), r_at (q, len(precision_at)), ball_precision
    (q, bits + 1), ball_recall (q, bits + 1), rank_precision (q, len(grid))), zero-filled: what is not written (no
    relevant item, an empty ball) stays 0, as the module docstring defines it.
    """
    ap, p_at, r_at, ball_precision, ball_recall, rank_precision = out
    longest = 0
    for i in range(counts.shape[0]):
        longest = max(longest, rank_offsets[i + 1] - rank_offsets[i])
    partial = np.zeros(longest + 1)  # partial[h] = sum_{g <= h} g / r_g, summed in rank order
    for i in range(counts.shape[0]):
        r = ranks[rank_offsets[i] : rank_offsets[i + 1]]
        total = r.shape[0]
        running = 0.0  # in a register: partial[h] read back from memory would wait for its store
        for h in range(total):
            running += (h + 1) / r[h]
            partial[h + 1] = running
        for c in range(cutoffs.shape[0]):
            hits = _at_most(r, cutoffs[c])
            if hits > 0:
                ap[i, c] = partial[hits] / hits
        for c in range(precision_at.shape[0]):
            cut = min(precision_at[c], n)
            found = _at_most(r, cut)
            p_at[i, c] = found / cut
            if total > 0:
                r_at[i, c] = found / total
        retrieved = 0
        for v in range(bits + 1):
            retrieved += counts[i, v]  # the items within radius v are the first `retrieved` of the ranking
            found = _at_most(r, retrieved)
            if retrieved > 0:
                ball_precision[i, v] = found / retrieved
            if total > 0:
                ball_recall[i, v] = found / total
        if total > 0:
            for c in range(grid.shape[0]):
                needed = int(np.ceil(grid[c] * total - 1e-9))
                rank_precision[i, c] = needed / r[needed - 1]


def evaluate(
    query: np.ndarray,
    database: np.ndarray,
    query_labels: np.ndarray,
    database_labels: np.ndarray,
    bits: int,
    map_at: tuple[int, ...] = (100, 1000),
    radius: int = 2,
    precision_at: tuple[int, ...] = (100, 500, 1000),
    block_size: int = 1024,
    *,
    threads: int | None = None,
    neighbours: np.ndarray | None = None,
) -> dict:
    """Every metric of the module docstring for packed codes; curves as lists. ``neighbours`` (q, R): each query's
    relevant database items, in place of the labels (``cosine_neighbours``: the label-free protocol); the labels
    may then be None."""
    if not len(query) or not len(database):
        raise GraphhashError(f"evaluation needs queries and a database, not {len(query)} and {len(database)} codes")
    if np.shape(query)[1] != np.shape(database)[1]:
        raise GraphhashError(f"query codes have {np.shape(query)[1]} bytes and database codes {np.shape(database)[1]}")
    if bits > 8 * np.shape(database)[1]:
        raise GraphhashError(f"{bits} bits do not fit in codes of {np.shape(database)[1]} bytes")
    n = len(database)
    cutoffs = np.array([n, *map_at], dtype=np.int64)
    precision_at_array = np.asarray(precision_at, dtype=np.int64)
    grid = np.asarray(RECALL_GRID, dtype=np.float64)
    query_words, database_words = words(query), words(database)
    if neighbours is not None and (np.shape(neighbours)[0] != len(query) or np.size(neighbours) == 0
                                   or not 0 <= np.min(neighbours) <= np.max(neighbours) < n):  # fmt: skip
        raise GraphhashError(f"neighbours of shape {np.shape(neighbours)}: need a row of database indices (< {n}) "
                             f"for each of the {len(query)} queries")  # fmt: skip
    relevant = _RelevantItems(np.asarray(query_labels), np.asarray(database_labels), neighbours)

    def block(part: slice) -> list[np.ndarray]:
        size = part.stop - part.start
        out = (np.zeros((size, len(cutoffs))), np.zeros((size, len(precision_at_array))),
               np.zeros((size, len(precision_at_array))), np.zeros((size, bits + 1)), np.zeros((size, bits + 1)),
               np.zeros((size, len(grid))))  # fmt: skip
        for group in relevant.groups(part, n):
            counts, ranks, rank_offsets = item_ranks(query_words[group], database_words, *relevant.lists(group))
            rows = slice(group.start - part.start, group.stop - part.start)
            _scores(counts, ranks, rank_offsets, n, bits, cutoffs, precision_at_array, grid,
                    tuple(values[rows] for values in out))  # fmt: skip
        return [values.sum(axis=0) for values in out]

    sums = None
    for block_sums in in_blocks(block, len(query), block_size, thread_count(threads)):  # summed in query order
        sums = block_sums if sums is None else [a + b for a, b in zip(sums, block_sums, strict=True)]
    ap, p_at, r_at, ball_precision, ball_recall, rank_precision = (values / len(query) for values in sums)
    result = {"map@all": ap[0], **{f"map@{k}": ap[c + 1] for c, k in enumerate(map_at)},
              **{f"p@{k}": p_at[c] for c, k in enumerate(precision_at)},
              **{f"recall@{k}": r_at[c] for c, k in enumerate(precision_at)}}  # fmt: skip
    ball = min(radius, bits)  # a radius of bits or more already holds the whole database
    p, r = ball_precision[ball], ball_recall[ball]
    result.update({f"p@r{radius}": p, f"r@r{radius}": r, f"f1@r{radius}": 2 * p * r / (p + r) if p + r > 0 else 0.0})
    result = {key: float(value) for key, value in result.items()}
    result["pr_by_radius"] = {"radius": list(range(bits + 1)), "precision": ball_precision.tolist(),
                              "recall": ball_recall.tolist()}  # fmt: skip
    result["pr_by_rank"] = {"recall": list(RECALL_GRID), "precision": rank_precision.tolist()}
    return result


def cosine_neighbours(query: np.ndarray, database: np.ndarray, r: int, block_size: int = 512) -> np.ndarray:
    """(q, r) int64: each query's ``r`` nearest database items by cosine similarity, ties by ascending database index
    (the relevant items of the label-free protocol), each row ascending. ``query`` and ``database`` are unit rows
    (``graphhash.graphs.knn.unit_features``), used as they are.

    Exact, without a sort of the database: a block of queries' similarities on every core (torch), the r-th largest
    of each row (``topk``), every item above it, and of the items equal to it the lowest-indexed ones that make r.
    """
    n = len(database)
    if not 1 <= r <= n:
        raise GraphhashError(f"evaluate.neighbours: {r} true neighbours per query, but the database holds {n:,} "
                             f"items; set it to at most {n:,}")  # fmt: skip
    queries = torch.from_numpy(np.ascontiguousarray(query, dtype=np.float32))
    items = torch.from_numpy(np.ascontiguousarray(database, dtype=np.float32))
    block_size = max(1, min(block_size, SORT_ELEMENTS // max(1, n)))
    found = np.empty((len(queries), r), dtype=np.int64)
    for start in range(0, len(queries), block_size):
        sims = queries[start : start + block_size] @ items.T
        kth = sims.topk(r, dim=1).values[:, -1:]  # (b, 1): the r-th largest similarity of each row
        above = sims > kth
        tied = sims == kth
        wanted = r - above.sum(dim=1, keepdim=True)  # how many of the tied items complete the row
        chosen = above | (tied & (tied.cumsum(dim=1) <= wanted))  # the tied ones by ascending index
        found[start : start + len(sims)] = chosen.nonzero()[:, 1].reshape(len(sims), r).numpy()
    return found


def average_precision(ranked_relevance: np.ndarray, k: int) -> np.ndarray:
    """AP@k per row of (b, n) relevance already in rank order (for real-valued rankings, which need a sort).

    Only the hits are visited: the h-th hit of a row, at rank r, adds P@r = h / r.
    """
    top = ranked_relevance[:, :k]
    rows, columns = np.nonzero(top)  # row by row, ranks ascending
    found = np.bincount(rows, minlength=len(top))
    hit_number = np.arange(1, len(rows) + 1) - (np.cumsum(found) - found)[rows]
    total = np.bincount(rows, weights=hit_number / (columns + 1), minlength=len(top))
    return np.divide(total, found, out=np.zeros(len(top)), where=found > 0)


# cosine_map ranks at most this many (query, database item) pairs at once: 0.5 GiB of similarities, 1 GiB of order
SORT_ELEMENTS = 1 << 27


def cosine_map(
    query: np.ndarray,
    database: np.ndarray,
    query_labels: np.ndarray,
    database_labels: np.ndarray,
    map_at: tuple[int, ...],
    block_size: int = 512,
    *,
    normalised: bool = False,
) -> dict[str, float]:
    """mAP of ranking the database by cosine similarity of real-valued features (ties by database index);
    ``normalised``: the rows are unit vectors already (float32: used as they are, no copy).

    The ranking needs a full sort of the database for every query (mAP@all); torch's stable sort does it on
    every core, where NumPy's runs on one. At most ``block_size`` queries are ranked at once, fewer where the
    database is large: a block's similarities, order and relevance stay near ``SORT_ELEMENTS`` entries each.
    """

    def unit(x: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        return x if normalised else torch.nn.functional.normalize(x, dim=1)

    queries, items = unit(query), unit(database)
    block_size = max(1, min(block_size, SORT_ELEMENTS // max(1, len(items))))
    sums = dict.fromkeys(["map@all", *(f"map@{k}" for k in map_at)], 0.0)
    for start in range(0, len(queries), block_size):
        block = slice(start, start + block_size)
        # descending and stable: equal similarities keep database order, so ties go to the lower index
        order = torch.sort(queries[block] @ items.T, dim=1, descending=True, stable=True).indices.numpy()
        ranked = np.take_along_axis(relevance(query_labels[block], database_labels), order, 1)
        sums["map@all"] += average_precision(ranked, len(items)).sum()
        for k in map_at:
            sums[f"map@{k}"] += average_precision(ranked, k).sum()
    return {key: float(value / len(queries)) for key, value in sums.items()}
