"""Retrieval metrics for binary codes, exact and fast.

Conventions (the deep-hashing literature's, stated so numbers can be compared):

- **Distance and ranking.** Hamming distance on packed codes (popcount of XOR). The database is ranked by
  ascending distance, ties broken by ascending database index.
- **Relevance.** Single-label: same class. Multi-label (labels given as an (n, C) 0/1 matrix): at least
  one shared label.
- **mAP@K.** AP@K = (1 / R_K) * sum_{i <= K} rel_i * P@i, with R_K the relevant items in the top K; a
  query with no relevant item in its top K scores 0 and stays in the mean. mAP@all is K = database size.
- **Hamming radius r.** Precision = relevant / retrieved within distance <= r (0 for an empty ball);
  recall = relevant within r / all relevant (0 when the query has none); both averaged over queries, and
  F1 = 2PR / (P + R) from those means.
- **Curves.** Precision and recall by radius r = 0..bits; precision by rank at fixed recall levels (the
  precision at the first rank whose recall reaches the level, 0 if never reached); precision@N.

How it is fast without sorting: distances take only bits + 1 values. One pass over the database counts the
items and the relevant items at each distance; their running sums say where every distance starts in the
ranking. A second pass in database order then hands out ranks within each distance (database order is the
tie rule), which gives every relevant item its exact rank: O(N) per query, against O(N log N) for a sort.
Everything else follows from the ranks of the relevant items. The loops are compiled with Numba (cached
beside the module); memory is a few bytes per database item, plus the per-query results of one block of
queries. They run on one thread: even 10,000 queries x 50,000 items take about two seconds, and a parallel
loop takes Numba four times as long to compile (about 11 s against 3 s here), paid by every fresh clone.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

RECALL_GRID = tuple(np.round(np.linspace(0.05, 1.0, 20), 2))


def _words(packed: np.ndarray) -> np.ndarray:
    """Packed uint8 rows (n, B) as uint64 words (n, ceil(B / 8)), zero-padded: XOR and popcount per word."""
    n, width = packed.shape
    padded = np.zeros((n, -(-width // 8) * 8), dtype=np.uint8)
    padded[:, :width] = packed
    return padded.view(np.uint64)


def hamming(query: np.ndarray, database: np.ndarray) -> np.ndarray:
    """Hamming distances (q, n) between packed codes, as uint16."""
    q, d = _words(query), _words(database)
    out = np.zeros((len(q), len(d)), dtype=np.uint16)
    for w in range(q.shape[1]):
        out += np.bitwise_count(q[:, w, None] ^ d[None, :, w]).astype(np.uint16)
    return out


def relevance(query_labels: np.ndarray, database_labels: np.ndarray) -> np.ndarray:
    """(q, n) bool: same class for 1-D labels, at least one shared label for (n, C) label matrices."""
    if query_labels.ndim == 1:
        return query_labels[:, None] == database_labels[None, :]
    return (query_labels.astype(np.float32) @ database_labels.astype(np.float32).T) > 0


def _label_words(query_labels: np.ndarray, database_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels as bit sets in uint64 words, so that relevance is one test: do the sets intersect?

    1-D class indices become one-hot rows; (n, C) 0/1 matrices are packed as they are.
    """
    if query_labels.ndim == 1:
        classes = int(max(query_labels.max(initial=0), database_labels.max(initial=0))) + 1
        query_labels, database_labels = (
            np.eye(classes, dtype=bool)[query_labels],
            np.eye(classes, dtype=bool)[database_labels],
        )
    return _words(np.packbits(query_labels != 0, axis=1)), _words(np.packbits(database_labels != 0, axis=1))


@numba.njit(inline="always")
def _popcount(x: np.uint64) -> np.uint64:
    # the classic bit-parallel count; LLVM turns it into the popcnt instruction
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


