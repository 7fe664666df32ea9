"""Every hasher of the ``baselines`` stage, by its name in ``baselines.methods`` (``HASHERS``), as estimators:
``Hasher(bits, seed, **hyperparameters).fit(...)``, then ``encode``.

    linear       LSH, PCAH, ITQ                       codes = project(x - mean) >= 0
    spectral     SH, AGH, AGH2                        eigenfunctions of a Laplacian on the data
    trained      BiHalf, GreedyHash                   a linear layer trained through a binary layer
    crossmodal   CVH, CMFH, CCA-ITQ                   one Hamming space for paired views
    gch          GCH                                  supervised, a GCN over the label graph

A single-modality hasher is fitted on each modality of a run alone (``fit(x)``, ``encode(x)``); a cross-modal one
(``crossmodal``) on every modality at once (``fit(views)``, ``encode(x, modality)``), into one Hamming space. The
pieces they share with NRDH's hash network (PCA, ITQ's rotation, the binary layers) are in
``graphhash.quantisation``. A new hasher is a class with a ``method`` name in one of these modules: defining it
registers it.
"""

from __future__ import annotations

from graphhash.hashers import crossmodal, gch, linear, spectral, trained  # noqa: F401  (defining a hasher registers it)
from graphhash.hashers.base import Hasher, registered
from graphhash.hashers.crossmodal import CrossModalHasher

HASHERS: dict[str, type[Hasher]] = registered()

__all__ = ["HASHERS", "CrossModalHasher", "Hasher"]
