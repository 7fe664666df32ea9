"""Classical unsupervised cross-modal hashing baselines, in scikit-learn style: ``fit`` on paired training views, a
dict ``{modality: (n, D_m) array}`` whose row i is the same item in every view, then ``encode(x, modality)``: bool
codes (n, bits) in one Hamming space for all the modalities, so that an image query ranks texts by Hamming distance
and a text query ranks images. Fitted state is plain arrays.

All three are linear: modality m has its training mean mu_m and a projection W_m (D_m, bits), and the codes of x
are (x - mu_m) W_m >= 0 (``CrossModalHasher``, with ``projections`` the one hook). Below, X_m is the centred
training view (n, D_m), C_kl = X_k^T X_l / n, and kappa_m = ridge * tr(C_mm) / D_m, a ridge in units of view m's
mean variance (so that the same ``ridge`` means the same on features of any scale).

- ``CVH`` (Kumar & Udupa, "Learning Hash Functions for Cross-View Similarity Search", IJCAI 2011): the relaxed
  similarity-weighted Hamming distance between the views' codes. With the similarity of paired data, W = I (an
  item is similar to itself in the other views; the paper's L' = 2L + (K - 1)D becomes (K - 1)I), the distance
  of the projections Y_k = X_k A_k, sum_{k<l} ||Y_k - Y_l||^2 / n, plus the ridge (K - 1) sum_k kappa_k ||A_k||^2,
  is tr(A^T M A) for the stacked A = [A_1; ...; A_K], where M has the diagonal blocks (K - 1)(C_kk + kappa_k I)
  and the off-diagonal blocks -C_kl; decorrelated bits are A^T B A = I with B = blockdiag(C_kk + kappa_k I).
  The minimiser is the generalised eigenproblem M a = lambda B a, its ``bits`` smallest eigenvalues. For two views
  lambda = 1 - rho with rho the canonical correlations: CVH is CCA there, as the paper notes, with no rotation.
- ``CMFH`` (Ding, Guo & Zhou, "Collective Matrix Factorization Hashing for Multimodal Data", CVPR 2014): one
  latent V (bits, n) factorises both views, X_1^T ~ U_1 V and X_2^T ~ U_2 V, and is predicted linearly from each,
  V ~ P_m X_m^T:

      lambda ||X_1^T - U_1 V||^2 + (1 - lambda) ||X_2^T - U_2 V||^2 + mu sum_m ||V - P_m X_m^T||^2
          + gamma (||U_1||^2 + ||U_2||^2 + ||P_1||^2 + ||P_2||^2 + ||V||^2)

  minimised by exact block updates from a seeded Gaussian V, each the closed-form minimiser of its block given
  the others (so the objective never increases): P_m = V X_m (X_m^T X_m + gamma / mu I)^-1;
  U_1 = X_1^T V^T (V V^T + gamma / lambda I)^-1 (U_2 with 1 - lambda); and
  V = (lambda U_1^T U_1 + (1 - lambda) U_2^T U_2 + (2 mu + gamma) I)^-1
      (lambda U_1^T X_1^T + (1 - lambda) U_2^T X_2^T + mu (P_1 X_1^T + P_2 X_2^T)).
  W_m = P_m^T. Not limited by the views' dimensions (a 10-d view gives codes spanning 10 directions).
- ``CCAITQ`` (Gong, Lazebnik, Gordo & Perronnin, "Iterative Quantization: A Procrustean Approach to Learning
  Binary Codes for Large-Scale Image Retrieval", TPAMI 2013, the CCA embedding): the ``bits`` leading canonical
  directions of regularised CCA, from the generalised eigenproblem
  C_12 (C_22 + kappa_2 I)^-1 C_21 w_1 = rho^2 (C_11 + kappa_1 I) w_1 (solved in the view of fewer dimensions as
  view 1), w_2 = (C_22 + kappa_2 I)^-1 C_21 w_1 / rho, each pair scaled by rho^power; then ITQ's rotation R
  (``graphhash.quantisation.itq_rotation``) of both views' projections stacked, [X_1 W_1; X_2 W_2] (2n, bits), so
  that one rotation serves both modalities (the paper rotates the image side only: its second view was labels or
  tags, never coded). W_m = W_m R.

Every hasher is built as ``Hasher(bits, seed, **hyperparameters)``, hyperparameters keyword-only and declared in
the signature (``graphhash.hyperparameters``); CVH draws nothing at random and ignores the seed. CVH and CCA-ITQ
find at most min_m D_m directions that correlate across the views, so they refuse more bits than the smallest
view's dimension (and fewer, with a message, where the views have fewer non-zero correlations than bits).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np
import scipy.linalg

from graphhash.errors import GraphhashError
from graphhash.hashers.base import Hasher
from graphhash.hyperparameters import Bits, Fraction, Iterations, NonNegative, Positive, Seed, checked
from graphhash.quantisation import ITQ_ITERATIONS, itq_rotation

CORRELATED = 1e-6  # a direction whose cross-view correlation is below this carries nothing across the views


class CrossModalHasher(Hasher):
    """``fit(views)`` on paired training views ``{modality: (n, D_m)}``, then ``encode(x, modality)``: bool codes
    (n, bits), ``(x - mean_m) @ W_m >= 0``; ``projections`` (the centred views -> W_m) is the one hook."""

    crossmodal = True
    taken_views: ClassVar[int | None] = None  # exactly this many views; None: two or more
    limited_by_dimension: ClassVar[bool] = False  # bits <= every view's dimension

    def fit(self, views: Mapping[str, np.ndarray]) -> CrossModalHasher:
        arrays = self.checked_views(views)
        self.means_ = {modality: x.mean(axis=0) for modality, x in arrays.items()}
        centred = {modality: x - self.means_[modality] for modality, x in arrays.items()}
        found = self.projections(centred)
        self.projections_ = {modality: np.asarray(found[modality], dtype=np.float64) for modality in arrays}
        return self

    def checked_views(self, views: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The views as float64 arrays, in their given order, or a one-line ``GraphhashError``."""
        if not isinstance(views, Mapping):
            raise GraphhashError(f"{self.name}: views must be a dict of modality name -> (items, features) array")
        if len(views) < 2 or (self.taken_views is not None and len(views) != self.taken_views):
            wanted = "at least 2" if self.taken_views is None else f"exactly {self.taken_views}"
            raise GraphhashError(f"{self.name}: needs {wanted} views, got {len(views)} ({', '.join(map(repr, views))})")
        arrays = {}
        for modality, x in views.items():
            if not isinstance(modality, str):
                raise GraphhashError(f"{self.name}: modality names must be strings, not {modality!r}")
            try:
                array = np.asarray(x, dtype=np.float64)
            except (TypeError, ValueError):
                raise GraphhashError(f"{self.name}: view {modality!r} is not an array of numbers") from None
            if array.ndim != 2:
                raise GraphhashError(f"{self.name}: view {modality!r} must be 2-D (items, features), not {array.shape}")
            if not np.isfinite(array).all():
                raise GraphhashError(f"{self.name}: view {modality!r} has NaN or infinite values")
            arrays[modality] = array
        rows = {modality: len(x) for modality, x in arrays.items()}
        if len(set(rows.values())) > 1:
            listed = ", ".join(f"{modality}: {count}" for modality, count in rows.items())
            raise GraphhashError(
                f"{self.name}: the views have different numbers of rows ({listed}); they must be paired"
            )
        n = next(iter(rows.values()))
        if n < 2:
            raise GraphhashError(f"{self.name}: needs at least 2 paired training items, not {n}")
        smallest = min(arrays, key=lambda modality: arrays[modality].shape[1])
        dim = arrays[smallest].shape[1]
        if self.limited_by_dimension and self.bits > dim:
            raise GraphhashError(
                f"{self.name}: {self.bits} bits need at least {self.bits} features in every view; {smallest!r} has"
                f" {dim}, and a linear map of it spans no more directions"
            )
        if self.limited_by_dimension and self.bits > n - 1:
            raise GraphhashError(f"{self.name}: {self.bits} bits need more than {self.bits} training items, not {n}")
        return arrays

    def projections(self, centred: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The centred training views -> each modality's W_m (D_m, bits): the one hook."""
        raise NotImplementedError

    def project(self, x: np.ndarray, modality: str) -> np.ndarray:
        """Items of ``modality`` (n, D_m) -> (n, bits) real values whose signs are the bits."""
        x = self.checked_items(x, modality, getattr(self, "projections_", None))
        return (x - self.means_[modality]) @ self.projections_[modality]

    def checked_items(self, x: np.ndarray, modality: str, fitted: Mapping[str, object] | None) -> np.ndarray:
        """Items of ``modality`` to encode as a float64 (n, D_m) array, or a one-line ``GraphhashError``;
        ``fitted``: what ``fit`` left for each modality (None before it)."""
        if fitted is None:
            raise GraphhashError(f"{self.name}: fit it on training views before encoding")
        if modality not in fitted:
            known = ", ".join(map(repr, fitted))
            raise GraphhashError(f"{self.name}: unknown modality {modality!r}; it was fitted on {known}")
        x = np.asarray(x, dtype=np.float64)
        dim = len(self.means_[modality])
        if x.ndim != 2 or x.shape[1] != dim:
            raise GraphhashError(f"{self.name}: {modality!r} items must be (n, {dim}) arrays, not {x.shape}")
        return x

    def encode(self, x: np.ndarray, modality: str) -> np.ndarray:
        return self.project(x, modality) >= 0


def _covariances(centred: dict[str, np.ndarray], ridge: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The views' (D_m, D_m) covariances plus kappa_m I (kappa_m = ridge * their mean variance), and the views."""
    views = list(centred.values())
    n = len(views[0])
    regularised = []
    for x in views:
        covariance = x.T @ x / n
        regularised.append(covariance + ridge * np.trace(covariance) / len(covariance) * np.eye(len(covariance)))
    return regularised, views


class CVH(CrossModalHasher):
    """Cross-view hashing for paired views (W = I): the ``bits`` smallest eigenpairs of M a = lambda B a.

    Args:
        ridge: kappa_m = ridge * view m's mean variance, added to its covariance in M and B (0: none; needs
            non-singular covariances)
    """

    method = "cvh"
    limited_by_dimension = True

    @checked
    def __init__(self, bits: Bits, seed: Seed, *, ridge: NonNegative = 1e-4):
        super().__init__(bits, seed)
        self.ridge = ridge

    def projections(self, centred: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        regularised, views = _covariances(centred, self.ridge)
        n, k = len(views[0]), len(views)
        blocks = [[(k - 1) * regularised[a] if a == b else -(views[a].T @ views[b]) / n for b in range(k)]
                  for a in range(k)]  # fmt: skip
        m_matrix, b_matrix = np.block(blocks), scipy.linalg.block_diag(*regularised)
        try:
            values, vectors = scipy.linalg.eigh(m_matrix, b_matrix, subset_by_index=[0, self.bits - 1])
        except np.linalg.LinAlgError:
            raise GraphhashError(
                f"{self.name}: a view's covariance is singular; raise ridge above {self.ridge}"
            ) from None
        agreeing = int(np.sum(values < (k - 1) * (1 - CORRELATED)))  # k - 1: a direction no other view shares
        if agreeing < self.bits:
            raise GraphhashError(
                f"{self.name}: the views share only {agreeing} correlated directions, fewer than {self.bits} bits"
            )
        self.eigenvalues_ = values
        edges = np.cumsum([0, *(len(c) for c in regularised)])
        return {modality: vectors[edges[i] : edges[i + 1]] for i, modality in enumerate(centred)}


class CMFH(CrossModalHasher):
    """Collective matrix factorisation hashing of two views (lambda weighs the first, in the dict's order).

    Codes are sign(P_m (x - mu_m)): thresholded at zero after centring, which is the training latent's mean (V is
    linear in the centred views, so its rows have zero mean). ``objectives_`` holds the objective after each
    iteration; ``latent_`` is V and ``bases_`` the U_m.

    Args:
        lam: lambda, the weight of the first view's factorisation (1 - lambda the second's; Ding et al.: 0.5)
        mu: the weight of the linear predictions V ~ P_m X_m^T (Ding et al.: 100)
        gamma: the weight of the Frobenius regulariser (Ding et al.: 0.01)
        iterations: rounds of the block updates
    """

    method = "cmfh"
    taken_views = 2

    @checked
    def __init__(
        self,
        bits: Bits,
        seed: Seed,
        *,
        lam: Fraction = 0.5,
        mu: Positive = 100.0,
        gamma: Positive = 0.01,
        iterations: Iterations = 100,
    ):
        super().__init__(bits, seed)
        self.lam, self.mu, self.gamma, self.iterations = lam, mu, gamma, iterations

    def projections(self, centred: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        views = list(centred.values())
        weights = (self.lam, 1 - self.lam)
        n, eye = len(views[0]), np.eye(self.bits)
        # P_m = V H_m with H_m = X_m (X_m^T X_m + gamma / mu I)^-1, fixed
        predictors = [scipy.linalg.solve(x.T @ x + self.gamma / self.mu * np.eye(x.shape[1]), x.T, assume_a="pos").T
                      for x in views]  # fmt: skip

        def given(latent: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
            """The minimising U_m and P_m for a latent V."""
            gram = latent @ latent.T
            u = [scipy.linalg.solve(gram + self.gamma / w * eye, latent @ x, assume_a="pos").T
                 for w, x in zip(weights, views, strict=True)]  # fmt: skip
            return u, [latent @ h for h in predictors]

        latent = np.random.default_rng(self.seed).standard_normal((self.bits, n))
        u, p = given(latent)
        objectives = []
        for _ in range(self.iterations):
            system = sum(w * b.T @ b for w, b in zip(weights, u, strict=True)) + (2 * self.mu + self.gamma) * eye
            target = sum(w * b.T @ x.T + self.mu * q @ x.T for w, b, q, x in zip(weights, u, p, views, strict=True))
            latent = scipy.linalg.solve(system, target, assume_a="pos")
            u, p = given(latent)
            objectives.append(self.objective(views, u, p, latent))
        self.latent_, self.bases_, self.objectives_ = latent, u, objectives
        return {modality: q.T for modality, q in zip(centred, p, strict=True)}

    def objective(self, views: list[np.ndarray], u: list[np.ndarray], p: list[np.ndarray], latent: np.ndarray) -> float:
        """CMFH's objective at (U_m, P_m, V) for the centred views X_m (n, D_m)."""
        weights = (self.lam, 1 - self.lam)
        fit = sum(w * np.sum((x.T - b @ latent) ** 2) for w, x, b in zip(weights, views, u, strict=True))
        predicted = sum(np.sum((latent - q @ x.T) ** 2) for q, x in zip(p, views, strict=True))
        norms = sum(np.sum(a**2) for a in [*u, *p, latent])
        return float(fit + self.mu * predicted + self.gamma * norms)


class CCAITQ(CrossModalHasher):
    """CCA between two views, the ``bits`` leading directions scaled by rho^power, then one ITQ rotation of both
    views' projections stacked. ``correlations_`` are the canonical correlations rho, ``directions_`` the unscaled,
    unrotated W_m (each view's projections of unit variance, up to the ridge), ``rotation_`` R and ``losses_`` its
    quantisation losses.

    Args:
        ridge: kappa_m = ridge * view m's mean variance, added to its covariance (0: none; needs non-singular
            covariances)
        power: each canonical direction is scaled by rho^power before the rotation (1: by its correlation, as
            Gong et al. scale theirs; 0: unscaled)
        iterations: ITQ's rotation updates (Gong et al.: 50)
    """

    method = "cca_itq"
    taken_views = 2
    limited_by_dimension = True

    @checked
    def __init__(
        self,
        bits: Bits,
        seed: Seed,
        *,
        ridge: NonNegative = 1e-4,
        power: NonNegative = 1.0,
        iterations: Iterations = ITQ_ITERATIONS,
    ):
        super().__init__(bits, seed)
        self.ridge, self.power, self.iterations = ridge, power, iterations

    def projections(self, centred: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        regularised, views = _covariances(centred, self.ridge)
        n = len(views[0])
        # the eigenproblem in the smaller view (a, at most min D_m correlations), the other (b) from it
        a, b = (0, 1) if views[0].shape[1] <= views[1].shape[1] else (1, 0)
        cross = views[a].T @ views[b] / n
        try:
            regressed = scipy.linalg.solve(regularised[b], cross.T, assume_a="pos")  # C_bb^-1 C_ba
            dim = len(cross)
            between = cross @ regressed  # C_ab C_bb^-1 C_ba, symmetric up to rounding
            values, vectors = scipy.linalg.eigh(
                (between + between.T) / 2, regularised[a], subset_by_index=[dim - self.bits, dim - 1]
            )
        except np.linalg.LinAlgError:
            raise GraphhashError(
                f"{self.name}: a view's covariance is singular; raise ridge above {self.ridge}"
            ) from None
        correlations = np.sqrt(np.clip(values[::-1], 0.0, None))
        if correlations[-1] < CORRELATED:
            found = int(np.sum(correlations >= CORRELATED))
            raise GraphhashError(
                f"{self.name}: the views have only {found} non-zero canonical correlations, fewer than {self.bits} bits"
            )
        leading = vectors[:, ::-1]
        other = regressed @ leading / correlations  # w_b = C_bb^-1 C_ba w_a / rho, so that w_b^T C_bb w_b = 1
        directions = [leading, other] if a == 0 else [other, leading]
        self.correlations_ = correlations
        self.directions_ = dict(zip(centred, directions, strict=True))
        scaled = [w * correlations**self.power for w in directions]
        stacked = np.concatenate([x @ w for x, w in zip(views, scaled, strict=True)])
        self.rotation_, self.losses_ = itq_rotation(stacked, self.iterations, self.seed)
        return {modality: w @ self.rotation_ for modality, w in zip(centred, scaled, strict=True)}
