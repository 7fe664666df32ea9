"""From real values to bits: the pieces that the hashers (``graphhash.hashers``) and NRDH's hash network share.

- ``pca``: the mean and leading principal directions of any number of rows, the covariance summed in float64 a block
  of rows at a time (``centred``, ``projected``).
- ``itq_rotation`` and ``itq`` (Gong & Lazebnik, CVPR 2011): the orthogonal rotation R of PCA-projected data V that
  minimises the quantisation loss ||B - V R||_F^2, by alternating B = sign(V R) with the orthogonal Procrustes
  solution for R. ITQ, CCA-ITQ and NRDH's rotated targets rotate with it.
- ``sign``, ``bi_half`` (Li & van Gemert, AAAI 2021) and ``straight_through``: binary layers for training, the
  bi-half layer giving every bit of a batch half +1 and half -1; ``bi_half_codes`` adds the pull of the real values
  towards their codes, and ``paired_cosine_loss`` matches the codes' cosines to those of reference vectors. BiHalf,
  GreedyHash and NRDH's hash network train with them.

torch is imported only inside the torch functions, so that the hashers that need none (and the params schema) run
without it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from graphhash.errors import GraphhashError

if TYPE_CHECKING:
    import torch

# training rows centred at a time in float64 (64 MiB of 1280-d rows): a fit holds no centred copy of them all
CENTRED_BLOCK = 1 << 13
ITQ_ITERATIONS = 50  # Gong and Lazebnik's rotation updates


def centred(x: np.ndarray, mean: np.ndarray) -> Iterator[np.ndarray]:
    """``x - mean`` in float64, ``CENTRED_BLOCK`` rows at a time."""
    for start in range(0, len(x), CENTRED_BLOCK):
        yield np.asarray(x[start : start + CENTRED_BLOCK], dtype=np.float64) - mean


def projected(x: np.ndarray, mean: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """(x - mean) @ directions, (n, k) float64, centring a block of rows at a time."""
    return np.concatenate([block @ directions for block in centred(x, mean)]) if len(x) else np.zeros((0, 0))


def pca(x: np.ndarray, components: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and the top principal directions (D, components), by descending variance; the covariance is
    summed in float64 over blocks of rows, so float32 features of any size are fitted without a float64 copy."""
    if components > min(x.shape):
        raise GraphhashError(f"baselines: {components} bits need at least {components} training items and dimensions")
    mean = x.mean(axis=0, dtype=np.float64)
    covariance = np.zeros((x.shape[1], x.shape[1]))
    for block in centred(x, mean):
        covariance += block.T @ block
    values, vectors = np.linalg.eigh(covariance / max(len(x) - 1, 1))
    return mean, vectors[:, np.argsort(values)[::-1][:components]]


def itq_rotation(v: np.ndarray, iterations: int, seed: int) -> tuple[np.ndarray, list[float]]:
    """ITQ's rotation of embedded data v (n, c): from a random orthogonal R (the Q of a seeded Gaussian's QR),
    ``iterations`` times B = sign(V R) (0 as +1), then the orthogonal Procrustes solution R = S Z^T of
    V^T B = S Omega Z^T, argmin ||B - V R|| over orthogonal R. Returns R (c, c) and the loss ||B - V R||_F^2
    before each update."""
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


def itq(x: np.ndarray, bits: int, seed: int, iterations: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[float]]:
    """ITQ's whole fit on rows x (n, D): PCA to ``bits`` dimensions, then the rotation. Returns the mean (D,), the
    principal directions (D, bits), the rotation (bits, bits) and its losses: a row's bits are
    ((x - mean) @ directions @ rotation) >= 0.

    >>> x = np.random.default_rng(0).standard_normal((200, 8))
    >>> mean, directions, rotation, losses = itq(x, bits=4, seed=0, iterations=20)
    >>> directions.shape, rotation.shape, bool(losses[-1] <= losses[0])
    ((8, 4), (4, 4), True)
    """
    mean, directions = pca(x, bits)
    rotation, losses = itq_rotation(projected(x, mean, directions), iterations, seed)
    return mean, directions, rotation, losses


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
