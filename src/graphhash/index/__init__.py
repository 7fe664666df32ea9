"""Search indexes over binary codes, by the name ``index.kind`` gives them: FAISS's binary indexes.

    flat   exhaustive search: exact, O(n) per query                      (faiss.IndexBinaryFlat)
    ivf    an inverted file: k-means cells of the codes, nprobe visited   (faiss.IndexBinaryIVF)
    hnsw   a navigable small-world graph of the codes                      (faiss.IndexBinaryHNSW)

Every kind returns results in the project's order (ascending Hamming distance, ties by ascending database
index), re-ranked with the project's popcount kernel; ``flat`` returns exactly the evaluator's ranking.
``auto`` is not a class: ``resolve_kind`` turns it into ``flat`` or ``ivf`` by the database's size.
"""

from __future__ import annotations

from graphhash.index.binary import AUTO_IVF_FROM, HNSW, IVF, BinaryIndex, Flat

INDEXES: dict[str, type[BinaryIndex]] = {"flat": Flat, "ivf": IVF, "hnsw": HNSW}
AUTO = "auto"

__all__ = ["AUTO", "INDEXES", "BinaryIndex", "build_index", "resolve_kind"]


def resolve_kind(kind: str, items: int) -> str:
    """``auto`` -> ``flat`` below ``AUTO_IVF_FROM`` database items, ``ivf`` from there; other kinds as they are."""
    if kind != AUTO:
        return kind
    return "ivf" if items >= AUTO_IVF_FROM else "flat"


def build_index(kind: str, options: dict) -> BinaryIndex:
    """The index kind ``kind`` (a key of ``INDEXES``) with its hyperparameters ``options``."""
    return INDEXES[kind](**options)
