"""``graph``: how items become graphs (NRDH's Eqs. 2-4), for the autoencoder and for the hash network's inputs."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from graphhash.hyperparameters import NonNegative
from graphhash.params import Section


class GraphParams(Section):
    """How items become graphs (Eqs. 2-4): for the autoencoder, and for the hash network's graph inputs."""

    section = "graph"

    kind: Literal["batch", "knn"] = Field(
        "knn", description="batch: M random training items (the paper) | knn: a node and its M - 1 nearest"
    )
    nodes: Annotated[int, Field(ge=2, le=100_000)] = Field(10, description="M, the nodes of one graph (paper: 10)")
    rho: Annotated[float, Field(ge=-1.0, le=1.0)] = Field(
        0.4, description="an edge links two nodes whose cosine similarity is above rho (Eq. 3)"
    )
    weights: dict[str, NonNegative] = Field(
        {},
        description="paired data: the similarity of two items is the weighted mean of their cosines in each "
        "modality, with these weights ({image: 1, text: 3}: every modality or none named); {}: equal weights",
    )
