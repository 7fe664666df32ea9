"""``neighbours``: how the ``neighbours`` stage finds every item's nearest training items; ``neighbours.<method>``
holds a method's options."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, create_model

from graphhash.graphs.search import AUTO, AUTO_APPROXIMATE_FROM, SEARCHES
from graphhash.params import Section, options_fields

Method = Literal[(*SEARCHES, AUTO)]


class _Neighbours(Section):
    """How every item's graph.nodes - 1 nearest training items are found: exactly, or with a FAISS index."""

    section = "neighbours"

    method: Method = Field(
        AUTO,
        description=f"{' | '.join(SEARCHES)} | {AUTO} (exact below {AUTO_APPROXIMATE_FROM:,} training items, hnsw "
        "from there); exact compares every item with every training item",
    )


NeighboursParams = create_model(
    "NeighboursParams", __base__=_Neighbours, __doc__=_Neighbours.__doc__, **options_fields(SEARCHES)
)
