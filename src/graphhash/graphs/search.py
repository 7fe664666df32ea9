"""How the ``neighbours`` stage finds every item's nearest training items, by the name ``neighbours.method``.

    exact  every item against every training item, in blocks (torch): O(N x N_train)
    ivf    a FAISS inverted file on the unit vectors: spherical k-means cells, nprobe of them visited
    hnsw   a FAISS navigable small-world graph of the unit vectors
    auto   exact below ``AUTO_APPROXIMATE_FROM`` training items, hnsw from there

Cosine similarity is the inner product of unit vectors, so the FAISS indexes use ``METRIC_INNER_PRODUCT``
on the normalised training features. Every method keeps the contract of ``TrainingSet.nearest``: K training
rows per item, never the item itself, ordered by decreasing cosine, equal cosines by increasing row. An
approximate method asks FAISS for K + 1 candidates (one may be the item itself), computes the candidates'
cosines again exactly and sorts them in that order, so the neighbours it finds carry their exact
similarities and only *which* items are found can differ from ``exact``. A row for which FAISS found fewer
than K candidates other than the item itself is searched exactly instead.

**Determinism.** ``ivf``'s k-means samples its training points and initial centroids with its ``seed``;
``hnsw`` inserts the items on one thread (FAISS's multithreaded HNSW insertion is not reproducible); both
search queries independently. The same features and params give the same neighbours file (on one machine:
the floating-point sums of k-means and of the distances may differ between CPUs and thread counts).
"""

from __future__ import annotations

import math
from typing import Annotated

import faiss
import numpy as np
import torch
from pydantic import Field

from graphhash.errors import GraphhashError
from graphhash.files.neighbours import Neighbours
from graphhash.graphs.knn import TrainingSet, own_rows, unit_rows
from graphhash.hyperparameters import Configurable, checked

# ``neighbours.method: auto`` searches exactly below this many training items and builds ``hnsw`` from there
# (docs/benchmarks.md, "kNN graphs at scale", 1280-d on 2 cores: exact takes 62 s at 50,000 training items and
# 165-196 s at 100,000, growing as N^2: below 200,000 it stays under about 15 minutes, and exact. hnsw's cost
# grows about as N log N; at its defaults it found 0.99-1.00 of the exact neighbours on CIFAR-10's features and
# on a 1280-d mixture, where ivf at nprobe 64 needed more time for the same recall from 100,000 items on).
AUTO_APPROXIMATE_FROM = 200_000
QUERY_BLOCK = 2048
# ivf's spherical k-means trains on at most this many items per cell (a seeded sample)
TRAINING_PER_CELL = 64


class NeighbourSearch(Configurable):
    """A way to find items' nearest training items: ``nearest`` returns them in ``TrainingSet.nearest``'s order
    (hyperparameters: ``neighbours.<method>``)."""

    def build(self, unit: np.ndarray) -> faiss.Index:
        """A FAISS index holding ``unit`` (n, D) float32, row i as training row i."""
        raise NotImplementedError

    def nearest(self, training: TrainingSet, features: np.ndarray, k: int, own_row: np.ndarray) -> Neighbours:
        """The ``k`` training items most cosine-similar to each row of ``features`` (N, D); ``own_row`` (N,) is
        each row's own row among the training items (-1: not a training item), never its neighbour."""
        training.check_k(k)
        unit = training.unit.numpy()
        index = self.build(unit)
        indices = np.empty((len(features), k), dtype=np.int64)
        similarities = np.empty((len(features), k), dtype=np.float32)
        for start in range(0, len(features), QUERY_BLOCK):
            block = slice(start, min(start + QUERY_BLOCK, len(features)))
            queries = unit_rows(features[block]).numpy()
            _, found = index.search(queries, min(k + 1, len(training)))
            found[found == own_row[block, None]] = -1  # never its own neighbour
            sims = np.einsum("bd,bkd->bk", queries, unit[np.maximum(found, 0)])
            sims[found < 0] = -np.inf
            order = np.lexsort((found, -sims), axis=1)[:, :k]  # exact cosine, then row; missing ones last
            indices[block] = np.take_along_axis(found, order, 1)
            similarities[block] = np.take_along_axis(sims, order, 1)
        short = np.flatnonzero((indices < 0).any(axis=1))
        if len(short):  # FAISS found too few: those rows exactly
            exact = training.nearest(features[short], k, own_row[short])
            indices[short], similarities[short] = exact.indices, exact.similarities
        return Neighbours(indices, similarities)


class Exact(NeighbourSearch):
    """Every item against every training item (``TrainingSet.nearest``, in blocks): exact, O(N x N_train)."""

    @checked
    def __init__(self):
        pass

    def nearest(self, training: TrainingSet, features: np.ndarray, k: int, own_row: np.ndarray) -> Neighbours:
        return training.nearest(features, k, own_row)


class IVF(NeighbourSearch):
    """An inverted file (``faiss.IndexIVFFlat``, inner product): the unit vectors are clustered into ``nlist``
    cells by spherical k-means, and a query visits the ``nprobe`` cells nearest to it.

    Args:
        nlist: cells; 0: 4 sqrt(n), at most n / 39 (FAISS's minimum of training points per cell)
        nprobe: cells a query visits; more is slower and finds more of the true neighbours
        seed: k-means' sample of training points and its initial centroids
    """

    @checked
    def __init__(
        self,
        *,
        nlist: Annotated[int, Field(ge=0)] = 0,
        nprobe: Annotated[int, Field(ge=1)] = 64,
        seed: Annotated[int, Field(ge=0)] = 0,
    ):
        self.nlist, self.nprobe, self.seed = nlist, nprobe, seed

    def cells(self, items: int) -> int:
        """``nlist``, or 4 sqrt(n) when it is 0, and never more cells than items / 39, never fewer than 1;
        an ``nlist`` the items cannot fill is one line."""
        if self.nlist > items // 39:
            raise GraphhashError(f"neighbours.ivf.nlist: {self.nlist} cells need at least {39 * self.nlist:,} "
                                 f"training items (there are {items:,}); lower it, or use 0")  # fmt: skip
        return self.nlist or max(1, min(round(4 * math.sqrt(items)), items // 39))

    def build(self, unit: np.ndarray) -> faiss.Index:
        cells = self.cells(len(unit))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(unit.shape[1]), unit.shape[1], cells, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = self.seed
        index.cp.spherical = True
        index.cp.max_points_per_centroid = TRAINING_PER_CELL
        index.train(unit)
        index.add(unit)
        index.nprobe = min(self.nprobe, cells)
        return index


class HNSW(NeighbourSearch):
    """A hierarchical navigable small-world graph of the unit vectors (``faiss.IndexHNSWFlat``, inner product),
    built on one thread so that it is the same graph every run.

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

    def build(self, unit: np.ndarray) -> faiss.Index:
        index = faiss.IndexHNSWFlat(unit.shape[1], self.M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.ef_construction
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)  # FAISS inserts in an unspecified order on several threads
        try:
            index.add(unit)
        finally:
            faiss.omp_set_num_threads(threads)
        index.hnsw.efSearch = self.ef_search
        return index


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
    """The ``k`` training items most cosine-similar to each row of ``features`` (N, D), found by ``method`` (a
    key of ``SEARCHES`` or ``auto``) with its hyperparameters ``options``; ``train`` is the (N,) mask.

    A training item is never its own neighbour.
    """
    search = SEARCHES[resolve_method(method, int(train.sum()))](**(options or {}))
    training = TrainingSet(features if train.all() else features[train])  # every item training: no copy
    with torch.inference_mode():
        return search.nearest(training, features, k, own_rows(train))
