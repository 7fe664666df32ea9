"""The batch graphs of NRDH (Eqs. 2-4) and the split of an epoch's nodes into graphs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from graphhash.graphs.batch import (
    adjacency,
    cosine_similarity,
    epoch_batches,
    epoch_graphs,
    nrdh_propagation,
    reweighted_propagation,
)


def reference_propagation(vectors: np.ndarray, rho: float, p: float) -> np.ndarray:
    """Eqs. 2-4 for one graph (M, D), written out with loops in float64."""
    m = len(vectors)
    norms = [math.sqrt(sum(float(a) * float(a) for a in v)) for v in vectors]
    linked = np.zeros((m, m), dtype=bool)
    for i in range(m):
        for j in range(m):
            if i != j and norms[i] > 0 and norms[j] > 0:
                cosine = sum(float(a) * float(b) for a, b in zip(vectors[i], vectors[j], strict=True))
                linked[i, j] = cosine / (norms[i] * norms[j]) > rho
    out = np.zeros((m, m))
    for i in range(m):
        neighbours = int(linked[i].sum())
        out[i, i] = p if neighbours else 1.0
        for j in range(m):
            if linked[i, j]:
                out[i, j] = (1.0 - p) / neighbours
    return out


# Four nodes: 0-1 (cos 1/sqrt 2) and 1-2 (cos 3/sqrt 10) above rho = 0.5, 0-2 (cos 1/sqrt 5) below, 3 isolated.
FOUR = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [1.0, 2.0, 0.0], [0.0, 0.0, 1.0]])
FOUR_COSINES = np.array(
    [
        [1.0, 1 / math.sqrt(2), 1 / math.sqrt(5), 0.0],
        [1 / math.sqrt(2), 1.0, 3 / math.sqrt(10), 0.0],
        [1 / math.sqrt(5), 3 / math.sqrt(10), 1.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)
FOUR_PROPAGATION = np.array(  # rho 0.5, p 0.8: node 1 has two neighbours, nodes 0 and 2 one, node 3 none
    [
        [0.8, 0.2, 0.0, 0.0],
        [0.1, 0.8, 0.1, 0.0],
        [0.0, 0.2, 0.8, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


def test_cosine_similarity_matches_numpy():
    """Eq. 2 for every pair of every graph equals numpy's normalised dot products."""
    x = np.random.default_rng(0).normal(size=(3, 5, 7))
    expected = np.empty((3, 5, 5))
    for g in range(3):
        for i in range(5):
            for j in range(5):
                expected[g, i, j] = x[g, i] @ x[g, j] / (np.linalg.norm(x[g, i]) * np.linalg.norm(x[g, j]))
    got = cosine_similarity(torch.from_numpy(x))
    assert got.shape == (3, 5, 5)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-12)


def test_cosine_similarity_of_hand_built_graph():
    """The four-node example has the cosines computed by hand."""
    np.testing.assert_allclose(cosine_similarity(FOUR[None])[0].numpy(), FOUR_COSINES, atol=1e-6)


def test_nrdh_propagation_hand_built_graph():
    """Eqs. 3-4 on the four-node example: p on linked diagonals, 1 when isolated, (1-p)/n_i on neighbours."""
    got = nrdh_propagation(FOUR[None], rho=0.5, p=0.8)
    assert got.shape == (1, 4, 4)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got[0].numpy(), FOUR_PROPAGATION, atol=1e-6)
    np.testing.assert_allclose(got[0].sum(dim=1).numpy(), np.ones(4), atol=1e-6)


def test_nrdh_threshold_is_strict_at_zero():
    """Eq. 3 uses u > rho: an orthogonal pair (cosine exactly 0) is not linked when rho = 0."""
    x = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])  # cos(0, 1) = 0; cos(0, 2) = cos(1, 2) = 1/sqrt 2
    p = 0.6
    expected = np.array([[p, 0.0, 1 - p], [0.0, p, 1 - p], [(1 - p) / 2, (1 - p) / 2, p]])
    np.testing.assert_allclose(nrdh_propagation(x, rho=0.0, p=p)[0].numpy(), expected, atol=1e-6)


