"""Spectral hashers: bits from eigenfunctions of a graph Laplacian on the data.

- ``SH`` (Weiss, Torralba & Fergus, NIPS 2008): PCA, then the analytic eigenfunctions of the Laplacian of
  a uniform distribution on the box spanned by the projected training data; the ``bits`` one-dimensional
  modes with the smallest eigenvalues (k pi / width_d)^2 (k >= 1), each thresholded at zero.
- ``AGH`` and ``AGH2`` (Liu, Wang, Kumar & Chang, "Hashing with Graphs", ICML 2011): the graph Laplacian
  eigenfunctions of an anchor graph A = Z Lambda^-1 Z^T (each item linked to its s nearest of m k-means
  anchors), computed from the m x m matrix Lambda^-1/2 Z^T Z Lambda^-1/2 and extended to any x through z(x);
  one bit per eigenfunction (sign), or two (AGH2: sign, then |value| against a threshold per side that
  minimises the relaxed graph cut of the second bit).
"""

from __future__ import annotations

import math
from typing import Annotated

import numpy as np
import scipy.sparse
from pydantic import Field

from graphhash.errors import GraphhashError
from graphhash.hashers.base import Hasher
from graphhash.hyperparameters import Bits, Iterations, Positive, Seed, checked
from graphhash.quantisation import pca, projected

Anchors = Annotated[int, Field(ge=2, le=100_000)]
Nearest = Annotated[int, Field(ge=1, le=1000)]


class SH(Hasher):
    """Spectral hashing: the ``bits`` lowest analytic modes of the box spanned by the PCA-projected training data
    (draws nothing at random: the seed is ignored)."""

    method = "sh"

    def fit(self, x: np.ndarray) -> SH:
        self.mean_, self.components_ = pca(x, min(self.bits, x.shape[1]))
        embedded = projected(x, self.mean_, self.components_)
        eps = np.finfo(np.float64).eps
        self.low_ = embedded.min(axis=0) - eps
        width = embedded.max(axis=0) + eps - self.low_
        # candidate modes: every PCA direction d with frequency k = 1..bits; eigenvalue (k pi / width_d)^2
        dims, freqs = np.meshgrid(np.arange(len(width)), np.arange(1, self.bits + 1), indexing="ij")
        eigenvalues = (freqs * np.pi / width[dims]) ** 2
        order = np.argsort(eigenvalues.ravel(), kind="stable")[: self.bits]
        self.mode_dims_, self.mode_freqs_ = dims.ravel()[order], freqs.ravel()[order]
        self.eigenvalues_ = eigenvalues.ravel()[order]
        self.width_ = width
        return self

    def encode(self, x: np.ndarray) -> np.ndarray:
        embedded = (x - self.mean_) @ self.components_ - self.low_
        phase = self.mode_freqs_ * np.pi * embedded[:, self.mode_dims_] / self.width_[self.mode_dims_]
        return np.sin(np.pi / 2 + phase) >= 0


