"""The stronger unsupervised peers on the same features: AGH and two-layer AGH against a dense anchor graph
built here, BiHalf's and GreedyHash's binary layers through autograd, and what their training achieves."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from sklearn.datasets import load_digits

from graphhash.errors import GraphhashError
from graphhash.hashers.spectral import AGH, AGH2
from graphhash.hashers.trained import BiHalf, GreedyHash
from graphhash.quantisation import bi_half, sign, straight_through


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return load_digits().data[:400].astype(np.float64)


def dense_anchor_graph(x: np.ndarray, anchors: np.ndarray, s: int, t: float) -> np.ndarray:
    """Z (n, m) by the paper's definition, from all pairwise distances: each row's s nearest anchors weighted
    exp(-d^2 / t), normalised to sum 1."""
    d2 = ((x[:, None, :] - anchors[None, :, :]) ** 2).sum(axis=2)
    z = np.zeros_like(d2)
    for i, row in enumerate(d2):
        near = np.argsort(row)[:s]
        z[i, near] = np.exp(-row[near] / t)
    return z / z.sum(axis=1, keepdims=True)


def adjacency(z: np.ndarray) -> np.ndarray:
    """A = Z Lambda^-1 Z^T, Lambda = diag(Z^T 1)."""
    return z @ np.diag(1 / z.sum(axis=0)) @ z.T


# ---------------------------------------------------------------- AGH


def test_agh_embedding_is_the_top_non_trivial_eigenvectors_of_the_anchor_graph(digits):
    x, bits = digits[:200], 6
    model = AGH(bits, 0, anchors=40, nearest=3).fit(x)
    n, m = len(x), len(model.anchors_)
    assert m == 40 and model.nearest_ == 3
    d2 = ((x[:, None, :] - model.anchors_[None, :, :]) ** 2).sum(axis=2)
    assert model.t_ == pytest.approx(np.mean(np.sqrt(np.sort(d2, axis=1)[:, 2])) ** 2)  # Liu's estimate of t
    z = dense_anchor_graph(x, model.anchors_, 3, model.t_)
    np.testing.assert_allclose(model.anchor_graph(x).toarray(), z, atol=1e-12)
    a = adjacency(z)
    values, vectors = np.linalg.eigh(a)
    values, vectors = values[::-1], vectors[:, ::-1]
    assert values[0] == pytest.approx(1.0) and np.allclose(np.abs(vectors[:, 0]), 1 / np.sqrt(n))  # the trivial one
    y = model.embed(x)
    np.testing.assert_allclose(model.eigenvalues_, values[1 : bits + 1], atol=1e-10)  # the next ones, descending
    np.testing.assert_allclose(a @ y, y * model.eigenvalues_, atol=1e-8)
    np.testing.assert_allclose(y.T @ y, n * np.eye(bits), atol=1e-8)
    np.testing.assert_allclose(y.sum(axis=0), 0, atol=1e-8)  # orthogonal to the constant
    assert np.max(np.diff(values[: bits + 2])) < -1e-6  # distinct eigenvalues: the eigenvectors are unique
    np.testing.assert_allclose(y @ y.T / n, vectors[:, 1 : bits + 1] @ vectors[:, 1 : bits + 1].T, atol=1e-8)
    np.testing.assert_array_equal(model.encode(x), y >= 0)


def test_agh_codes_items_outside_the_training_set_through_their_anchors(digits):
    train, held_out = digits[:300], digits[300:]
    model = AGH(8, 1, anchors=50).fit(train)
    z = dense_anchor_graph(held_out, model.anchors_, 2, model.t_)
    np.testing.assert_array_equal(model.encode(held_out), z @ model.projection_ >= 0)
    np.testing.assert_array_equal(AGH(8, 1, anchors=50).fit(train).encode(held_out), model.encode(held_out))


def second_layer_thresholds(a: np.ndarray, f: np.ndarray) -> tuple[float, float]:
    """(b+, b-) minimising v^T (I - A) v subject to 1^T v = 0, v = |f| - b+ on f >= 0 and |f| - b- on f < 0,
    from the KKT system of this two-variable problem, with A dense."""
    laplacian = np.eye(len(f)) - a
    sides = np.stack([f >= 0, f < 0], axis=1).astype(np.float64)  # v = |f| - sides @ (b+, b-)
    counts = sides.sum(axis=0)
    kkt = np.zeros((3, 3))
    kkt[:2, :2] = 2 * sides.T @ laplacian @ sides
    kkt[:2, 2], kkt[2, :2] = counts, counts
    rhs = np.append(2 * sides.T @ laplacian @ np.abs(f), np.abs(f).sum())
    b_plus, b_minus, _ = np.linalg.solve(kkt, rhs)
    return b_plus, b_minus


def test_agh2_bits_come_in_pairs_thresholded_as_the_paper_defines(digits):
    x = digits[:200]
    model = AGH2(8, 0, anchors=40, nearest=3).fit(x)  # s = 2 would leave this anchor graph disconnected
    one_layer = AGH(4, 0, anchors=40, nearest=3).fit(x)  # the same anchors and eigenfunctions
    y = model.embed(x)
    assert y.shape == (200, 4)
    np.testing.assert_allclose(y, one_layer.embed(x), atol=1e-10)
    codes = model.encode(x)
    np.testing.assert_array_equal(codes[:, 0::2], one_layer.encode(x))  # first layer: the sign
    a = adjacency(dense_anchor_graph(x, model.anchors_, 3, model.t_))
    assert np.sort(np.linalg.eigvalsh(a))[-2] < 1 - 1e-6  # connected: the thresholds are unique
    for k in range(4):
        b_plus, b_minus = second_layer_thresholds(a, y[:, k])
        np.testing.assert_allclose(model.thresholds_[:, k], [b_plus, b_minus], rtol=1e-8, atol=1e-10)
        second = np.where(y[:, k] >= 0, np.abs(y[:, k]) >= b_plus, np.abs(y[:, k]) >= b_minus)
        np.testing.assert_array_equal(codes[:, 2 * k + 1], second)
        assert 0 < codes[:, 2 * k + 1].mean() < 1
    odd = AGH2(7, 0, anchors=40, nearest=3).fit(x).encode(x)  # ceil(7 / 2) = 4 eigenfunctions, the last with one bit
    np.testing.assert_array_equal(odd, codes[:, :7])


def test_agh_refuses_more_bits_than_its_anchors_carry(digits):
    with pytest.raises(GraphhashError, match="need at least 11 anchors"):
        AGH(10, 0, anchors=10).fit(digits)
    with pytest.raises(GraphhashError, match="need at least 6 anchors"):
        AGH2(10, 0).fit(digits[:5])  # anchors are capped at the training items
    for bad in ({"anchors": 1}, {"nearest": 0}, {"bandwidth": 0.0}, {"iterations": 0}, {"anchors": 300.0}):
        with pytest.raises(ValidationError):
            AGH(8, 0, **bad)


# ---------------------------------------------------------------- BiHalf and GreedyHash: the binary layers


def test_bi_half_layer_splits_every_bit_of_a_batch_in_half_and_passes_gradients_straight_through():
    h = (torch.randn(10, 6, generator=torch.Generator().manual_seed(0)) + torch.arange(6.0) * 3).requires_grad_()
    b = straight_through(h, bi_half)
    assert set(b.unique().tolist()) == {-1.0, 1.0}
    assert (b.sum(dim=0) == 0).all()  # 5 of +1 and 5 of -1 in every bit, however skewed the column
    top = torch.argsort(h.detach(), dim=0, descending=True)[:5]
    assert (torch.gather(b.detach(), 0, top) == 1).all()  # the +1 are the 5 largest
    grad = torch.randn(10, 6, generator=torch.Generator().manual_seed(1))
    (b * grad).sum().backward()
    assert torch.equal(h.grad, grad)  # the backward is the identity
    assert bi_half(torch.randn(7, 3)).sum(dim=0).tolist() == [-1.0, -1.0, -1.0]  # odd: 3 of +1, 4 of -1


def test_bihalf_adds_the_reference_pull_towards_the_codes_to_the_gradient():
    """Their backward is g + gamma (U - B) / B.numel(); here the straight-through layer plus the penalty."""
    h = torch.randn(8, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2)).requires_grad_()
    codes, penalty = BiHalf(5, 0, gamma=6.0).binarise(h)
    grad = torch.randn(8, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    ((codes * grad).sum() + penalty).backward()
    torch.testing.assert_close(h.grad, grad + 6.0 * (h.detach() - codes.detach()) / h.numel())


def test_greedy_hash_layer_is_sign_forward_identity_backward_with_the_cubic_penalty_gradient():
    h = torch.tensor([[-2.0, -0.5, 0.0], [0.25, 1.0, 3.0]], dtype=torch.float64, requires_grad=True)
    b = straight_through(h, sign)
    assert b.tolist() == [[-1.0, -1.0, 1.0], [1.0, 1.0, 1.0]]  # 0 counts as +1, as in the codes
    grad = torch.arange(6.0, dtype=torch.float64).reshape(2, 3)
    (b * grad).sum().backward()
    assert torch.equal(h.grad, grad)
    h.grad = None
    x = torch.tensor([[-2.0, -0.5, 0.3], [0.25, 1.5, 3.0]], dtype=torch.float64, requires_grad=True)
    codes, penalty = GreedyHash(3, 0, alpha=0.3).binarise(x)
    assert torch.equal(codes, straight_through(x, sign))
    u = x.detach()
    torch.testing.assert_close(penalty, 0.3 * ((u.abs() - 1).abs() ** 3).mean())
    penalty.backward()  # d/dx alpha mean(| |x| - 1 |^3) = alpha 3 (|x| - 1)^2 sign(|x| - 1) sign(x) / numel
    torch.testing.assert_close(x.grad, 0.3 * 3 * (u.abs() - 1) ** 2 * torch.sign(u.abs() - 1) * torch.sign(u) / 6)


# ---------------------------------------------------------------- BiHalf and GreedyHash: training


def batch_objective(model: BiHalf | GreedyHash, x: np.ndarray) -> float:
    """The training loss with all of x as one batch, for the fitted layer."""
    return float(model.objective(torch.as_tensor(model.project(x)), torch.as_tensor(x)))


def test_greedy_hash_training_reduces_its_loss(digits):
    train = digits[:300]
    untrained = GreedyHash(16, 0, steps=1).fit(train)
    trained = GreedyHash(16, 0, steps=300).fit(train)
    assert len(trained.losses_) == 300
    assert batch_objective(trained, train) < 0.5 * batch_objective(untrained, train)
    assert np.mean(trained.losses_[-30:]) < 0.5 * np.mean(trained.losses_[:30])


def bit_entropy(codes: np.ndarray) -> np.ndarray:
    """Each bit's entropy in bits (1: half the items have it)."""
    p = np.clip(codes.mean(axis=0), 1e-12, 1 - 1e-12)
    return -p * np.log2(p) - (1 - p) * np.log2(1 - p)