def test_nrdh_threshold_is_strict_at_one():
    """Eq. 3 uses u > rho: parallel vectors (cosine exactly 1) are not linked when rho = 1, so all are isolated."""
    x = torch.tensor([[[2.0, 0.0], [1.0, 0.0], [0.0, 3.0]]])
    assert cosine_similarity(x)[0, 0, 1].item() == 1.0  # the premise: exactly at the threshold
    np.testing.assert_array_equal(nrdh_propagation(x, rho=1.0, p=0.7)[0].numpy(), np.eye(3))


def test_nrdh_propagation_matches_loop_reference_and_rows_sum_to_one():
    """Random graphs: U' equals the loop implementation of Eqs. 2-4 and every row sums to 1."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 8, 6)).astype(np.float32)
    rho, p = 0.2, 0.75
    got = nrdh_propagation(torch.from_numpy(x), rho=rho, p=p).numpy()
    cos = cosine_similarity(torch.from_numpy(x).double()).numpy()
    assert np.abs(cos - rho).min() > 1e-4  # no pair so close to rho that float32 rounding could flip it
    for g in range(4):
        np.testing.assert_allclose(got[g], reference_propagation(x[g], rho, p), atol=1e-6)
    np.testing.assert_allclose(got.sum(axis=-1), np.ones((4, 8)), atol=1e-6)
    linked_counts = [(reference_propagation(x[g], rho, p) > 0).sum() - 8 for g in range(4)]
    assert 0 < sum(linked_counts) < 4 * 8 * 7  # the example has both edges and non-edges


def test_nrdh_propagation_batched_equals_separate():
    """Building G graphs in one call gives the same matrices as building each graph alone."""
    x = torch.from_numpy(np.random.default_rng(2).normal(size=(5, 6, 4)).astype(np.float32))
    batched = nrdh_propagation(x, rho=0.3, p=0.8)
    for g in range(5):
        assert torch.equal(batched[g], nrdh_propagation(x[g : g + 1], rho=0.3, p=0.8)[0])


def test_nrdh_identical_vectors():
    """All cosines 1: p on the diagonal and (1-p)/(M-1) everywhere else."""
    m, p = 5, 0.8
    x = torch.tensor([0.3, -1.2, 2.0, 0.7]).repeat(1, m, 1)
    expected = np.full((m, m), (1 - p) / (m - 1))
    np.fill_diagonal(expected, p)
    np.testing.assert_allclose(nrdh_propagation(x, rho=0.4, p=p)[0].numpy(), expected, atol=1e-6)


def test_nrdh_zero_vectors_are_isolated_not_nan():
    """A zero feature vector gives finite weights: the node is isolated and its row is one-hot."""
    x = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [1.0, 0.1]], [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]])
    got = nrdh_propagation(x, rho=0.4, p=0.8)
    assert torch.isfinite(got).all()
    assert torch.isfinite(cosine_similarity(x)).all()
    np.testing.assert_allclose(got[0].numpy(), [[1.0, 0.0, 0.0], [0.0, 0.8, 0.2], [0.0, 0.2, 0.8]], atol=1e-6)
    np.testing.assert_array_equal(got[1].numpy(), np.eye(3))


def test_nrdh_propagation_keeps_float64_precision():
    """Float64 features give weights exact to float64 precision (diagonal p = 0.8, rows summing to 1)."""
    got = nrdh_propagation(FOUR[None].double(), rho=0.5, p=0.8)
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got[0].numpy(), FOUR_PROPAGATION, rtol=0, atol=1e-12)


def test_adjacency_is_eq_3_symmetric_binary_without_self_links():
    """A = [cos > rho] off the diagonal, 0/1 in the features' dtype, symmetric; the links U' is built on."""
    x = torch.from_numpy(np.random.default_rng(5).normal(size=(3, 9, 4)))
    a = adjacency(x, 0.3)
    cos = cosine_similarity(x).numpy()
    expected = (cos > 0.3) & ~np.eye(9, dtype=bool)
    assert a.dtype == torch.float64
    np.testing.assert_array_equal(a.numpy(), expected.astype(np.float64))
    assert torch.equal(a, a.transpose(-1, -2))
    assert torch.equal(nrdh_propagation(x, 0.3, 0.8) > 0, (a > 0) | torch.eye(9, dtype=torch.bool))
    np.testing.assert_array_equal(
        adjacency(FOUR[None], 0.5)[0].numpy(), (FOUR_PROPAGATION > 0) & ~np.eye(4, dtype=bool)
    )


def test_nrdh_propagation_is_p_identity_plus_random_walk():
    """U' = p I + (1 - p) D^-1 A on nodes with neighbours and e_i on isolated ones, from the adjacency alone."""
    rng = np.random.default_rng(6)
    upper = np.triu(rng.random((8, 8)) < 0.3, 1)
    a = (upper | upper.T).astype(np.float64)
    a[5, :] = a[:, 5] = 0.0
    degree = a.sum(axis=1)
    p = 0.7
    expected = np.where(degree[:, None] > 0, p * np.eye(8) + (1 - p) * a / np.maximum(degree[:, None], 1), np.eye(8))
    np.testing.assert_allclose(reweighted_propagation(torch.from_numpy(a[None]), p)[0].numpy(), expected, atol=1e-15)


