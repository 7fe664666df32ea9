"""``represent``: NRDH's stage 1, the graph autoencoder (paper section 3.1, Table 1), and its filters' options.

The section's keys are the hyperparameters of ``graphhash.nrdh.autoencoder.RepresentationLearner``, built from its
signature; ``represent.<filter>`` holds one filter's hyperparameters, built from the filter's signature. Filters
without hyperparameters (fourier, none) have no sub-section.
"""

from __future__ import annotations

from typing import Any

from graphhash.graphs.filters import FILTERS
from graphhash.nrdh.autoencoder import RepresentationLearner
from graphhash.params import Section, hyperparameters_section, options_fields


class _Represent(Section):
    """NRDH stage 1: the graph autoencoder (section 3.1, Table 1) and the hyperparameters of each filter."""

    section = "represent"

    def filter_options(self) -> dict[str, dict[str, Any]]:
        """Every filter's hyperparameters, by its name."""
        return {name: self.options(name) for name in FILTERS}


RepresentParams = hyperparameters_section(RepresentationLearner, _Represent, **options_fields(FILTERS))