def test_bihalf_codes_have_near_maximal_bit_entropy(digits):
    """The method's purpose. On the digits' pixels (non-negative, skewed), a linear sign layer as initialised
    (uniform in +-1/sqrt(D), no centring) gives most items the same bit; BiHalf's trained codes are split
    half and half in every bit, more evenly than GreedyHash's, trained on the same loss with sign instead of
    the bi-half layer."""
    x = digits
    rng = np.random.default_rng(0)
    untrained = x @ rng.uniform(-1, 1, (64, 16)) / 8 + rng.uniform(-1, 1, 16) / 8 >= 0
    bihalf = bit_entropy(BiHalf(16, 0, steps=300).fit(x).encode(x))
    greedy = bit_entropy(GreedyHash(16, 0, steps=300).fit(x).encode(x))
    assert bit_entropy(untrained).mean() < 0.7
    assert bihalf.min() > 0.99
    assert bihalf.mean() > greedy.mean() and bihalf.min() > greedy.min()


@pytest.mark.parametrize("cls", [BiHalf, GreedyHash])
def test_trained_hashers_are_seeded_and_fitted_on_the_training_items_only(cls, digits):
    train, other = digits[:90], digits[300:]
    model = cls(16, 4, steps=7, batch_size=32).fit(train)  # 2 batches a pass: 4 passes, the last cut short
    assert len(model.losses_) == 7
    codes = model.encode(other)
    assert codes.shape == (100, 16) and codes.dtype == bool
    again = cls(16, 4, steps=7, batch_size=32).fit(train)
    assert again.encode(other).tobytes() == codes.tobytes() and again.losses_ == model.losses_
    assert (cls(16, 5, steps=7, batch_size=32).fit(train).encode(other) != codes).any()
    weight, bias, train_codes = model.weight_.copy(), model.bias_.copy(), model.encode(train)
    model.encode(digits)  # encoding other items changes nothing
    assert np.array_equal(model.weight_, weight) and np.array_equal(model.bias_, bias)
    np.testing.assert_array_equal(model.encode(train), train_codes)
    np.testing.assert_array_equal(codes, model.project(other) >= 0)


@pytest.mark.parametrize("cls", [BiHalf, GreedyHash])
def test_trained_hashers_refuse_bad_hyperparameters(cls, digits):
    for bad in ({"steps": 0}, {"batch_size": 1}, {"lr": 0.0}, {"lr": True}, {"steps": 10.0}):
        with pytest.raises(ValidationError):
            cls(8, 0, **bad)
    with pytest.raises((TypeError, ValidationError)):
        cls(8, 0, 100)  # hyperparameters are keyword-only
    with pytest.raises(GraphhashError, match="at least 2 training items"):
        cls(8, 0, steps=1).fit(digits[:1])
