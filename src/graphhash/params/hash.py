"""``hash``: NRDH's stage 2, the hash-function network (paper section 3.2, Table 2), and ``hash.cnn``, the
options of the network the paper trains on the images.

The section's keys are the hyperparameters of ``graphhash.nrdh.hashnet.HashLearner`` and ``hash.cnn``'s those of
``graphhash.nrdh.cnn.training.CnnLearner``, each built from the class's signature.
"""

from __future__ import annotations

from pydantic import Field

from graphhash.nrdh.cnn.training import CnnLearner
from graphhash.nrdh.hashnet import HashLearner
from graphhash.params import Section, hyperparameters_section


class _Cnn(Section):
    """``hash.network: cnn``: the run's backbone with Table 2's head, trained on the training images."""

    section = "cnn"


class _Hash(Section):
    """NRDH stage 2: the hash network (section 3.2, Table 2), fitted to the representations."""

    section = "hash"


CnnParams = hyperparameters_section(CnnLearner, _Cnn)
HashParams = hyperparameters_section(HashLearner, _Hash, cnn=(CnnParams, Field(default_factory=CnnParams)))
