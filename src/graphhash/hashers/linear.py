"""Linear hashers, codes = project(x - mean) >= 0 (``LinearHasher``, with ``project`` the one hook):

- ``LSH``: random hyperplanes through the training mean (Charikar's sign random projections).
- ``PCAH``: the signs of the top ``bits`` principal components.
- ``ITQ`` (Gong & Lazebnik, CVPR 2011): PCA to ``bits`` dimensions, then the orthogonal rotation that minimises
  the quantisation loss (``graphhash.quantisation.itq``).
"""

from __future__ import annotations

import numpy as np

from graphhash.hashers.base import Hasher
from graphhash.hyperparameters import Bits, Iterations, Seed, checked
from graphhash.quantisation import ITQ_ITERATIONS, itq, pca


class LinearHasher(Hasher):
    """Codes are the signs of a linear map of the centred features: ``project(x - mean) >= 0``."""

    def fit(self, x: np.ndarray) -> LinearHasher:
        self.mean_ = x.mean(axis=0, dtype=np.float64)
        self.fit_projection(x)
        return self

    def fit_projection(self, x: np.ndarray) -> None:
        """Learn the map from the training features (``mean_`` is set)."""
        raise NotImplementedError

    def project(self, centred: np.ndarray) -> np.ndarray:
        """(n, D) centred features -> (n, bits) real values whose signs are the bits: the one hook."""
        raise NotImplementedError

    def encode(self, x: np.ndarray) -> np.ndarray:
        return self.project(x - self.mean_) >= 0


class LSH(LinearHasher):
    """Random hyperplanes through the training mean: a Gaussian (D, bits) projection drawn from the seed."""

    method = "lsh"

    def fit_projection(self, x: np.ndarray) -> None:
        self.projection_ = np.random.default_rng(self.seed).standard_normal((x.shape[1], self.bits))

    def project(self, centred: np.ndarray) -> np.ndarray:
        return centred @ self.projection_


class PCAH(LinearHasher):
    """The top ``bits`` principal directions (draws nothing at random: the seed is ignored)."""

    method = "pcah"

    def fit_projection(self, x: np.ndarray) -> None:
        _, self.components_ = pca(x, self.bits)

    def project(self, centred: np.ndarray) -> np.ndarray:
        return centred @ self.components_


class ITQ(LinearHasher):
    """PCA to ``bits`` dimensions, then alternating updates of the rotation.

    >>> train = np.random.default_rng(0).standard_normal((100, 16))
    >>> itq = ITQ(8, seed=0).fit(train)
    >>> codes = itq.encode(train[:5])
    >>> codes.shape, codes.dtype, bool(itq.losses_[-1] <= itq.losses_[0])
    ((5, 8), dtype('bool'), True)

    Args:
        iterations: ITQ's rotation updates (Gong and Lazebnik: 50)
    """

    method = "itq"

    @checked
    def __init__(self, bits: Bits, seed: Seed, *, iterations: Iterations = ITQ_ITERATIONS):
        super().__init__(bits, seed)
        self.iterations = iterations

    def fit_projection(self, x: np.ndarray) -> None:
        _, self.components_, self.rotation_, self.losses_ = itq(x, self.bits, self.seed, self.iterations)

    def project(self, centred: np.ndarray) -> np.ndarray:
        return centred @ self.components_ @ self.rotation_