def test_epoch_batches_divisible():
    """A node count divisible by M gives a single (G, M) block holding the order row by row."""
    order = torch.tensor([5, 2, 7, 0, 3, 1, 4, 6, 8, 9, 11, 10])
    blocks = epoch_batches(order, 4)
    assert len(blocks) == 1
    assert blocks[0].tolist() == [[5, 2, 7, 0], [3, 1, 4, 6], [8, 9, 11, 10]]


def test_epoch_batches_with_remainder():
    """A count not divisible by M gives a (G, M) block and a (1, r) remainder, every index once, in order."""
    order = torch.randperm(23, generator=torch.Generator().manual_seed(0))
    blocks = epoch_batches(order, 5)
    assert [tuple(b.shape) for b in blocks] == [(4, 5), (1, 3)]
    assert torch.cat([b.reshape(-1) for b in blocks]).tolist() == order.tolist()
    assert sorted(order.tolist()) == list(range(23))


def test_epoch_batches_fewer_nodes_than_graph():
    """Fewer nodes than M gives only the (1, r) block."""
    blocks = epoch_batches(torch.tensor([2, 0, 1]), 10)
    assert len(blocks) == 1
    assert blocks[0].tolist() == [[2, 0, 1]]


def test_epoch_graphs_without_completion_are_epoch_batches():
    """Each block comes with its own width: every node of every graph is its own."""
    order = torch.randperm(23, generator=torch.Generator().manual_seed(1))
    pairs = epoch_graphs(order, 5)
    assert [(tuple(b.shape), own) for b, own in pairs] == [((4, 5), 5), ((1, 3), 3)]
    assert all(torch.equal(b, e) for (b, _), e in zip(pairs, epoch_batches(order, 5), strict=True))


def test_epoch_graphs_complete_the_remainder_from_the_start_of_the_order():
    """With completion the remainder graph takes the first nodes of the order: (1, M), its own nodes first."""
    order = torch.randperm(23, generator=torch.Generator().manual_seed(2))
    (full, full_own), (last, own) = epoch_graphs(order, 5, complete=True)
    assert (tuple(full.shape), full_own, tuple(last.shape), own) == ((4, 5), 5, (1, 5), 3)
    assert last[0].tolist() == order[20:].tolist() + order[:2].tolist()
    assert len(set(last[0].tolist())) == 5  # no node twice in a graph
    divisible = torch.arange(10)
    assert [own for _, own in epoch_graphs(divisible, 5, complete=True)] == [5]
    ((only, only_own),) = epoch_graphs(torch.arange(5), 5, complete=True)
    assert only.tolist() == [[0, 1, 2, 3, 4]] and only_own == 5


def test_epoch_graphs_cannot_complete_from_too_few_nodes():
    """Fewer nodes than M cannot fill a graph without repeating nodes."""
    with pytest.raises(ValueError, match="cannot complete"):
        epoch_graphs(torch.arange(3), 5, complete=True)
