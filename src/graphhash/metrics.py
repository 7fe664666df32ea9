"""Retrieval metrics for binary codes, exact and fast.

Conventions (the deep-hashing literature's, stated so numbers can be compared):

- **Distance and ranking.** Hamming distance on packed codes (popcount of XOR). The database is ranked by
  ascending distance, ties broken by ascending database index. Distances take at most bits + 1 values, so
  a row is ranked by a stable radix sort (NumPy's stable sort of small integers), O(N) per query.
- **Relevance.** Single-label: same class. Multi-label (labels given as an (n, C) 0/1 matrix): at least
  one shared label.
- **mAP@K.** AP@K = (1 / R_K) * sum_{i <= K} rel_i * P@i, with R_K the relevant items in the top K; a
  query with no relevant item in its top K scores 0 and stays in the mean. mAP@all is K = database size.
- **Hamming radius r.** Precision = relevant / retrieved within distance <= r (0 for an empty ball);
  recall = relevant within r / all relevant (0 when the query has none); both averaged over queries, and
  F1 = 2PR / (P + R) from those means.
- **Curves.** Precision and recall by radius r = 0..bits; precision by rank at fixed recall levels (the
  precision at the first rank whose recall reaches the level, 0 if never reached); precision@N.

Queries are processed in blocks so memory stays bounded: a block holds a few (block, N) arrays (distances,
ranks, relevance, running hit counts), about 40 bytes per query and database item.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

RECALL_GRID = tuple(np.round(np.linspace(0.05, 1.0, 20), 2))


def _words(packed: np.ndarray) -> np.ndarray:
    """Packed uint8 codes (n, B) as uint64 words (n, ceil(B / 8)), zero-padded: XOR and popcount per word."""
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


@dataclass(frozen=True)
class Block:
    """One block of queries: distances, and relevance in database order and in rank order."""

    distances: np.ndarray  # (b, n) uint16
    ranked_relevance: np.ndarray  # (b, n) bool: ascending distance, then ascending database index
    relevant: np.ndarray  # (b, n) bool, in database order


def blocks(
    query: np.ndarray, database: np.ndarray, query_labels: np.ndarray, database_labels: np.ndarray, size: int = 256
) -> Iterator[Block]:
    for start in range(0, len(query), size):
        stop = start + size
        distances = hamming(query[start:stop], database)
        order = np.argsort(distances, axis=1, kind="stable")  # radix sort on small ints: ties by index
        relevant = relevance(query_labels[start:stop], database_labels)
        yield Block(distances, np.take_along_axis(relevant, order, axis=1), relevant)


def average_precision(ranked_relevance: np.ndarray, k: int) -> np.ndarray:
    """AP@k per row of (b, n) relevance in rank order (see the module docstring)."""
    top = ranked_relevance[:, :k]
    hits = np.cumsum(top, axis=1)
    precision = hits / np.arange(1, top.shape[1] + 1)
    found = hits[:, -1]
    total = (precision * top).sum(axis=1)
    return np.divide(total, found, out=np.zeros(len(top)), where=found > 0)


def evaluate(
    query: np.ndarray,
    database: np.ndarray,
    query_labels: np.ndarray,
    database_labels: np.ndarray,
    bits: int,
    map_at: tuple[int, ...] = (100, 1000),
    radius: int = 2,
    precision_at: tuple[int, ...] = (100, 500, 1000),
    block_size: int = 128,
) -> dict:
    """Every metric of the module docstring for packed codes; curves as lists."""
    n = len(database)
    sums = {"map@all": 0.0, **{f"map@{k}": 0.0 for k in map_at}, **{f"p@{k}": 0.0 for k in precision_at}}
    ball_precision = np.zeros(bits + 1)
    ball_recall = np.zeros(bits + 1)
    rank_precision = np.zeros(len(RECALL_GRID))
    for block in blocks(query, database, query_labels, database_labels, block_size):
        ranked = block.ranked_relevance
        sums["map@all"] += average_precision(ranked, n).sum()
        for k in map_at:
            sums[f"map@{k}"] += average_precision(ranked, k).sum()
        hits = np.cumsum(ranked, axis=1, dtype=np.int32)
        for k in precision_at:
            sums[f"p@{k}"] += (hits[:, min(k, n) - 1] / min(k, n)).sum()
        for row, distances in enumerate(block.distances):
            total = hits[row, -1]
            # within every radius, from the counts per distance
            retrieved = np.cumsum(np.bincount(distances, minlength=bits + 1)[: bits + 1])
            found = np.cumsum(np.bincount(distances[block.relevant[row]], minlength=bits + 1)[: bits + 1])
            ball_precision += np.divide(found, retrieved, out=np.zeros(bits + 1), where=retrieved > 0)
            if total > 0:
                ball_recall += found / total
                # the first rank holding `needed` relevant items: precision there is needed / rank
                needed = np.ceil(np.asarray(RECALL_GRID) * total - 1e-9)
                rank_precision += needed / (np.searchsorted(hits[row], needed) + 1)
    count = len(query)
    result = {key: value / count for key, value in sums.items()}
    ball = min(radius, bits)  # a radius of bits or more already holds the whole database
    p, r = ball_precision[ball] / count, ball_recall[ball] / count
    result.update({f"p@r{radius}": p, f"r@r{radius}": r, f"f1@r{radius}": 2 * p * r / (p + r) if p + r > 0 else 0.0})
    result["pr_by_radius"] = {"radius": list(range(bits + 1)), "precision": (ball_precision / count).tolist(),
                              "recall": (ball_recall / count).tolist()}  # fmt: skip
    result["pr_by_rank"] = {"recall": list(RECALL_GRID), "precision": (rank_precision / count).tolist()}
    return result
