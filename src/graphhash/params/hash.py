"""``hash``: NRDH's stage 2, the hash-function network (paper section 3.2, Table 2)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from graphhash.params import NonNegative, Positive, Section, Seed, Unit


class HashParams(Section):
    """NRDH stage 2: the hash network (section 3.2, Table 2), fitted to the representations."""

    section = "hash"

    input: Literal["features", "graph"] = Field(
        "graph", description="features: x (the paper) | graph: x over its kNN graph, for queries too"
    )
    target: Literal["representation", "rotated"] = Field(
        "rotated", description="what fc(x) fits: representation, g(x) (the paper) | rotated: g(x) centred, ITQ-rotated"
    )
    input_p: Unit = Field(0.3, description="with input: graph, the weight an item keeps for itself (p of Eq. 4)")
    mu: NonNegative = Field(0.8, description="weight of MSE(fc(x), representation) (Eq. 18)")
    omega: NonNegative = Field(0.2, description="weight of BCE(fch(x), b) (Eq. 18)")
    steps: Annotated[int, Field(ge=1, le=10_000_000)] = Field(
        300, description="Adam steps, whatever the dataset's size"
    )
    batch_size: Annotated[int, Field(ge=2, le=1_000_000)] = Field(256, description="items per Adam step")
    lr: Positive = Field(0.001, description="Adam's learning rate")
    negative_slope: Unit = Field(0.2, description="LeakyReLU slope (Eq. 10)")
    seed: Seed = Field(0, description="initialisation and batch order")
