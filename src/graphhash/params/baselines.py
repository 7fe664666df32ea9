"""``baselines``: the classical hashers on the same features; ``baselines.<method>`` holds one's hyperparameters.
The methods are those of ``graphhash.hashers.HASHERS``: single-modality hashers and cross-modal ones."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, create_model

from graphhash.hashers import HASHERS
from graphhash.hyperparameters import Seed
from graphhash.params import Section, names, options_fields

BaselineName = Literal[tuple(HASHERS)]
SINGLE = [name for name, cls in HASHERS.items() if not cls.crossmodal]
ACROSS = [name for name, cls in HASHERS.items() if cls.crossmodal]


class _Baselines(Section):
    """Hashers on the same features, fitted on the training items: classical ones and the strongest peers."""

    section = "baselines"

    methods: names(BaselineName) = Field(
        ["lsh", "pcah", "itq", "sh"],
        description=f"{' | '.join(SINGLE)} (the peers agh, agh2, bihalf, greedyhash: `graphhash preset peers`); "
        f"across modalities (paired data): {' | '.join(ACROSS)} (gch: "
        "supervised, learns from the labels)",
    )
    seed: Seed = Field(
        0,
        description="LSH's projections, ITQ's initial rotation, AGH's anchors, BiHalf's, GreedyHash's and GCH's "
        "training, CMFH's initial latent",
    )


BaselinesParams = create_model(
    "BaselinesParams", __base__=_Baselines, __doc__=_Baselines.__doc__, **options_fields(HASHERS)
)
