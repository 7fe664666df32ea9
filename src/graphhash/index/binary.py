"""FAISS binary indexes over packed codes, and exact re-ranking in the project's order.

Codes are packed rows of bytes (``np.packbits``: bit 0 is the most significant bit of byte 0), which is the
layout FAISS's binary indexes take, with d = 8 x bytes bits. A code length that is not a multiple of 8 is
indexed as its packed bytes: packbits pads every code with the same zero bits, which add nothing to any
Hamming distance, so distances and rankings are those of the unpadded codes.

**Order.** FAISS promises no order among equal distances. Every search asks FAISS for k + 1 candidates,
computes their distances again with the project's popcount kernel (``graphhash.hamming``) and sorts them by
(distance, database index). For ``flat`` the candidates hold every item closer than the k-th distance t; when
the (k + 1)-th candidate is also at t, the items at distance t that fill the list are not necessarily the
first ones in database order, so they are replaced by the first items at distance t in database order (a
scan that stops as soon as it has them). ``flat`` therefore returns exactly the evaluator's ranking.
``ivf`` visiting every cell (nprobe >= nlist) is exhaustive too; otherwise ``ivf`` and ``hnsw`` return the
candidates they found, in the same order.
"""

from __future__ import annotations

import math
from typing import Annotated

import faiss
import numpy as np
from pydantic import Field

from graphhash.hamming import first_at_distance, rerank
from graphhash.hyperparameters import HyperparameterError, checked

# ``index.kind: auto`` builds ``flat`` below this many database items and ``ivf`` from there
# (docs/benchmarks.md, "Search": the crossing point of flat's and ivf's query times at recall >= 0.95).
AUTO_IVF_FROM = 1_000_000


