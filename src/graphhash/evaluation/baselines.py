"""Classical and frozen-feature hashing baselines on the same features, in scikit-learn style: ``fit`` on the
training features, then ``encode`` any features to boolean codes (n, bits). Fitted state is plain arrays.

- ``LSH``: random hyperplanes through the training mean (Charikar's sign random projections).
- ``PCAH``: the signs of the top ``bits`` principal components.
- ``ITQ`` (Gong & Lazebnik, CVPR 2011): PCA to ``bits`` dimensions, then an orthogonal rotation R that
  minimises the quantisation loss ||B - V R||_F^2 by alternating B = sign(V R) with the orthogonal
  Procrustes solution for R.
- ``SH`` (Weiss, Torralba & Fergus, NIPS 2008): PCA, then the analytic eigenfunctions of the Laplacian of
  a uniform distribution on the box spanned by the projected training data; the ``bits`` one-dimensional
  modes with the smallest eigenvalues (k pi / width_d)^2 (k >= 1), each thresholded at zero.
- ``AGH`` and ``AGH2`` (Liu, Wang, Kumar & Chang, "Hashing with Graphs", ICML 2011): the graph Laplacian
  eigenfunctions of an anchor graph A = Z Lambda^-1 Z^T (each item linked to its s nearest of m k-means
  anchors), computed from the m x m matrix Lambda^-1/2 Z^T Z Lambda^-1/2 and extended to any x through z(x);
  one bit per eigenfunction (sign), or two (AGH2: sign, then |value| against a threshold per side that
  minimises the relaxed graph cut of the second bit).
- ``BiHalf`` (Li & van Gemert, AAAI 2021) and ``GreedyHash`` (Su, Zhang, Han & Tian, NeurIPS 2018) in their
  frozen-feature form: one linear layer on the features, trained with a straight-through binary layer (the
  bi-half layer; sign) so that the codes' cosine similarities match the features' (``TrainedHasher``);
  codes of any x are the signs of the layer's output.

Every hasher is built as ``Hasher(bits, seed, **hyperparameters)`` (PCAH and SH draw nothing at random and
ignore the seed); hyperparameters are keyword-only and declared in the signature
(``graphhash.hyperparameters``), where params.yaml's ``baselines.<method>`` section comes from. LSH, PCAH and
ITQ share one shape, codes = (x - mean) projected >= 0: ``LinearHasher``, with ``project`` the one hook; BiHalf
and GreedyHash share one training loop, ``TrainedHasher``, with ``binarise`` the one hook. torch is imported
only when one of those two is fitted, so that the other hashers (and the params schema) run without it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated

import numpy as np
import scipy.sparse
from pydantic import Field

from graphhash.errors import GraphhashError
from graphhash.hyperparameters import Configurable, checked

if TYPE_CHECKING:
    import torch

Bits = Annotated[int, Field(ge=1)]
Seed = Annotated[int, Field(ge=0)]
Anchors = Annotated[int, Field(ge=2, le=100_000)]
Nearest = Annotated[int, Field(ge=1, le=1000)]
Positive = Annotated[float, Field(gt=0.0)]
NonNegative = Annotated[float, Field(ge=0.0)]
Iterations = Annotated[int, Field(ge=1, le=10_000)]
Steps = Annotated[int, Field(ge=1, le=10_000_000)]
BatchSize = Annotated[int, Field(ge=2, le=1_000_000)]
LearningRate = Annotated[float, Field(gt=0.0, le=10.0)]


# training rows centred at a time in float64 (64 MiB of 1280-d rows): a fit holds no centred copy of them all
CENTRED_BLOCK = 1 << 13


def _centred(x: np.ndarray, mean: np.ndarray) -> Iterator[np.ndarray]:
    """``x - mean`` in float64, ``CENTRED_BLOCK`` rows at a time."""
    for start in range(0, len(x), CENTRED_BLOCK):
        yield np.asarray(x[start : start + CENTRED_BLOCK], dtype=np.float64) - mean


def _projected(x: np.ndarray, mean: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """(x - mean) @ directions, (n, k) float64, centring a block of rows at a time."""
    return np.concatenate([block @ directions for block in _centred(x, mean)]) if len(x) else np.zeros((0, 0))


def _pca(x: np.ndarray, components: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and the top principal directions (D, components), by descending variance; the covariance is
    summed in float64 over blocks of rows, so float32 features of any size are fitted without a float64 copy."""
    if components > min(x.shape):
        raise GraphhashError(f"baselines: {components} bits need at least {components} training items and dimensions")
    mean = x.mean(axis=0, dtype=np.float64)
    covariance = np.zeros((x.shape[1], x.shape[1]))
    for block in _centred(x, mean):
        covariance += block.T @ block
    values, vectors = np.linalg.eigh(covariance / max(len(x) - 1, 1))
    return mean, vectors[:, np.argsort(values)[::-1][:components]]


