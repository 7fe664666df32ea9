"""``represent``: NRDH's stage 1, the graph autoencoder (paper section 3.1, Table 1), and its filters' options.

``represent.<filter>`` holds one filter's hyperparameters, built from the filter's signature; filters
without hyperparameters (fourier, none) have no sub-section.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, create_model

from graphhash.graphs.filters import FILTERS
from graphhash.params import Count, NonNegative, Positive, Section, Seed, options_fields


class _Represent(Section):
    """NRDH stage 1: the graph autoencoder (section 3.1, Table 1) and the hyperparameters of each filter."""

    section = "represent"

    hidden: Annotated[int, Field(ge=1, le=65536)] = Field(
        64, description="width of the two hidden graph convolutions (Table 1)"
    )
    latent: Annotated[int, Field(ge=0, le=65536)] = Field(
        64,
        description="the representation's size: max(latent, code length); 0: the code length (the paper); "
        "wider than the code, hash.target rotated fits the bits to its leading principal directions",
    )
    alpha: NonNegative = Field(0.999, description="weight of the reconstruction loss (Eq. 8)")
    beta: NonNegative = Field(0.001, description="weight of the 1/2 sum ||W||^2 penalty (Eq. 8)")
    steps: Annotated[int, Field(ge=1, le=10_000_000)] = Field(
        800, description="Adam steps, whatever the dataset's size"
    )
    lr: Positive = Field(0.001, description="Adam's learning rate")
    graphs_per_step: Count = Field(32, description="graphs per Adam step (the paper: 1)")
    seed: Seed = Field(0, description="initialisation, node order, and the graphs of the final representations")


RepresentParams = create_model(
    "RepresentParams", __base__=_Represent, __doc__=_Represent.__doc__, **options_fields(FILTERS)
)