class BinaryIndex:
    """A kind of FAISS binary index: ``build`` it over database codes, then ``search`` it.

    Hyperparameters are the keyword-only arguments of a subclass's ``__init__`` (params.yaml's
    ``index.<kind>`` section comes from them); ``check`` holds rules across several of them.
    """

    @classmethod
    def check(cls, **hyperparameters: object) -> None:
        """Rules across several hyperparameters; none by default."""

    def options(self) -> dict[str, int]:
        """The hyperparameters, as saved with the index."""
        return {}

    def exhaustive(self, index: faiss.IndexBinary) -> bool:
        """True when a search compares the query with every code: then it returns the evaluator's ranking."""
        return False

    def create(self, bits: int, items: int) -> faiss.IndexBinary:
        """An empty index for ``bits``-bit codes (a multiple of 8) that will hold ``items`` codes."""
        raise NotImplementedError

    def build(self, codes: np.ndarray) -> faiss.IndexBinary:
        """An index holding ``codes`` (n, B) uint8, row i as database item i."""
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        index = self.create(8 * codes.shape[1], len(codes))
        if not index.is_trained:
            index.train(codes)
        index.add(codes)
        return index

    def search(
        self, index: faiss.IndexBinary, database: np.ndarray, queries: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The first ``k`` database items for each query (packed codes (q, B)), in the project's order.

        ``database`` holds the codes the index was built on, for the exact re-ranking. Returns database
        indices int64 (q, k) and Hamming distances int32 (q, k); k is capped at the database's size, and a
        row holds -1 where an approximate index found fewer than k items.
        """
        queries = np.ascontiguousarray(queries, dtype=np.uint8)
        k = min(k, len(database))
        _, candidates = index.search(queries, min(k + 1, len(database)))
        ids, distances = rerank(queries, database, candidates, k + 1)
        if self.exhaustive(index) and k < len(database):
            _complete_ties(ids, distances, queries, database, k)
        return ids[:, :k], distances[:, :k]


def _complete_ties(ids: np.ndarray, distances: np.ndarray, queries: np.ndarray, database: np.ndarray, k: int) -> None:
    """In place: where the k-th and (k + 1)-th candidates tie at distance t, fill the places at t with the
    first items at t in database order (the candidates closer than t are already all there)."""
    open_rows = np.flatnonzero(distances[:, k] == distances[:, k - 1])
    if not len(open_rows):
        return
    tie = distances[open_rows, k - 1]
    closer = (distances[open_rows, :k] < tie[:, None]).sum(axis=1)
    fill = first_at_distance(queries[open_rows], database, tie, k - closer)
    for row, r, start in zip(open_rows, range(len(open_rows)), closer, strict=True):
        ids[row, start:k] = fill[r, : k - start]
        distances[row, start:k] = tie[r]


class Flat(BinaryIndex):
    """Exhaustive search (``faiss.IndexBinaryFlat``): exact, every query compared with every code."""

    @checked
    def __init__(self):
        pass

    def exhaustive(self, index: faiss.IndexBinary) -> bool:
        return True

    def create(self, bits: int, items: int) -> faiss.IndexBinary:
        return faiss.IndexBinaryFlat(bits)


class IVF(BinaryIndex):
    """An inverted file (``faiss.IndexBinaryIVF``): the codes are clustered into ``nlist`` cells by binary
    k-means, and a query visits the ``nprobe`` cells nearest to it.

    Args:
        nlist: cells; 0: 4 sqrt(n), at most n / 39 (FAISS's minimum of training points per cell)
        nprobe: cells a query visits; more is slower and finds more of the true neighbours
    """

    @checked
    def __init__(self, *, nlist: Annotated[int, Field(ge=0)] = 0, nprobe: Annotated[int, Field(ge=1)] = 16):
        self.check(nlist=nlist, nprobe=nprobe)
        self.nlist, self.nprobe = nlist, nprobe

    @classmethod
    def check(cls, *, nlist: int, nprobe: int) -> None:
        if 0 < nlist < nprobe:
            raise HyperparameterError("nprobe", f"visits more cells ({nprobe}) than there are (nlist {nlist})")

    def options(self) -> dict[str, int]:
        return {"nlist": self.nlist, "nprobe": self.nprobe}

    def exhaustive(self, index: faiss.IndexBinary) -> bool:
        return index.nprobe >= index.nlist  # every cell visited

    def cells(self, items: int) -> int:
        """``nlist``, or 4 sqrt(n) when it is 0; never more cells than items / 39, never fewer than 1."""
        wanted = self.nlist or round(4 * math.sqrt(items))
        return max(1, min(wanted, items // 39))

    def create(self, bits: int, items: int) -> faiss.IndexBinary:
        index = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(bits), bits, self.cells(items))  # keeps its quantiser
        index.nprobe = self.nprobe
        return index


class HNSW(BinaryIndex):
    """A hierarchical navigable small-world graph of the codes (``faiss.IndexBinaryHNSW``).

    Args:
        M: links per node; more is slower to build and finds more of the true neighbours
        ef_construction: candidates kept while inserting a code
        ef_search: candidates kept while searching (at least k is used)
    """

    @checked
    def __init__(
        self,
        *,
        M: Annotated[int, Field(ge=2, le=512)] = 32,
        ef_construction: Annotated[int, Field(ge=1)] = 40,
        ef_search: Annotated[int, Field(ge=1)] = 128,
    ):
        self.M, self.ef_construction, self.ef_search = M, ef_construction, ef_search

    def options(self) -> dict[str, int]:
        return {"M": self.M, "ef_construction": self.ef_construction, "ef_search": self.ef_search}

    def create(self, bits: int, items: int) -> faiss.IndexBinary:
        index = faiss.IndexBinaryHNSW(bits, self.M)
        index.hnsw.efConstruction = self.ef_construction
        index.hnsw.efSearch = self.ef_search
        return index

    def search(
        self, index: faiss.IndexBinary, database: np.ndarray, queries: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        index.hnsw.efSearch = max(self.ef_search, k + 1)
        return super().search(index, database, queries, k)
