"""Hamming distances between packed binary codes, and the project's ranking: one popcount kernel for all.

Codes are packed rows of bytes (``np.packbits``: bit 0 is the most significant bit of byte 0), read 8 bytes
at a time as uint64 words (the last one zero-padded), so the Hamming distance of two codes is the sum over
words of popcount(a XOR b). Padding bits are zero in every code and add nothing. ``_popcount`` is the one
popcount of the project: the evaluator, ``top_k``, ``rerank`` and ``hamming`` all count with it.

**The ranking.** A query ranks the database by ascending distance, ties broken by ascending database index
(the evaluator's order, ``graphhash.evaluation.metrics``). Distances take only 64 W + 1 values for W words,
so nothing is sorted. The counting kernel makes one pass over the database in database order:

    d = distance(query, item j);  position[j] = count[d];  count[d] += 1

after which count[v] is the number of items at distance v, start[v] = sum_{u < v} count[u] is how many
items rank before distance v, and item j's 1-based rank is start[d_j] + position[j] + 1 (within one
distance, database order is rank order). That is O(n) per query: ``top_k`` keeps the items whose rank is at
most k, ``item_ranks`` (the evaluator) the ranks of chosen items, put in ascending order by a counting sort
on their distances (O(items)).

Every kernel is compiled by Numba (``cache=True``: compiled once, kept beside this file) and releases the
GIL; the public functions split the queries into blocks run on ``threads`` threads (default
``numba.get_num_threads()``, the cores), without Numba's ``parallel=True``, whose first compile takes
several times longer. Results do not depend on the thread count. Numba's cache only watches the file that
defines a function, so compiled code that calls these kernels lives in this file too: other modules call the
kernels from Python.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from graphhash.errors import GraphhashError

CHUNK = 4096  # database items per pass of the counting kernel: its words and positions are still in cache after
QUERY_BLOCK = 256  # queries per task on the thread pool
MAX_ITEMS = 2**31  # database items: positions within a distance are int32


# ---------------------------------------------------------------- words and threads


def words(packed: np.ndarray) -> np.ndarray:
    """Packed uint8 rows (n, B) as uint64 words (n, ceil(B / 8)), zero-padded: XOR and popcount per word."""
    packed = np.asarray(packed)
    if packed.ndim != 2 or packed.dtype != np.uint8:
        raise GraphhashError(f"packed codes must be a 2-D uint8 array, not {packed.ndim}-D {packed.dtype}")
    n, width = packed.shape
    padded = np.zeros((n, max(1, -(-width // 8)) * 8), dtype=np.uint8)
    padded[:, :width] = packed
    return padded.view(np.uint64)


def thread_count(threads: int | None = None) -> int:
    """``threads``, or Numba's thread count (the cores unless NUMBA_NUM_THREADS says otherwise)."""
    if threads is None:
        return numba.get_num_threads()
    if threads < 1:
        raise GraphhashError(f"threads must be at least 1, not {threads}")
    return int(threads)


def in_blocks(task: Callable[[slice], object], total: int, block: int, threads: int) -> list:
    """``task`` on consecutive slices of ``block`` items of range(total), on ``threads`` threads; results in
    slice order, whatever the thread count."""
    slices = [slice(start, min(start + block, total)) for start in range(0, total, block)]
    if threads == 1 or len(slices) <= 1:
        return [task(part) for part in slices]
    with ThreadPoolExecutor(min(threads, len(slices))) as pool:
        return list(pool.map(task, slices))


