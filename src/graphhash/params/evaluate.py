"""``evaluate``: the retrieval protocol's cut-offs and the figures."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from graphhash.hyperparameters import Count
from graphhash.params import Section, names


class EvaluateParams(Section):
    """The retrieval protocol's cut-offs, and the figures."""

    section = "evaluate"

    map_at: names(Count) = Field([1000, 100], description="mAP@K cut-offs (mAP@all is always reported)")
    neighbours: Count = Field(
        100,
        description="R, the label-free protocol's relevant items: a query's R nearest database items by cosine "
        "similarity of the raw features (nmap@K, recall@K)",
    )
    radius: Annotated[int, Field(ge=0)] = Field(2, description="Hamming radius of precision, recall and F1")
    figure_queries: Annotated[int, Field(ge=0)] = Field(
        5, description="top-10 retrieval figures (image data): the first query of this many classes; 0: none"
    )
    cosine_queries: Annotated[int, Field(ge=0)] = Field(
        0,
        description="the cosine (real-valued) reference row: 0: every query | N: N evenly spaced queries (a "
        "full sort of the database per query: for very large runs)",
    )