@numba.njit(cache=True)
def _per_query(query, database, query_labels, database_labels, bits, map_at, precision_at, grid):
    """Per-query AP@K (one column per K), precision@N, precision and recall by radius, precision by rank."""
    q, n = query.shape[0], database.shape[0]
    ap = np.zeros((q, len(map_at)))
    p_at = np.zeros((q, len(precision_at)))
    ball_precision = np.zeros((q, bits + 1))
    ball_recall = np.zeros((q, bits + 1))
    rank_precision = np.zeros((q, len(grid)))
    for i in range(q):
        # pass 1: distance and relevance of every item; items and relevant items per distance
        distance = np.empty(n, np.uint16)
        relevant = np.empty(n, np.bool_)
        count = np.zeros(bits + 1, np.int64)
        relevant_count = np.zeros(bits + 1, np.int64)
        for j in range(n):
            d = np.uint64(0)
            for w in range(query.shape[1]):
                d += _popcount(query[i, w] ^ database[j, w])
            shared = False
            for w in range(query_labels.shape[1]):
                if query_labels[i, w] & database_labels[j, w]:
                    shared = True
            distance[j] = d
            relevant[j] = shared
            count[d] += 1
            relevant_count[d] += shared
        total = relevant_count.sum()
        # where each distance starts in the ranking (ranks before it), over all items and relevant items
        start = np.empty(bits + 1, np.int64)
        relevant_start = np.empty(bits + 1, np.int64)
        retrieved, found = 0, 0
        for v in range(bits + 1):
            start[v], relevant_start[v] = retrieved, found
            retrieved += count[v]
            found += relevant_count[v]
            if retrieved > 0:
                ball_precision[i, v] = found / retrieved
            if total > 0:
                ball_recall[i, v] = found / total
        # pass 2, in database order (the tie rule): the 1-based rank of the m-th relevant item in rank order
        ranks = np.empty(total, np.int64)
        for j in range(n):
            v = distance[j]
            start[v] += 1
            if relevant[j]:
                ranks[relevant_start[v]] = start[v]
                relevant_start[v] += 1
        # everything else from the ranks of the relevant items, summed in rank order
        for c in range(len(map_at)):
            precision_sum, hits = 0.0, 0
            while hits < total and ranks[hits] <= map_at[c]:
                hits += 1
                precision_sum += hits / ranks[hits - 1]
            if hits > 0:
                ap[i, c] = precision_sum / hits
        for c in range(len(precision_at)):
            cut = min(precision_at[c], n)
            p_at[i, c] = np.searchsorted(ranks, cut, side="right") / cut
        if total > 0:
            for c in range(len(grid)):
                needed = int(np.ceil(grid[c] * total - 1e-9))
                rank_precision[i, c] = needed / ranks[needed - 1]
    return ap, p_at, ball_precision, ball_recall, rank_precision


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
) -> dict:
    """Every metric of the module docstring for packed codes; curves as lists."""
    n = len(database)
    cutoffs = np.array([n, *map_at], dtype=np.int64)
    query_words, database_words = _words(query), _words(database)
    query_label_words, database_label_words = _label_words(np.asarray(query_labels), np.asarray(database_labels))
    grid = np.asarray(RECALL_GRID, dtype=np.float64)
    sums = None
    for start in range(0, len(query), block_size):
        part = slice(start, start + block_size)
        block = _per_query(query_words[part], database_words, query_label_words[part], database_label_words, bits,
                           cutoffs, np.asarray(precision_at, dtype=np.int64), grid)  # fmt: skip
        block_sums = [values.sum(axis=0) for values in block]
        sums = block_sums if sums is None else [a + b for a, b in zip(sums, block_sums, strict=True)]
    ap, p_at, ball_precision, ball_recall, rank_precision = (values / len(query) for values in sums)
    result = {"map@all": ap[0], **{f"map@{k}": ap[c + 1] for c, k in enumerate(map_at)},
              **{f"p@{k}": p_at[c] for c, k in enumerate(precision_at)}}  # fmt: skip
    ball = min(radius, bits)  # a radius of bits or more already holds the whole database
    p, r = ball_precision[ball], ball_recall[ball]
    result.update({f"p@r{radius}": p, f"r@r{radius}": r, f"f1@r{radius}": 2 * p * r / (p + r) if p + r > 0 else 0.0})
    result = {key: float(value) for key, value in result.items()}
    result["pr_by_radius"] = {"radius": list(range(bits + 1)), "precision": ball_precision.tolist(),
                              "recall": ball_recall.tolist()}  # fmt: skip
    result["pr_by_rank"] = {"recall": list(RECALL_GRID), "precision": rank_precision.tolist()}
    return result


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


def cosine_map(
    query: np.ndarray,
    database: np.ndarray,
    query_labels: np.ndarray,
    database_labels: np.ndarray,
    map_at: tuple[int, ...],
    block_size: int = 512,
) -> dict[str, float]:
    """mAP of ranking the database by cosine similarity of real-valued features (ties by database index).

    The ranking needs a full sort of the database for every query (mAP@all); torch's stable sort does it on
    every core, where NumPy's runs on one.
    """

    def unit(x: np.ndarray) -> torch.Tensor:
        return torch.nn.functional.normalize(torch.from_numpy(np.ascontiguousarray(x)).float(), dim=1)

    queries, items = unit(query), unit(database)
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
