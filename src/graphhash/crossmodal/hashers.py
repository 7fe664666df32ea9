"""Every hasher of the ``baselines`` stage, by its name in ``baselines.methods``: the single-modality hashers
(``graphhash.evaluation.baselines``), fitted on each modality of a run alone, and the cross-modal ones (CVH, CMFH,
CCA-ITQ, and the supervised GCH), fitted on every modality at once into one Hamming space."""

from __future__ import annotations

from graphhash.crossmodal.baselines import CROSSMODAL_BASELINES, CrossModalHasher
from graphhash.crossmodal.gch import GCH
from graphhash.evaluation.baselines import BASELINES

HASHERS: dict[str, type] = {**BASELINES, **CROSSMODAL_BASELINES, "gch": GCH}


def is_crossmodal(name: str) -> bool:
    """Whether the hasher ``name`` fits every modality at once (and needs two or more)."""
    return issubclass(HASHERS[name], CrossModalHasher)