def itq_rotation(v: np.ndarray, iterations: int, seed: int) -> tuple[np.ndarray, list[float]]:
    """ITQ's rotation of embedded data v (n, c) (Gong & Lazebnik): from a random orthogonal R (the Q of a seeded
    Gaussian's QR), ``iterations`` times B = sign(V R) (0 as +1), then the orthogonal Procrustes solution
    R = S Z^T of V^T B = S Omega Z^T, argmin ||B - V R|| over orthogonal R. Returns R (c, c) and the loss
    ||B - V R||_F^2 before each update (``ITQ``; the cross-modal CCA-ITQ rotates with it too)."""
    c = v.shape[1]
    rotation, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((c, c)))
    losses = []
    for _ in range(iterations):
        rotated = v @ rotation
        codes = np.where(rotated >= 0, 1.0, -1.0)
        losses.append(float(np.sum((codes - rotated) ** 2)))
        left, _, right = np.linalg.svd(v.T @ codes)
        rotation = left @ right
    return rotation, losses


class Hasher(Configurable):
    """``fit(x)`` on training features (n, D), then ``encode(x)``: bool codes (n, bits)."""

    @checked
    def __init__(self, bits: Annotated[int, Field(ge=1)], seed: Annotated[int, Field(ge=0)]):
        self.bits, self.seed = bits, seed

    def fit(self, x: np.ndarray) -> Hasher:
        raise NotImplementedError

    def encode(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


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
        v = _projected(x, self.mean_, self.components_)
        self.rotation_, self.losses_ = itq_rotation(v, self.iterations, self.seed)

    def project(self, centred: np.ndarray) -> np.ndarray:
        return centred @ self.components_ @ self.rotation_


class SH(Hasher):
    def fit(self, x: np.ndarray) -> SH:
        self.mean_, self.components_ = _pca(x, min(self.bits, x.shape[1]))
        projected = _projected(x, self.mean_, self.components_)
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


@functools.cache
def _straight_through_function() -> type:
    import torch

    class StraightThrough(torch.autograd.Function):
        @staticmethod
        def forward(ctx, h, quantise):
            return quantise(h)

        @staticmethod
        def backward(ctx, grad):
            return grad, None

    return StraightThrough


def straight_through(h: torch.Tensor, quantise: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``quantise(h)`` in the forward pass; the gradient passed to h unchanged (the identity) in the backward."""
    return _straight_through_function().apply(h, quantise)


def sign(h: torch.Tensor) -> torch.Tensor:
    """+1 where h >= 0, else -1 (as the codes: 0 counts as positive)."""
    return (h >= 0).to(h.dtype) * 2 - 1


def bi_half(h: torch.Tensor) -> torch.Tensor:
    """The bi-half layer's forward (Li & van Gemert): in each column (bit) of a batch (B, bits), the
    floor(B / 2) largest values become +1 and the others -1 (ties by position, stably)."""
    import torch

    order = torch.argsort(h, dim=0, descending=True, stable=True)
    ranked = torch.ones_like(h)
    ranked[len(h) // 2 :] = -1
    return torch.empty_like(h).scatter_(0, order, ranked)


def bi_half_codes(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The bi-half codes of a batch h (B, bits), with a straight-through gradient, and the pull of h towards
    them, 1/2 mean((h - b)^2) with b constant (the reference code's extra gradient (h - b) / (B bits))."""
    codes = straight_through(h, bi_half)
    return codes, 0.5 * (h - codes.detach()).pow(2).mean()


def paired_cosine_loss(codes: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """mean_i (cos(b_i, b_{i + B/2}) - cos(r_i, r_{i + B/2}))^2: the first half of a batch of codes (B, bits)
    paired with the second, their cosines matched to those of the same pairs of ``reference`` (B, D)."""
    import torch.nn.functional as F

    half = len(codes) // 2
    target = F.cosine_similarity(reference[:half], reference[half : 2 * half])
    return F.mse_loss(F.cosine_similarity(codes[:half], codes[half : 2 * half]), target)


class TrainedHasher(Hasher):
    """A linear hashing layer h = (x - mean) W + c on frozen features, trained as BiHalf's and GreedyHash's
    reference code trains theirs on frozen VGG-16 fc7 features (liyunqianggyn/Deep-Unsupervised-Image-Hashing,
    ImageHashing/Cifar10_I.py; ssppp/GreedyHash, unsupervised_vgg.py): for a batch of B items, b = binarise(h),
    the first B/2 items paired with the last B/2, and

        loss = mean_i (cos(b_i, b_{i + B/2}) - cos(x_i, x_{i + B/2}))^2 + penalty(h, b)

    with cos on the features as they are (not centred; theirs also pass through VGG's dropout in training,
    frozen features here do not). The inputs are centred by the training mean, an affine change of variables
    that the bias would otherwise have to learn (the same family of functions). Both references train with
    SGD (momentum 0.9, lr 1e-4, weight decay 5e-4, batch 32) for 60-300 epochs; here Adam, for ``steps``.
    W and c start uniform in +-1/sqrt(D) (torch's nn.Linear default), from the seed; the seed also orders
    the items (reshuffled every pass, each pass cut into batches of ``batch_size``, the rest left out).
    Training is ``steps`` Adam steps on one thread, whatever the number of items; deterministic. Codes of
    any x: h >= 0. ``binarise`` is the one hook: the straight-through codes and the penalty.

    Args:
        steps: Adam steps, whatever the number of training items
        batch_size: items per step (the reference: 32), paired half with half
        lr: Adam's learning rate
    """

    @checked
    def __init__(
        self,
        bits: Bits,
        seed: Seed,
        *,
        steps: Steps = 3000,
        batch_size: BatchSize = 32,
        lr: LearningRate = 1e-3,
    ):
        super().__init__(bits, seed)
        self.steps, self.batch_size, self.lr = steps, batch_size, lr

    def binarise(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, bits) layer outputs -> codes in {-1, +1} (with a straight-through gradient) and the penalty."""
        raise NotImplementedError

    def objective(self, h: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """The training loss of one batch: its layer outputs h (B, bits) and features (B, D)."""
        codes, penalty = self.binarise(h)
        return paired_cosine_loss(codes, features) + penalty

    def fit(self, x: np.ndarray) -> TrainedHasher:
        import torch

        from graphhash.runtime import single_threaded

        x = np.asarray(x, dtype=np.float64)
        n, dim = x.shape
        if n < 2:
            raise GraphhashError(f"baselines: {type(self).__name__} needs at least 2 training items, not {n}")
        self.mean_ = x.mean(axis=0)
        features = torch.as_tensor(x, dtype=torch.float32)
        inputs = torch.as_tensor(x - self.mean_, dtype=torch.float32)
        generator = torch.Generator().manual_seed(self.seed)
        bound = 1 / math.sqrt(dim)
        weight = ((torch.rand(dim, self.bits, generator=generator) * 2 - 1) * bound).requires_grad_()
        bias = ((torch.rand(self.bits, generator=generator) * 2 - 1) * bound).requires_grad_()
        optimiser = torch.optim.Adam([weight, bias], lr=self.lr)
        size = min(self.batch_size, n)
        losses: list[float] = []
        with single_threaded():
            while len(losses) < self.steps:
                order = torch.randperm(n, generator=generator)
                for batch in order[: n - n % size].split(size):
                    if len(losses) == self.steps:
                        break
                    loss = self.objective(inputs[batch] @ weight + bias, features[batch])
                    optimiser.zero_grad(set_to_none=True)
                    loss.backward()
                    optimiser.step()
                    losses.append(loss.item())
        if not math.isfinite(losses[-1]):
            raise GraphhashError(f"baselines: {type(self).__name__}'s loss became {losses[-1]}; lower its lr")
        self.weight_, self.bias_ = weight.detach().double().numpy(), bias.detach().double().numpy()
        self.losses_ = losses
        return self

    def project(self, x: np.ndarray) -> np.ndarray:
        """The layer's outputs h (n, bits)."""
        return (np.asarray(x, dtype=np.float64) - self.mean_) @ self.weight_ + self.bias_

    def encode(self, x: np.ndarray) -> np.ndarray:
        return self.project(x) >= 0


class BiHalf(TrainedHasher):
    """BiHalf (Li & van Gemert, "Deep Unsupervised Image Hashing by Maximizing Bit Entropy", AAAI 2021) on
    frozen features: ``TrainedHasher`` with the bi-half layer, which gives every bit of a batch half +1 and
    half -1 (the maximum bit entropy) with a straight-through backward, and the reference code's extra
    gradient gamma (h - b) / (B bits), written here as the penalty gamma / 2 mean((h - b)^2) with b constant.
    Codes at test time: sign(h), as theirs (the bi-half layer needs a batch). On the digits' EfficientNet
    features at 32 bits, mAP@1000 was 0.735, 0.748 and 0.754 after 1,000, 3,000 and 10,000 steps.

    Args:
        gamma: weight of the pull of h towards its codes (the reference: 6)
    """

    @checked
    def __init__(self, bits: Bits, seed: Seed, *, gamma: NonNegative = 6.0, **training: object):
        super().__init__(bits, seed, **training)
        self.gamma = gamma

    def binarise(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        codes, pull = bi_half_codes(h)
        return codes, self.gamma * pull


class GreedyHash(TrainedHasher):
    """GreedyHash (Su, Zhang, Han & Tian, "Greedy Hash: Towards Fast Optimization for Accurate Hash Coding in
    CNN", NeurIPS 2018), unsupervised, on frozen features: ``TrainedHasher`` with sign in the forward pass
    and the gradient passed straight through (their "greedy principle"), and their penalty
    alpha mean(| |h| - 1 |^3) = alpha mean(|h - sign(h)|^3) pulling h towards its codes. Nothing balances
    the bits: where the features' cosines are all high (non-negative features; the digits' EfficientNet
    features: 0.69 on average), matching them makes most bits nearly constant, which BiHalf's layer prevents.

    Args:
        alpha: weight of the cubic penalty (the reference: 0.1)
    """

    @checked
    def __init__(self, bits: Bits, seed: Seed, *, alpha: NonNegative = 0.1, **training: object):
        super().__init__(bits, seed, **training)
        self.alpha = alpha

    def binarise(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return straight_through(h, sign), self.alpha * (h.abs() - 1).abs().pow(3).mean()


BASELINES: dict[str, type[Hasher]] = {
    "lsh": LSH,
    "pcah": PCAH,
    "itq": ITQ,
    "sh": SH,
    "agh": AGH,
    "agh2": AGH2,
    "bihalf": BiHalf,
    "greedyhash": GreedyHash,
}