class AGH(Hasher):
    """One-layer anchor graph hashing (Liu et al., ICML 2011, sections 3 and 4.1), one bit per eigenfunction.

    Anchors u_1..u_m: k-means centres of the training features (random training items as the start, seeded).
    Z (n, m): each item's s nearest anchors weighted exp(-d^2 / t), each row normalised to sum 1, so the
    anchor graph A = Z Lambda^-1 Z^T (Lambda = diag(Z^T 1)) is doubly stochastic. Its eigenvectors with
    non-zero eigenvalues come from the m x m matrix M = Lambda^-1/2 Z^T Z Lambda^-1/2: for M v = sigma v,
    y = Z Lambda^-1/2 v is an eigenvector of A. The trivial one (eigenvalue 1, y constant; v = Lambda^1/2 1)
    is projected out of M, the next ``bits`` kept, and W = sqrt(n) Lambda^-1/2 V Sigma^-1/2, so that on the
    training items Y = Z W has Y^T Y = n I and A Y = Y Sigma. Any x is coded sign(z(x) W), >= 0 as 1. Where
    the anchor graph falls apart, its other eigenvectors of eigenvalue 1 (piecewise constant) are kept
    (Liu's code drops every eigenvalue above 1 - 1e-3).
    t is Liu's code's self-estimate: the squared mean distance of the training items to their s-th
    nearest anchor, times ``bandwidth``. Anchors that are no item's neighbour (Lambda_jj = 0) are dropped.

    Args:
        anchors: m, k-means anchors (Liu et al.: 300); at most the training items
        nearest: s, the anchors an item links to (Liu et al.: 2); at most the anchors
        bandwidth: t of exp(-d^2 / t), in units of the squared mean distance of the training items to their
            s-th nearest anchor (1: Liu et al.'s estimate)
        iterations: k-means (Lloyd) iterations for the anchors
    """

    method = "agh"

    @checked
    def __init__(
        self,
        bits: Bits,
        seed: Seed,
        *,
        anchors: Anchors = 300,
        nearest: Nearest = 2,
        bandwidth: Positive = 1.0,
        iterations: Iterations = 20,
    ):
        super().__init__(bits, seed)
        self.anchors, self.nearest, self.bandwidth, self.iterations = anchors, nearest, bandwidth, iterations

    @property
    def eigenfunctions(self) -> int:
        return self.bits

    def fit(self, x: np.ndarray) -> AGH:
        self.fit_graph(np.asarray(x, dtype=np.float64))
        return self

    def fit_graph(self, x: np.ndarray) -> tuple[scipy.sparse.csr_matrix, np.ndarray]:
        """Anchors, bandwidth and W from the training features; returns their Z and Lambda's diagonal."""
        from sklearn.cluster import KMeans  # here: the params schema imports this module

        n, r = len(x), self.eigenfunctions
        m = min(self.anchors, n)
        if r > m - 1:
            raise GraphhashError(f"baselines: {self.bits} bits of AGH need at least {r + 1} anchors and training items")
        kmeans = KMeans(m, init="random", n_init=1, max_iter=self.iterations, random_state=self.seed).fit(x)
        self.anchors_ = kmeans.cluster_centers_
        self.nearest_ = min(self.nearest, m)
        _, distances = self.nearest_anchors(x)
        self.t_ = self.bandwidth * float(np.mean(np.sqrt(distances[:, -1]))) ** 2
        z = self.anchor_graph(x)
        linked = np.asarray(z.sum(axis=0)).ravel() > 0
        if not linked.all():  # no item has them among its s nearest: dropping them changes no row of Z
            self.anchors_, z = self.anchors_[linked], z[:, linked]
        if r > len(self.anchors_) - 1:
            raise GraphhashError(f"baselines: AGH found {len(self.anchors_)} linked anchors, too few for {r} bits")
        lam = np.asarray(z.sum(axis=0)).ravel()
        root = np.sqrt(lam)
        m_matrix = (z.T @ z).toarray() / np.outer(root, root)
        trivial = root / np.linalg.norm(root)  # M's eigenvector of eigenvalue 1: Lambda^1/2 1
        values, vectors = np.linalg.eigh(m_matrix - np.outer(trivial, trivial))
        values, vectors = values[::-1][:r], vectors[:, ::-1][:, :r]
        if values[-1] <= 1e-10:
            raise GraphhashError(f"baselines: the anchor graph has fewer than {r} non-trivial eigenvectors")
        self.eigenvalues_ = values
        self.projection_ = math.sqrt(n) * vectors / root[:, None] / np.sqrt(values)
        return z, lam

    def nearest_anchors(self, x: np.ndarray, block: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """Each item's s nearest anchors, nearest first: indices (n, s) and squared distances (n, s)."""
        s = self.nearest_
        squared_anchors = np.sum(self.anchors_**2, axis=1)
        indices, distances = [], []
        for part in np.array_split(np.asarray(x, dtype=np.float64), max(1, math.ceil(len(x) / block))):
            d2 = np.maximum(np.sum(part**2, axis=1)[:, None] - 2 * part @ self.anchors_.T + squared_anchors, 0.0)
            index = np.argpartition(d2, s - 1, axis=1)[:, :s] if s < d2.shape[1] else np.argsort(d2, axis=1)
            near = np.take_along_axis(d2, index, axis=1)
            order = np.argsort(near, axis=1, kind="stable")
            indices.append(np.take_along_axis(index, order, axis=1))
            distances.append(np.take_along_axis(near, order, axis=1))
        return np.concatenate(indices), np.concatenate(distances)

    def anchor_graph(self, x: np.ndarray) -> scipy.sparse.csr_matrix:
        """Z (n, m): weights exp(-d^2 / t) on each item's s nearest anchors, rows summing to 1."""
        index, d2 = self.nearest_anchors(x)
        weights = np.exp(-(d2 - d2[:, :1]) / self.t_)  # shifted by the nearest: the same after normalising
        weights /= weights.sum(axis=1, keepdims=True)
        n, s = index.shape
        return scipy.sparse.csr_matrix((weights.ravel(), index.ravel(), np.arange(0, n * s + 1, s)),
                                       shape=(n, len(self.anchors_)))  # fmt: skip

    def embed(self, x: np.ndarray) -> np.ndarray:
        """The eigenfunctions at x (n, eigenfunctions): z(x) W."""
        return self.anchor_graph(x) @ self.projection_

    def encode(self, x: np.ndarray) -> np.ndarray:
        return self.embed(x) >= 0


class AGH2(AGH):
    """Two-layer anchor graph hashing (Liu et al., section 4.2): two bits from each of ceil(bits / 2)
    eigenfunctions y, in pairs (bits 2k, 2k + 1 from y_k; an odd last bit is a first-layer one).

    The first bit is y >= 0, as in AGH. The second splits each side of it again, away from 0: 1 where
    |y| >= b+ on the positive side and |y| >= b- on the negative one (b- a magnitude: the paper's is -b-), so that
    items near the first bit's boundary differ in one bit, not two. The thresholds minimise the relaxed graph
    cut v^T (I - A) v of v = |y| - b_side subject to the balance 1^T v = 0, on the training items; with p the
    positive side's indicator (n1 items), n2 = n - n1 and G = 1^T |y|:

        delta = p^T (I - A) |y| / p^T (I - A) p,    b- = (G - n1 delta) / n,    b+ = b- + delta

    (Liu's code, with G = 2 * the positive side's sum since 1^T y = 0.) Other details, and the
    hyperparameters, as in ``AGH``.
    """

    method = "agh2"

    @property
    def eigenfunctions(self) -> int:
        return (self.bits + 1) // 2

    def fit(self, x: np.ndarray) -> AGH2:
        z, lam = self.fit_graph(np.asarray(x, dtype=np.float64))
        y = z @ self.projection_
        positive, magnitude = (y >= 0).astype(np.float64), np.abs(y)
        zp, zg = z.T @ positive, z.T @ magnitude  # p^T A g = (Z^T p)^T Lambda^-1 (Z^T g)
        cut = np.sum(positive * magnitude, axis=0) - np.sum(zp * zg / lam[:, None], axis=0)
        curvature = positive.sum(axis=0) - np.sum(zp * zp / lam[:, None], axis=0)
        flat = curvature <= 1e-10 * len(y)  # p^T (I - A) p = 0: a side is a connected component, any delta
        delta = np.divide(cut, curvature, out=np.zeros_like(cut), where=~flat)
        negative_side = (magnitude.sum(axis=0) - positive.sum(axis=0) * delta) / len(y)
        self.thresholds_ = np.stack([negative_side + delta, negative_side])  # (2, eigenfunctions): b+, b-
        return self

    def encode(self, x: np.ndarray) -> np.ndarray:
        y = self.embed(x)
        first = y >= 0
        second = np.abs(y) >= np.where(first, self.thresholds_[0], self.thresholds_[1])
        codes = np.empty((len(y), self.bits), dtype=bool)
        codes[:, 0::2], codes[:, 1::2] = first, second[:, : self.bits // 2]
        return codes
