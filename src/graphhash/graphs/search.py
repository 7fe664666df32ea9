"""How the ``neighbours`` stage finds every item's nearest training items, by the name ``neighbours.method``.

    exact  every item against every training item, in blocks (torch): O(N x N_train)
    ivf    spherical k-means cells (FAISS); the items of a cell against the training items of the nprobe
           cells nearest to it, one matrix product per cell (torch): O(N x nprobe x N_train / nlist)
    hnsw   a FAISS navigable small-world graph of the unit vectors
    auto   exact below ``AUTO_APPROXIMATE_FROM`` training items, hnsw from there

Cosine similarity is the inner product of unit vectors, so the approximate methods work on the unit rows,
computed once (one array of N x D float32, read from the features in blocks: never the features and a copy
of them besides). Every method keeps the contract of ``TrainingSet.nearest``: K training rows per item, never
the item itself, ordered by decreasing cosine, equal cosines by increasing row, and each neighbour carries its
cosine as a float32 matrix product computes it; only *which* items are found can differ from ``exact``. A row
for which a method found fewer than K candidates other than the item itself is searched exactly instead.

**Why ivf is not FAISS's IndexIVFFlat search.** FAISS scans a query's nprobe lists one query at a time: a
memory-bound loop (about 12 GFLOP/s on these 2 cores at 200,000 1280-d items). Here the queries are grouped by
their cell and every group is one matrix product against its candidates (78 GFLOP/s), so the same work
costs several times less. The price: a cell's items share one candidate list (the cells nearest the cell's
centroid, its own first), so an item near the border of its cell is searched around its cell rather than
around itself; ``bench/neighbours.py`` measures the recall.

**Determinism.** ``ivf``'s k-means trains on a seeded sample of the training items from seeded initial
centroids; ``hnsw`` inserts the items on one thread (FAISS's multithreaded HNSW insertion is not
reproducible); both search queries independently. The same features and params give the same neighbours file
(on one machine: the floating-point sums of k-means and of the products may differ between CPUs and thread
counts).
"""

from __future__ import annotations

import math
from typing import Annotated

import faiss
import numpy as np
import torch
from pydantic import Field

from graphhash.errors import GraphhashError
from graphhash.files.features import read_rows
from graphhash.files.neighbours import Neighbours
from graphhash.graphs.knn import TrainingSet, own_rows, unit_features, unit_rows
from graphhash.hyperparameters import Configurable, checked

# ``neighbours.method: auto`` searches exactly below this many training items and builds ``hnsw`` from there
# (docs/benchmarks.md, "kNN graphs at scale", 1280-d on 2 cores: exact takes 62 s at 50,000 training items and
# 165-196 s at 100,000, growing as N^2: below 200,000 it stays under about 15 minutes, and exact. hnsw's cost
# grows about as N log N; at its defaults it found 0.99-1.00 of the exact neighbours on CIFAR-10's features and
# on a 1280-d mixture).
AUTO_APPROXIMATE_FROM = 200_000
QUERY_BLOCK = 2048
# ivf's spherical k-means trains on at most this many items per cell (a seeded sample)
TRAINING_PER_CELL = 64
# a row set aside by a search that found it fewer than K candidates
MISSING = -1


