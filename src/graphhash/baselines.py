"""Classical hashing baselines on the same features, in scikit-learn style: ``fit`` on the training
features, then ``encode`` any features to boolean codes (n, bits). Fitted state is plain arrays.

- ``LSH``: random hyperplanes through the training mean (Charikar's sign random projections).
- ``PCAH``: the signs of the top ``bits`` principal components.
- ``ITQ`` (Gong & Lazebnik, CVPR 2011): PCA to ``bits`` dimensions, then an orthogonal rotation R that
  minimises the quantisation loss ||B - V R||_F^2 by alternating B = sign(V R) with the orthogonal
  Procrustes solution for R (50 iterations).
- ``SH`` (Weiss, Torralba & Fergus, NIPS 2008): PCA, then the analytic eigenfunctions of the Laplacian of
  a uniform distribution on the box spanned by the projected training data; the ``bits`` one-dimensional
  modes with the smallest eigenvalues (k pi / width_d)^2 (k >= 1), each thresholded at zero.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from graphhash.codes import encode_splits, write_codes
from graphhash.errors import GraphhashError
from graphhash.features import read_features


def _pca(x: np.ndarray, components: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and the top principal directions (D, components), by descending variance."""
    if components > min(x.shape):
        raise GraphhashError(f"baselines: {components} bits need at least {components} training items and dimensions")
    mean = x.mean(axis=0)
    covariance = np.cov(x - mean, rowvar=False)
    values, vectors = np.linalg.eigh(covariance)
    return mean, vectors[:, np.argsort(values)[::-1][:components]]


class LSH:
    def __init__(self, bits: int, seed: int = 0):
        self.bits, self.seed = bits, seed

    def fit(self, x: np.ndarray) -> LSH:
        self.mean_ = x.mean(axis=0)
        self.projection_ = np.random.default_rng(self.seed).standard_normal((x.shape[1], self.bits))
        return self

    def encode(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean_) @ self.projection_ >= 0


class PCAH:
    def __init__(self, bits: int):
        self.bits = bits

    def fit(self, x: np.ndarray) -> PCAH:
        self.mean_, self.components_ = _pca(x, self.bits)
        return self

    def encode(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean_) @ self.components_ >= 0


class ITQ:
    def __init__(self, bits: int, iterations: int = 50, seed: int = 0):
        self.bits, self.iterations, self.seed = bits, iterations, seed

    def fit(self, x: np.ndarray) -> ITQ:
        self.mean_, self.components_ = _pca(x, self.bits)
        v = (x - self.mean_) @ self.components_
        q, _ = np.linalg.qr(np.random.default_rng(self.seed).standard_normal((self.bits, self.bits)))
        rotation, losses = q, []
        for _ in range(self.iterations):
            b = np.where(v @ rotation >= 0, 1.0, -1.0)
            losses.append(float(np.sum((b - v @ rotation) ** 2)))
            u, _, wt = np.linalg.svd(v.T @ b)  # Procrustes: argmin_R ||B - V R|| over orthogonal R
            rotation = u @ wt
        self.rotation_, self.losses_ = rotation, losses
        return self

    def encode(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean_) @ self.components_ @ self.rotation_ >= 0


class SH:
    def __init__(self, bits: int):
        self.bits = bits

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


BASELINES = {"lsh": LSH, "pcah": PCAH, "itq": ITQ, "sh": SH}


def write_baseline_codes(features_path: Path, bits: int, params: SimpleNamespace, codes_dir: Path) -> None:
    """Fit every baseline on the training features; write ``<codes_dir>/<method>-<bits>.h5`` for each."""
    fs = read_features(features_path)
    train = fs.features[fs.train].astype(np.float64)
    models = {"lsh": LSH(bits, params.seed), "pcah": PCAH(bits), "itq": ITQ(bits, params.itq_iterations, params.seed),
              "sh": SH(bits)}  # fmt: skip
    for method, model in models.items():
        model.fit(train)
        write_codes(codes_dir / f"{method}-{bits}.h5", encode_splits(fs, model.encode, method, bits))
