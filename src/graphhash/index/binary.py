"""FAISS binary indexes over packed codes, and exact re-ranking in the project's order.

Codes are packed rows of bytes (``np.packbits``: bit 0 is the most significant bit of byte 0), which is the
layout FAISS's binary indexes take, with d = 8 x bytes bits. A code length that is not a multiple of 8 is
indexed as its packed bytes: packbits pads every code with the same zero bits, which add nothing to any
Hamming distance, so distances and rankings are those of the unpadded codes.

**Order.** FAISS promises no order among equal distances. Every search asks FAISS for candidates, computes
their distances again with the project's popcount kernel (``graphhash.hamming``) and sorts them by
(distance, database index). An exhaustive search (``flat``, or ``ivf`` visiting every cell) asks for 2k + 1
candidates: they hold every item closer than the k-th distance t, and, when the last candidate is farther
than t, every item at t too, so the sort gives exactly the evaluator's ranking. When the last candidate is
still at t (heavy ties: short codes, large databases), the places at t are filled with the first items at t
in database order, found by a scan that stops as soon as it has them. ``ivf`` and ``hnsw`` otherwise return
the k candidates they found, in the same order.

**Adding and removing** (``graphhash add``, ``graphhash remove``): a code is added as the next slot of the stored
codes, without touching the others: ``flat`` appends it, ``ivf`` files it in its nearest cell (the cells stay those
k-means found for the pipeline's database), ``hnsw`` links it into the graph. A removal: ``flat`` drops the code
(the slots after it move up, so its order stays the database order), ``ivf`` takes it out of its cell and keeps
its slot, marked removed, ``hnsw`` marks it removed (FAISS cannot unlink a node: searches ask for as many more
candidates as there are removed slots and drop those). ``dvc repro`` rebuilds every index without the removed
items.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Annotated

import faiss
import numpy as np
from pydantic import Field

from graphhash.files.index import StoredIndex
from graphhash.hamming import first_at_distance, rerank
from graphhash.hyperparameters import Configurable, HyperparameterError, checked

# ``index.kind: auto`` builds ``flat`` below this many database items and ``ivf`` from there (docs/benchmarks.md,
# "Search": on clustered 64-bit codes, ivf at nprobe 16 reached recall@100 >= 0.95 from 100,000 items, 11x flat's
# speed; at 50,000 its recall was 0.83).
AUTO_IVF_FROM = 100_000
# An exhaustive search asks FAISS for CANDIDATES x k + 1 items. On random 64-bit codes of 100,000 items the k-th
# and (k + 1)-th tie for every query and the scan for the first items at that distance costs a third of the
# search; with 2k + 1 candidates 11% of queries still tie, for about 10% more FAISS time (bench/search.py).
CANDIDATES = 2
QUERY_BLOCK = 4096
# ivf's k-means trains on at most this many codes per cell (a seeded sample): at 1,000,000 codes, 31 s instead of
# 112 s to build, and recall@100 0.982 instead of 0.974 at nprobe 16 (docs/benchmarks.md, "Search")
TRAINING_PER_CELL = 64


class BinaryIndex(Configurable):
    """A kind of FAISS binary index: ``build`` it over database codes, then ``search`` it (hyperparameters:
    ``index.<kind>``)."""

    def options(self) -> dict[str, int]:
        """The hyperparameters asked for."""
        return {}

    def used(self, index: faiss.IndexBinary) -> dict[str, int]:
        """The hyperparameters ``index`` was built with (what is saved with it): those asked for, unless the
        database's size changed them."""
        return self.options()

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

    def tune(self, index: faiss.IndexBinary, k: int) -> None:
        """Set the index's search-time options (saved indexes keep theirs; these are the params')."""

    def add(self, index: faiss.IndexBinary, codes: np.ndarray, slots: np.ndarray) -> None:
        """Add ``codes`` (n, B) uint8 as the slots ``slots`` (the next n of the stored codes), the others untouched."""
        index.add(np.ascontiguousarray(codes, dtype=np.uint8))

    def remove(self, index: faiss.IndexBinary, slots: np.ndarray) -> bool:
        """Take the slots ``slots`` out of the searched items. True when the index dropped them (the slots after them
        move up: the caller drops their stored codes too), False when it keeps them, to be marked removed."""
        return False

    def changed(
        self,
        stored: StoredIndex,
        gone: np.ndarray,
        codes: np.ndarray,
        ids: list[str],
        labels: np.ndarray,
        serials: np.ndarray,
    ) -> StoredIndex:
        """``stored`` without the slots ``gone``, then with ``codes`` (n, B) of the items ``ids`` (their ``labels``
        and ``serials``) after its last slot: its FAISS index changed in place, its arrays as new ones."""
        codes_, ids_, labels_, serials_, removed = (
            stored.codes,
            stored.ids,
            stored.labels,
            stored.serials,
            stored.removed,
        )
        removed = removed.copy()
        if len(gone):
            if self.remove(stored.index, gone):
                keep = np.ones(len(ids_), dtype=bool)
                keep[gone] = False
                codes_, labels_, serials_, removed = codes_[keep], labels_[keep], serials_[keep], removed[keep]
                ids_ = [item_id for item_id, k in zip(ids_, keep, strict=True) if k]
            else:
                removed[gone] = True
        if len(codes):
            self.add(stored.index, codes, np.arange(len(ids_), len(ids_) + len(codes)))
            codes_ = np.concatenate([codes_, codes])
            ids_ = ids_ + list(ids)
            labels_ = np.concatenate([labels_, labels])
            serials_ = np.concatenate([serials_, np.asarray(serials, dtype=np.int64)])
            removed = np.concatenate([removed, np.zeros(len(codes), dtype=bool)])
        return replace(stored, codes=codes_, ids=ids_, labels=labels_, serials=serials_, removed=removed)

    def search(
        self,
        index: faiss.IndexBinary,
        database: np.ndarray,
        queries: np.ndarray,
        k: int,
        removed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The first ``k`` database items for each query (packed codes (q, B)), in the project's order.

        ``database`` holds the code of every slot of the index, for the exact re-ranking; ``removed`` (bool, one per
        slot) marks the slots no search returns. Returns slots int64 (q, k) and Hamming distances int32 (q, k); k is
        capped at the items searched, and a row holds -1 where an approximate index found fewer than k items.
        Queries go in blocks of ``QUERY_BLOCK``, so memory stays bounded.
        """
        queries = np.ascontiguousarray(queries, dtype=np.uint8)
        gone = np.zeros(len(database), dtype=bool) if removed is None else removed
        dropped = int(gone.sum())
        live = len(database) - dropped
        k = min(k, live)
        exhaustive = self.exhaustive(index)
        wanted = min(live, CANDIDATES * k + 1 if exhaustive else k)
        asked = min(int(index.ntotal), wanted + (dropped if self.keeps_removed(index) else 0))
        self.tune(index, asked)
        ids = np.empty((len(queries), k), dtype=np.int64)
        distances = np.empty((len(queries), k), dtype=np.int32)
        for start in range(0, len(queries), QUERY_BLOCK):
            block = slice(start, start + QUERY_BLOCK)
            _, candidates = index.search(queries[block], asked)
            if dropped:
                candidates[(candidates >= 0) & gone[np.maximum(candidates, 0)]] = -1
            found, found_distances = rerank(queries[block], database, candidates, wanted)
            if exhaustive and wanted < live:
                _complete_ties(found, found_distances, queries[block], database, k, gone if dropped else None)
            ids[block], distances[block] = found[:, :k], found_distances[:, :k]
        return ids, distances

    def keeps_removed(self, index: faiss.IndexBinary) -> bool:
        """True when the index still returns removed slots (they are dropped after the search)."""
        return False


def _complete_ties(
    ids: np.ndarray,
    distances: np.ndarray,
    queries: np.ndarray,
    database: np.ndarray,
    k: int,
    removed: np.ndarray | None = None,
) -> None:
    """In place, for an exhaustive search whose candidates (every row of ``ids``, in order) end at the k-th
    distance t: fill the places at t with the first items at t in database order (slots not ``removed``). The
    candidates closer than t are all there (they are among the smallest distances), and so are all items at t when
    the last candidate is farther."""
    open_rows = np.flatnonzero(distances[:, -1] == distances[:, k - 1])
    if not len(open_rows):
        return
    tie = distances[open_rows, k - 1]
    closer = (distances[open_rows, :k] < tie[:, None]).sum(axis=1)
    slots = None if removed is None else np.flatnonzero(~removed)
    searched = database if slots is None else database[slots]
    fill = first_at_distance(queries[open_rows], searched, tie, k - closer)
    if slots is not None:
        fill = np.where(fill >= 0, slots[np.maximum(fill, 0)], -1)
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

    def remove(self, index: faiss.IndexBinary, slots: np.ndarray) -> bool:
        index.remove_ids(np.asarray(slots, dtype=np.int64))  # the codes after them move up: ids stay positions
        return True


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

    def used(self, index: faiss.IndexBinary) -> dict[str, int]:
        return {"nlist": int(index.nlist), "nprobe": min(self.nprobe, int(index.nlist))}  # ``cells`` caps nlist

    def exhaustive(self, index: faiss.IndexBinary) -> bool:
        return self.nprobe >= index.nlist  # every cell visited

    def tune(self, index: faiss.IndexBinary, k: int) -> None:
        index.nprobe = min(self.nprobe, index.nlist)

    def cells(self, items: int) -> int:
        """``nlist``, or 4 sqrt(n) when it is 0; never more cells than items / 39, never fewer than 1."""
        wanted = self.nlist or round(4 * math.sqrt(items))
        return max(1, min(wanted, items // 39))

    def create(self, bits: int, items: int) -> faiss.IndexBinary:
        index = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(bits), bits, self.cells(items))  # keeps its quantiser
        index.cp.max_points_per_centroid = TRAINING_PER_CELL
        index.nprobe = self.nprobe
        return index

    def add(self, index: faiss.IndexBinary, codes: np.ndarray, slots: np.ndarray) -> None:
        index.add_with_ids(np.ascontiguousarray(codes, dtype=np.uint8), np.asarray(slots, dtype=np.int64))

    def remove(self, index: faiss.IndexBinary, slots: np.ndarray) -> bool:
        index.remove_ids(np.asarray(slots, dtype=np.int64))  # out of their cells; the other ids are the slots still
        return False


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
        ef_search: Annotated[int, Field(ge=1)] = 200,
    ):
        self.M, self.ef_construction, self.ef_search = M, ef_construction, ef_search

    def options(self) -> dict[str, int]:
        return {"M": self.M, "ef_construction": self.ef_construction, "ef_search": self.ef_search}

    def create(self, bits: int, items: int) -> faiss.IndexBinary:
        index = faiss.IndexBinaryHNSW(bits, self.M)
        index.hnsw.efConstruction = self.ef_construction
        index.hnsw.efSearch = self.ef_search
        return index

    def tune(self, index: faiss.IndexBinary, k: int) -> None:
        index.hnsw.efSearch = max(self.ef_search, k)

    def keeps_removed(self, index: faiss.IndexBinary) -> bool:
        return True
