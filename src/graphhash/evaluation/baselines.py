"""Classical hashing baselines on the same features, in scikit-learn style: ``fit`` on the training
features, then ``encode`` any features to boolean codes (n, bits). Fitted state is plain arrays.

- ``LSH``: random hyperplanes through the training mean (Charikar's sign random projections).
- ``PCAH``: the signs of the top ``bits`` principal components.
- ``ITQ`` (Gong & Lazebnik, CVPR 2011): PCA to ``bits`` dimensions, then an orthogonal rotation R that
  minimises the quantisation loss ||B - V R||_F^2 by alternating B = sign(V R) with the orthogonal
  Procrustes solution for R.
- ``SH`` (Weiss, Torralba & Fergus, NIPS 2008): PCA, then the analytic eigenfunctions of the Laplacian of
  a uniform distribution on the box spanned by the projected training data; the ``bits`` one-dimensional
  modes with the smallest eigenvalues (k pi / width_d)^2 (k >= 1), each thresholded at zero.

Every hasher is built as ``Hasher(bits, seed, **hyperparameters)`` (PCAH and SH draw nothing at random and
ignore the seed); hyperparameters are keyword-only and declared in the signature
(``graphhash.hyperparameters``), where params.yaml's ``baselines.<method>`` section comes from. LSH, PCAH and
ITQ share one shape, codes = (x - mean) projected >= 0: ``LinearHasher``, with ``project`` the one hook.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from pydantic import Field

from graphhash.errors import GraphhashError
from graphhash.hyperparameters import checked


def _pca(x: np.ndarray, components: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and the top principal directions (D, components), by descending variance."""
    if components > min(x.shape):
        raise GraphhashError(f"baselines: {components} bits need at least {components} training items and dimensions")
    mean = x.mean(axis=0)
    covariance = np.cov(x - mean, rowvar=False)
    values, vectors = np.linalg.eigh(covariance)
    return mean, vectors[:, np.argsort(values)[::-1][:components]]


class Hasher:
    """``fit(x)`` on training features (n, D), then ``encode(x)``: bool codes (n, bits)."""

    @checked
    def __init__(self, bits: Annotated[int, Field(ge=1)], seed: Annotated[int, Field(ge=0)]):
        self.bits, self.seed = bits, seed

    @classmethod
    def check(cls, **hyperparameters: object) -> None:
        """Rules across several hyperparameters; none for these hashers."""

    def fit(self, x: np.ndarray) -> Hasher:
        raise NotImplementedError

    def encode(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class LinearHasher(Hasher):
    """Codes are the signs of a linear map of the centred features: ``project(x - mean) >= 0``."""

    def fit(self, x: np.ndarray) -> LinearHasher:
        self.mean_ = x.mean(axis=0)
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
    def fit_projection(self, x: np.ndarray) -> None:
        self.projection_ = np.random.default_rng(self.seed).standard_normal((x.shape[1], self.bits))

    def project(self, centred: np.ndarray) -> np.ndarray:
        return centred @ self.projection_


class PCAH(LinearHasher):
    def fit_projection(self, x: np.ndarray) -> None:
        _, self.components_ = _pca(x, self.bits)

    def project(self, centred: np.ndarray) -> np.ndarray:
        return centred @ self.components_


class ITQ(LinearHasher):
    """PCA to ``bits`` dimensions, then alternating updates of the rotation.

    Args:
        iterations: ITQ's rotation updates (Gong and Lazebnik: 50)
    """

    @checked
    def __init__(
        self,
        bits: Annotated[int, Field(ge=1)],
        seed: Annotated[int, Field(ge=0)],
        *,
        iterations: Annotated[int, Field(ge=1, le=10_000)] = 50,
    ):
        super().__init__(bits, seed)
        self.iterations = iterations

    def fit_projection(self, x: np.ndarray) -> None:
        _, self.components_ = _pca(x, self.bits)
        v = (x - self.mean_) @ self.components_
        q, _ = np.linalg.qr(np.random.default_rng(self.seed).standard_normal((self.bits, self.bits)))
        rotation, losses = q, []
        for _ in range(self.iterations):
            b = np.where(v @ rotation >= 0, 1.0, -1.0)
            losses.append(float(np.sum((b - v @ rotation) ** 2)))
            u, _, wt = np.linalg.svd(v.T @ b)  # Procrustes: argmin_R ||B - V R|| over orthogonal R
            rotation = u @ wt
        self.rotation_, self.losses_ = rotation, losses

    def project(self, centred: np.ndarray) -> np.ndarray:
        return centred @ self.components_ @ self.rotation_


class SH(Hasher):
    def fit(self, x: np.ndarray) -> SH:
        self.mean_, self.components_ = _pca(x, min(self.bits, x.shape[1]))
        projected = (x - self.mean_) @ self.components_
        eps = np.finfo(np.float64).eps
        self.low_ = projected.min(axis=0) - eps
        width = projected.max(axis=0) + eps - self.low_
        # candidate modes: every PCA direction d with frequency k = 1..bits; eigenvalue (k pi / width_d)^2
        dims, freqs = np.meshgrid(np.arange(len(width)), np.arange(1, self.bits + 1), indexing="ij")
        eigenvalues = (freqs * np.pi / width[dims]) ** 2
        order = np.argsort(eigenvalues.ravel(), kind="stable")[: self.bits]
        self.mode_dims_, self.mode_freqs_ = dims.ravel()[order], freqs.ravel()[order]
        self.eigenvalues_ = eigenvalues.ravel()[order]
        self.width_ = width
        return self

    def encode(self, x: np.ndarray) -> np.ndarray:
        projected = (x - self.mean_) @ self.components_ - self.low_
        phase = self.mode_freqs_ * np.pi * projected[:, self.mode_dims_] / self.width_[self.mode_dims_]
        return np.sin(np.pi / 2 + phase) >= 0


BASELINES: dict[str, type[Hasher]] = {"lsh": LSH, "pcah": PCAH, "itq": ITQ, "sh": SH}