def _codes(query: np.ndarray, database: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both code arrays as words, after checking they are packed codes of the same width."""
    query, database = np.asarray(query), np.asarray(database)
    if query.ndim == 2 and database.ndim == 2 and query.shape[1] != database.shape[1]:
        raise GraphhashError(f"query codes have {query.shape[1]} bytes and database codes {database.shape[1]}")
    if len(database) >= MAX_ITEMS:
        raise GraphhashError(f"a database of {len(database)} codes is too large (positions are int32)")
    return words(query), words(database)


# ---------------------------------------------------------------- kernels


@numba.njit(inline="always")
def _popcount(x: np.uint64) -> np.uint64:
    # the classic bit-parallel count; LLVM turns it into the popcnt instruction
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


@numba.njit(inline="always")
def _distance(x, database, j):
    """Hamming distance between query words x (W,) and database row j (words (n, W))."""
    d = _popcount(x[0] ^ database[j, 0])
    for w in range(1, x.shape[0]):
        d += _popcount(x[w] ^ database[j, w])
    return d


@numba.njit(inline="always")
def _distances(x, part, out):
    """out[j] = distance to part's row j, for every row: word by word, a loop LLVM vectorises."""
    for j in range(part.shape[0]):
        out[j] = _popcount(x[0] ^ part[j, 0])
    for w in range(1, x.shape[0]):
        for j in range(part.shape[0]):
            out[j] += _popcount(x[w] ^ part[j, w])


@numba.njit(inline="always")
def _bump(count, d):
    """count[d] += 1; returns the count before: the item's position among the items at distance d."""
    before = count[d]
    count[d] = before + 1
    return before


@numba.njit(inline="always")
def _count(x, part, count, position, distance):
    """The counting kernel, over a part of the database in database order: position[j] = the items before j
    at j's distance (in all parts so far), and count[v] += the part's items at distance v.

    One-word codes (up to 64 bits) compute each distance in the loop; longer codes first fill
    distance[j] (uint16, len(part)) with the vectorised word loop, which is faster than a word loop per item.
    """
    if part.shape[1] == 1:
        x0 = x[0]
        for j in range(part.shape[0]):
            position[j] = _bump(count, _popcount(x0 ^ part[j, 0]))
    else:
        _distances(x, part, distance)
        for j in range(part.shape[0]):
            position[j] = _bump(count, distance[j])


@numba.njit(inline="always")
def _counted_distance(x, part, distance, j):
    """Row j's distance after ``_count`` has been over ``part`` (it kept them for codes of several words)."""
    if part.shape[1] == 1:
        return np.uint64(_popcount(x[0] ^ part[j, 0]))
    return np.uint64(distance[j])


@numba.njit(inline="always")
def _starts(count, start):
    """start[v] = sum_{u < v} count[u]: how many items rank before distance v (start may be count itself)."""
    total = 0
    for v in range(count.shape[0]):
        here = count[v]
        start[v] = total
        total += here


@numba.njit(cache=True, nogil=True)
def _item_ranks(query, database, items, offsets, subset, counts, ranks, rank_offsets):
    """For each query i: counts[i] and the ascending ranks of its chosen items, in ranks[rank_offsets[i]:...].

    The database is visited in chunks of CHUNK items: after the counting kernel has been over a chunk, the
    chosen items in it record their distance and position while both are still in the cache. Once the
    whole database is counted, rank = start[d] + position + 1, and a counting sort on d puts the ranks in
    ascending order (the chosen items come in database order, which is rank order within one distance).
    """
    n, size = database.shape[0], counts.shape[1]
    position = np.empty(CHUNK, np.int32)
    distance = np.empty(CHUNK, np.uint16)
    start = np.empty(size, np.int64)
    slot = np.empty(size, np.int64)
    longest = 0
    for s in range(offsets.shape[0] - 1):
        longest = max(longest, offsets[s + 1] - offsets[s])
    chosen_distance = np.empty(longest, np.int64)
    chosen_position = np.empty(longest, np.int64)
    for i in range(query.shape[0]):
        x, count = query[i], counts[i]
        count[:] = 0
        slot[:] = 0
        chosen = items[offsets[subset[i]] : offsets[subset[i] + 1]]
        m = 0
        for first in range(0, n, CHUNK):
            part = database[first : first + CHUNK]
            _count(x, part, count, position, distance)
            end = first + part.shape[0]
            while m < chosen.shape[0] and chosen[m] < end:
                j = chosen[m] - first
                d = _counted_distance(x, part, distance, j)
                chosen_distance[m], chosen_position[m] = d, position[j]
                slot[d] += 1
                m += 1
        _starts(count, start)
        _starts(slot, slot)  # where each distance's chosen items start among the chosen items
        out = ranks[rank_offsets[i] : rank_offsets[i + 1]]
        for m in range(chosen.shape[0]):
            d = chosen_distance[m]
            out[slot[d]] = start[d] + chosen_position[m] + 1
            slot[d] += 1


@numba.njit(cache=True, nogil=True)
def _top_k(query, database, ids, distances):
    """ids[i], distances[i]: the items of rank 1..k (k = ids.shape[1]) for query i, in rank order.

    A counting pass, then a second pass keeps every item whose rank start[d] + position is below k.
    """
    n, k = database.shape[0], ids.shape[1]
    size = 64 * database.shape[1] + 1
    count = np.empty(size, np.int64)
    start = np.empty(size, np.int64)
    position = np.empty(n, np.int32)
    distance = np.empty(n, np.uint16)
    for i in range(query.shape[0]):
        x = query[i]
        count[:] = 0
        for first in range(0, n, CHUNK):
            last = min(first + CHUNK, n)
            _count(x, database[first:last], count, position[first:last], distance[first:last])
        _starts(count, start)
        for first in range(0, n, CHUNK):
            last = min(first + CHUNK, n)
            _distances(x, database[first:last], distance[first:last])
            for j in range(first, last):
                rank = start[distance[j]] + position[j]  # 0-based
                if rank < k:
                    ids[i, rank] = j
                    distances[i, rank] = distance[j]


@numba.njit(inline="always")
def _hits(x, part, target, buffer):
    """How many rows of ``part`` lie at distance ``target`` from x: for one-word codes a single loop LLVM
    vectorises (no distance is stored); for longer codes the word loop into ``buffer``, then a count."""
    hits = 0
    if part.shape[1] == 1:
        x0 = x[0]
        for j in range(part.shape[0]):
            hits += _popcount(x0 ^ part[j, 0]) == target
    else:
        _distances(x, part, buffer)
        for j in range(part.shape[0]):
            hits += buffer[j] == target
    return hits


@numba.njit(cache=True, nogil=True)
def _first_at_distance(query, database, distance, count, ids):
    """ids[i, :count[i]]: the first count[i] items at distance distance[i], in database order (stops early).

    Chunk by chunk, the items at that distance are first counted (vectorised); only a chunk holding some is
    walked item by item to collect them, so a scan costs little more than the bare popcount pass.
    """
    buffer = np.empty(CHUNK, np.uint16)
    for i in range(query.shape[0]):
        x, found, target = query[i], 0, distance[i]
        for first in range(0, database.shape[0], CHUNK):
            if found == count[i]:
                break
            part = database[first : first + CHUNK]
            if _hits(x, part, target, buffer) == 0:
                continue
            for j in range(part.shape[0]):
                if found < count[i] and _distance(x, part, j) == target:
                    ids[i, found] = first + j
                    found += 1


@numba.njit(inline="always")
def _sift_down(keys, root, end):
    """Restore the max-heap below ``root`` in keys[:end]."""
    while 2 * root + 1 < end:
        child = 2 * root + 1
        if child + 1 < end and keys[child + 1] > keys[child]:
            child += 1
        if keys[root] >= keys[child]:
            return
        keys[root], keys[child] = keys[child], keys[root]
        root = child


@numba.njit(inline="always")
def _heapsort(keys):
    """Sort int64 keys in place, ascending (O(m log m); compiles in a fraction of the time of np.sort)."""
    m = keys.shape[0]
    for root in range(m // 2 - 1, -1, -1):
        _sift_down(keys, root, m)
    for end in range(m - 1, 0, -1):
        keys[0], keys[end] = keys[end], keys[0]
        _sift_down(keys, 0, end)


@numba.njit(cache=True, nogil=True)
def _rerank(query, database, candidates, ids, distances):
    """ids[i], distances[i]: query i's valid candidates (>= 0) sorted by (distance, index), first k kept.

    Sorted as one int64 key per candidate: distance * 2^40 + index (indices below 2^40).
    """
    k = ids.shape[1]
    keys = np.empty(candidates.shape[1], np.int64)
    for i in range(query.shape[0]):
        x, valid = query[i], 0
        for c in range(candidates.shape[1]):
            j = candidates[i, c]
            if j >= 0:
                keys[valid] = (np.int64(_distance(x, database, j)) << 40) | j
                valid += 1
        ordered = keys[:valid]
        _heapsort(ordered)
        for r in range(min(k, valid)):
            ids[i, r] = ordered[r] & ((1 << 40) - 1)
            distances[i, r] = ordered[r] >> 40


@numba.njit(cache=True, nogil=True)
def _distance_matrix(query, database, out):
    for i in range(query.shape[0]):
        _distances(query[i], database, out[i])


# ---------------------------------------------------------------- public functions


def hamming(query: np.ndarray, database: np.ndarray, *, threads: int | None = None) -> np.ndarray:
    """Hamming distances (q, n) between packed codes, as uint16."""
    q, d = _codes(query, database)
    out = np.empty((len(q), len(d)), dtype=np.uint16)
    if len(d):
        in_blocks(lambda part: _distance_matrix(q[part], d, out[part]), len(q), QUERY_BLOCK, thread_count(threads))
    return out


def top_k(
    query: np.ndarray, database: np.ndarray, k: int, *, threads: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The first k items of each query's ranking (ascending distance, ties by ascending database index).

    Returns database indices int64 (q, min(k, n)) and their distances int32 (q, min(k, n)), in rank order:
    exactly the evaluator's ranking, computed by the counting kernel in O(n) per query (no sort).
    """
    if k < 0:
        raise GraphhashError(f"k must be at least 0, not {k}")
    q, d = _codes(query, database)
    k = min(int(k), len(d))
    ids = np.empty((len(q), k), dtype=np.int64)
    distances = np.empty((len(q), k), dtype=np.int32)
    if k:
        in_blocks(
            lambda part: _top_k(q[part], d, ids[part], distances[part]), len(q), QUERY_BLOCK, thread_count(threads)
        )
    return ids, distances


def rerank(
    query: np.ndarray, database: np.ndarray, candidates: np.ndarray, k: int, *, threads: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The first k of each query's candidates in the project's order: by exact distance, then database index.

    ``candidates`` (q, c) holds database indices per query; -1 entries are padding and ignored (no index
    may appear twice in a row). Returns ids int64 (q, k) and distances int32 (q, k), padded with -1 ids and
    -1 distances where a row has fewer than k valid candidates.
    """
    if k < 0:
        raise GraphhashError(f"k must be at least 0, not {k}")
    q, d = _codes(query, database)
    candidates = np.asarray(candidates)
    if candidates.ndim != 2 or len(candidates) != len(q) or not np.issubdtype(candidates.dtype, np.integer):
        raise GraphhashError(
            f"candidates must be integer indices ({len(q)}, c), not {candidates.dtype} {candidates.shape}"
        )
    candidates = np.ascontiguousarray(candidates, dtype=np.int64)
    if candidates.size and (candidates.min() < -1 or candidates.max() >= len(d)):
        raise GraphhashError(f"candidates must be database indices (0 to {len(d) - 1}) or -1")
    ids = np.full((len(q), int(k)), -1, dtype=np.int64)
    distances = np.full((len(q), int(k)), -1, dtype=np.int32)
    if k and candidates.shape[1]:
        task = lambda part: _rerank(q[part], d, candidates[part], ids[part], distances[part])  # noqa: E731
        in_blocks(task, len(q), QUERY_BLOCK, thread_count(threads))
    return ids, distances


def first_at_distance(
    query: np.ndarray, database: np.ndarray, distance: np.ndarray, count: np.ndarray, *, threads: int | None = None
) -> np.ndarray:
    """For each query i, the first count[i] database items at distance distance[i], in database order.

    Returns int64 (q, max(count)), padded with -1 (after the count, or where fewer items lie at that
    distance). Each query's scan stops as soon as it has its items.
    """
    q, d = _codes(query, database)
    distance = np.asarray(distance, dtype=np.int64).reshape(len(q))
    count = np.asarray(count, dtype=np.int64).reshape(len(q))
    ids = np.full((len(q), int(count.max(initial=0))), -1, dtype=np.int64)
    if ids.size and len(d):
        task = lambda part: _first_at_distance(q[part], d, distance[part], count[part], ids[part])  # noqa: E731
        in_blocks(task, len(q), QUERY_BLOCK, thread_count(threads))
    return ids


def item_ranks(
    query_words: np.ndarray, database_words: np.ndarray, items: np.ndarray, offsets: np.ndarray, subset: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ranks of chosen database items in each query's ranking (what the evaluator needs), on one thread.

    ``query_words`` (q, W) and ``database_words`` (n, W) come from ``words`` (n < MAX_ITEMS). Query i's chosen
    items are items[offsets[s]:offsets[s + 1]] with s = subset[i]: ascending database indices, no repeats. Returns
    ``counts`` int64 (q, 64 W + 1), the database items at each distance; ``ranks`` int64, where
    ranks[rank_offsets[i]:rank_offsets[i + 1]] are the 1-based ranks of query i's chosen items, ascending;
    and ``rank_offsets`` int64 (q + 1,).
    """
    items = np.ascontiguousarray(items, dtype=np.int64)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    subset = np.ascontiguousarray(subset, dtype=np.int64)
    sizes = offsets[subset + 1] - offsets[subset]
    rank_offsets = np.zeros(len(subset) + 1, dtype=np.int64)
    np.cumsum(sizes, out=rank_offsets[1:])
    counts = np.empty((len(query_words), 64 * database_words.shape[1] + 1), dtype=np.int64)
    ranks = np.empty(rank_offsets[-1], dtype=np.int64)
    _item_ranks(query_words, database_words, items, offsets, subset, counts, ranks, rank_offsets)
    return counts, ranks, rank_offsets