def ranked(sims: torch.Tensor, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best of each row of ``sims`` (b, m), the cosines of ``candidates`` (m,) or (b, m) training rows
    (-inf: not a candidate), in the order of the contract: decreasing cosine, then increasing row; a place
    with no candidate left holds ``MISSING`` and -inf."""
    values, chosen = sims.topk(min(k, sims.shape[1]), dim=1)
    values, chosen = values.numpy(), chosen.numpy()
    rows = candidates[chosen] if candidates.ndim == 1 else np.take_along_axis(candidates, chosen, 1)
    rows[np.isneginf(values)] = MISSING
    if values.shape[1] < k:  # fewer candidates than places
        pad = k - values.shape[1]
        values = np.pad(values, ((0, 0), (0, pad)), constant_values=-np.inf)
        rows = np.pad(rows, ((0, 0), (0, pad)), constant_values=MISSING)
    order = np.lexsort((rows, -values), axis=1)
    return np.take_along_axis(rows, order, 1), np.take_along_axis(values, order, 1)


class NeighbourSearch(Configurable):
    """A way to find items' nearest training items: ``nearest`` returns them in ``TrainingSet.nearest``'s order
    (hyperparameters: ``neighbours.<method>``). An approximate method implements ``search`` on the unit rows."""

    def nearest(self, features: np.ndarray, train: np.ndarray, k: int) -> Neighbours:
        """The ``k`` training items most cosine-similar to each row of ``features`` (N, D: an array or an open
        features file's dataset); ``train`` (N,) marks the training items, never their own neighbours."""
        TrainingSet.check_count(k, int(train.sum()))
        unit = unit_features(features)
        train_rows, own_row = np.flatnonzero(train), own_rows(train)
        found = self.search(unit, train_rows, k, own_row)
        short = np.flatnonzero((found.indices == MISSING).any(axis=1))
        if len(short):  # too few candidates: those rows exactly, against the training rows a block at a time
            found.indices[short], found.similarities[short] = exact_rows(unit, train_rows, short, k, own_row)
        return found

    def search(self, unit: np.ndarray, train_rows: np.ndarray, k: int, own_row: np.ndarray) -> Neighbours:
        """Neighbours of every row of ``unit`` (N, D) among ``unit[train_rows]``, as positions in ``train_rows``;
        ``own_row`` (N,) is each row's own position (-1: none); rows it found too few for hold ``MISSING``."""
        raise NotImplementedError


def exact_rows(
    unit: np.ndarray, train_rows: np.ndarray, rows: np.ndarray, k: int, own_row: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The exact ``k`` neighbours of ``unit[rows]`` among ``unit[train_rows]``, the training rows read a block at
    a time (no copy of them all): the ``k`` best of every block, then the ``k`` best of those."""
    queries = torch.from_numpy(unit[rows])
    best_rows = np.empty((len(rows), 0), dtype=np.int64)
    best_sims = np.empty((len(rows), 0), dtype=np.float32)
    for start in range(0, len(train_rows), 16 * QUERY_BLOCK):
        positions = np.arange(start, min(start + 16 * QUERY_BLOCK, len(train_rows)))
        sims = queries @ torch.from_numpy(unit[train_rows[positions]]).T
        mine = own_row[rows] - start
        inside = (mine >= 0) & (mine < len(positions))
        sims[torch.from_numpy(np.flatnonzero(inside)), torch.from_numpy(mine[inside])] = -torch.inf
        found, values = ranked(sims, positions, k)
        best_rows, best_sims = np.hstack([best_rows, found]), np.hstack([best_sims, values])
        best_rows, best_sims = ranked(torch.from_numpy(best_sims), best_rows, k)
    return best_rows, best_sims


class Exact(NeighbourSearch):
    """Every item against every training item (``TrainingSet.nearest``, in blocks): exact, O(N x N_train)."""

    @checked
    def __init__(self):
        pass

    def nearest(self, features: np.ndarray, train: np.ndarray, k: int) -> Neighbours:
        every = train.all() and isinstance(features, np.ndarray)
        training = TrainingSet(features if every else read_rows(features, train))  # every item training: no copy
        return training.nearest(features, k, own_rows(train))


class IVF(NeighbourSearch):
    """Cells of spherical k-means (``faiss.Kmeans`` on a seeded sample of the training items): every item's cell
    is its nearest centroid, and the items of a cell are compared with the training items of the ``nprobe``
    cells whose centroids are nearest the cell's own (itself first), one matrix product per cell.

    Args:
        nlist: cells; 0: sqrt(n), at most n / 39 (FAISS's minimum of training points per cell)
        nprobe: cells searched for a cell's items; more is slower and finds more of the true neighbours
        iterations: k-means iterations
        seed: k-means' sample of training points and its initial centroids
    """

    @checked
    def __init__(
        self,
        *,
        nlist: Annotated[int, Field(ge=0)] = 0,
        nprobe: Annotated[int, Field(ge=1)] = 16,
        iterations: Annotated[int, Field(ge=1, le=1000)] = 10,
        seed: Annotated[int, Field(ge=0)] = 0,
    ):
        self.nlist, self.nprobe, self.iterations, self.seed = nlist, nprobe, iterations, seed

    def cells(self, items: int) -> int:
        """``nlist``, or sqrt(n) when it is 0, and never more cells than items / 39, never fewer than 1;
        an ``nlist`` the items cannot fill is one line."""
        if self.nlist > items // 39:
            raise GraphhashError(f"neighbours.ivf.nlist: {self.nlist} cells need at least {39 * self.nlist:,} "
                                 f"training items (there are {items:,}); lower it, or use 0")  # fmt: skip
        return self.nlist or max(1, min(round(math.sqrt(items)), items // 39))

    def centroids(self, unit: np.ndarray, train_rows: np.ndarray, cells: int) -> torch.Tensor:
        """(cells, D) unit centroids of spherical k-means on at most ``TRAINING_PER_CELL`` training items a cell."""
        sample = len(train_rows) if cells == 1 else min(len(train_rows), cells * TRAINING_PER_CELL)
        picked = np.sort(np.random.default_rng(self.seed).choice(len(train_rows), sample, replace=False))
        kmeans = faiss.Kmeans(unit.shape[1], cells, niter=self.iterations, seed=self.seed, spherical=True,
                              max_points_per_centroid=TRAINING_PER_CELL if cells > 1 else sample)  # fmt: skip
        kmeans.train(unit[train_rows[picked]])
        return unit_rows(torch.from_numpy(kmeans.centroids))

    def search(self, unit: np.ndarray, train_rows: np.ndarray, k: int, own_row: np.ndarray) -> Neighbours:
        cells = self.cells(len(train_rows))
        centroids = self.centroids(unit, train_rows, cells)
        home = np.concatenate([(torch.from_numpy(unit[start : start + QUERY_BLOCK]) @ centroids.T).argmax(1).numpy()
                               for start in range(0, len(unit), QUERY_BLOCK)])  # fmt: skip
        closeness = centroids @ centroids.T
        closeness.fill_diagonal_(torch.inf)  # a cell's own first
        probes = closeness.topk(min(self.nprobe, cells), dim=1).indices.numpy()
        by_cell, bounds = grouped(home, cells)  # items grouped by cell
        training, train_bounds = grouped(home[train_rows], cells)  # positions in train_rows, grouped by cell
        indices = np.empty((len(unit), k), dtype=np.int64)
        similarities = np.empty((len(unit), k), dtype=np.float32)
        for cell in range(cells):
            rows = by_cell[bounds[cell] : bounds[cell + 1]]
            if not len(rows):
                continue
            candidates = np.sort(
                np.concatenate([training[train_bounds[c] : train_bounds[c + 1]] for c in probes[cell]])
            )
            sims = torch.from_numpy(unit[rows]) @ torch.from_numpy(unit[train_rows[candidates]]).T
            place = np.searchsorted(candidates, own_row[rows])  # the item itself among its candidates
            own = (own_row[rows] >= 0) & (place < len(candidates))
            own[own] = candidates[place[own]] == own_row[rows][own]
            sims[torch.from_numpy(np.flatnonzero(own)), torch.from_numpy(place[own])] = -torch.inf
            indices[rows], similarities[rows] = ranked(sims, candidates, k)
        return Neighbours(indices, similarities)


def grouped(cell_of: np.ndarray, cells: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions grouped by their cell (``cell_of``, in row order within a cell), and where each of the
    ``cells`` cells starts and ends in that order ((cells + 1,) bounds)."""
    order = np.argsort(cell_of, kind="stable")
    return order, np.searchsorted(cell_of[order], np.arange(cells + 1))


class HNSW(NeighbourSearch):
    """A hierarchical navigable small-world graph of the unit vectors (``faiss.IndexHNSWFlat``, inner product),
    built on one thread so that it is the same graph every run; what a query finds is ranked again by its
    cosine as a matrix product computes it.

    Args:
        M: links per node; more is slower to build and finds more of the true neighbours
        ef_construction: candidates kept while inserting an item
        ef_search: candidates kept while searching (at least K + 1 are)
    """

    @checked
    def __init__(
        self,
        *,
        M: Annotated[int, Field(ge=2, le=512)] = 32,
        ef_construction: Annotated[int, Field(ge=1)] = 80,
        ef_search: Annotated[int, Field(ge=1)] = 128,
    ):
        self.M, self.ef_construction, self.ef_search = M, ef_construction, ef_search

    def build(self, unit: np.ndarray, train_rows: np.ndarray) -> faiss.Index:
        index = faiss.IndexHNSWFlat(unit.shape[1], self.M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.ef_construction
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)  # FAISS inserts in an unspecified order on several threads
        try:
            for start in range(0, len(train_rows), 16 * QUERY_BLOCK):  # FAISS keeps its own copy: no second one
                index.add(unit[train_rows[start : start + 16 * QUERY_BLOCK]])
        finally:
            faiss.omp_set_num_threads(threads)
        index.hnsw.efSearch = self.ef_search
        return index

    def search(self, unit: np.ndarray, train_rows: np.ndarray, k: int, own_row: np.ndarray) -> Neighbours:
        index = self.build(unit, train_rows)
        indices = np.empty((len(unit), k), dtype=np.int64)
        similarities = np.empty((len(unit), k), dtype=np.float32)
        for start in range(0, len(unit), QUERY_BLOCK):
            block = slice(start, min(start + QUERY_BLOCK, len(unit)))
            _, found = index.search(unit[block], min(k + 1, len(train_rows)))
            found[found == own_row[block, None]] = MISSING  # never its own neighbour
            sims = np.einsum("bd,bkd->bk", unit[block], unit[train_rows[np.maximum(found, 0)]])
            sims[found < 0] = -np.inf
            indices[block], similarities[block] = ranked(torch.from_numpy(sims), found, k)
        return Neighbours(indices, similarities)


SEARCHES: dict[str, type[NeighbourSearch]] = {"exact": Exact, "ivf": IVF, "hnsw": HNSW}
AUTO = "auto"


def resolve_method(method: str, training_items: int) -> str:
    """``auto`` -> ``exact`` below ``AUTO_APPROXIMATE_FROM`` training items, ``hnsw`` from there; others as they
    are."""
    if method != AUTO:
        return method
    return "hnsw" if training_items >= AUTO_APPROXIMATE_FROM else "exact"


def search_neighbours(
    features: np.ndarray, train: np.ndarray, k: int, method: str = "exact", options: dict | None = None
) -> Neighbours:
    """The ``k`` training items most cosine-similar to each row of ``features`` (N, D: an array or an open
    features file's dataset), found by ``method`` (a key of ``SEARCHES`` or ``auto``) with its hyperparameters
    ``options``; ``train`` is the (N,) mask.

    A training item is never its own neighbour.
    """
    search = SEARCHES[resolve_method(method, int(train.sum()))](**(options or {}))
    with torch.inference_mode():
        return search.nearest(features, train, k)
