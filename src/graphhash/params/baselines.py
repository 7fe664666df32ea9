"""``baselines``: the classical hashers on the same features; ``baselines.<method>`` holds one's hyperparameters."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, create_model

from graphhash.evaluation.baselines import BASELINES
from graphhash.params import Section, Seed, names, options_fields

BaselineName = Literal[tuple(BASELINES)]


class _Baselines(Section):
    """Classical hashers on the same features, fitted on the training items."""

    section = "baselines"

    methods: names(BaselineName) = Field(list(BASELINES), description=" | ".join(BASELINES))
    seed: Seed = Field(0, description="LSH's projections, ITQ's initial rotation")


BaselinesParams = create_model(
    "BaselinesParams", __base__=_Baselines, __doc__=_Baselines.__doc__, **options_fields(BASELINES)
)
