"""``codes``: which NRDH codes the pipeline writes: one represent and one hash stage per filter and code length."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from graphhash.graphs.filters import FILTERS
from graphhash.hyperparameters import Bits
from graphhash.params import Section, names

FilterName = Literal[tuple(FILTERS)]


class CodesParams(Section):
    """The codes to write: one represent and one hash stage per graph filter and code length."""

    section = "codes"

    bits: names(Bits) = Field([16, 32, 64], description="code lengths")
    filters: names(FilterName) = Field(["gcn"], description=f"graph filters of the autoencoder: {' | '.join(FILTERS)}")
