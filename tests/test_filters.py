"""The graph filters (graphhash.graphs.filters) against dense numpy references on small seeded graphs."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from graphhash.errors import GraphhashError
from graphhash.graphs.batch import adjacency, kipf_propagation, normalized_laplacian
from graphhash.graphs.filters import FILTERS, Graph, build_filter
from graphhash.graphs.filters.cheby import ChebConv
from graphhash.graphs.filters.gcn import GCNConv, NoGraph
from graphhash.graphs.filters.lanczos import LanczosConv, lanczos, lanczos_start
from graphhash.graphs.filters.spectral import (
    FourierConv,
    SplineConv,
    initial_response,
    response_basis,
    tie_average,
)
from graphhash.hyperparameters import HyperparameterError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def random_adjacency(rng: np.random.Generator, n: int, density: float = 0.5) -> np.ndarray:
    """A symmetric 0/1 matrix with zero diagonal."""
    upper = np.triu(rng.random((n, n)) < density, 1)
    return (upper | upper.T).astype(np.float64)


def dense_laplacian(a: np.ndarray) -> np.ndarray:
    """I - D^-1/2 A D^-1/2 entry by entry; an isolated node's row and column are the identity's."""
    n = len(a)
    degree = a.sum(axis=1)
    out = np.eye(n)
    for i in range(n):
        for j in range(n):
            if a[i, j]:
                out[i, j] -= a[i, j] / np.sqrt(degree[i] * degree[j])
    return out


def distinct_spectrum_graphs(count: int, n: int, seed: int = 0, gap: float = 1e-2) -> np.ndarray:
    """``count`` random graphs of n nodes whose Laplacian eigenvalues are all at least ``gap`` apart."""
    rng = np.random.default_rng(seed)
    found = []
    while len(found) < count:
        a = random_adjacency(rng, n)
        if np.diff(np.linalg.eigvalsh(dense_laplacian(a))).min() > gap:
            found.append(a)
    return np.stack(found)


def spectral_reference(a: np.ndarray, x: np.ndarray, h) -> np.ndarray:
    """U h(Lambda) U^T X for one graph, from numpy's eigh."""
    lam, u = np.linalg.eigh(dense_laplacian(a))
    return u @ np.diag(h(lam)) @ u.T @ x


def cheb_t(k: int, x: np.ndarray) -> np.ndarray:
    """T_k(x) = cos(k arccos x) on [-1, 1]."""
    return np.cos(k * np.arccos(np.clip(x, -1.0, 1.0)))


def star(n: int) -> np.ndarray:
    """Node 0 linked to every other node: eigenvalues 0, 1 (n - 2 times), 2."""
    a = np.zeros((n, n))
    a[0, 1:] = a[1:, 0] = 1.0
    return a


# --- the normalised Laplacian and Kipf's propagation -------------------------------------------------------


def test_laplacian_matches_dense_and_spectrum_in_zero_two():
    """L = I - D^-1/2 A D^-1/2 equals the entrywise construction, is symmetric, and has eigenvalues in [0, 2]."""
    rng = np.random.default_rng(0)
    a = np.stack([random_adjacency(rng, 9, density) for density in (0.2, 0.5, 0.9, 1.0)])
    a[0, 3, :] = a[0, :, 3] = 0.0  # an isolated node
    got = normalized_laplacian(torch.from_numpy(a)).numpy()
    for g in range(len(a)):
        np.testing.assert_allclose(got[g], dense_laplacian(a[g]), atol=1e-12)
        np.testing.assert_array_equal(got[g], got[g].T)
        lam = np.linalg.eigvalsh(got[g])
        assert lam.min() > -1e-12 and lam.max() < 2 + 1e-12
    assert got[0, 3, 3] == 1.0 and np.count_nonzero(got[0, 3]) == 1  # isolated: the identity's row
    assert np.linalg.eigvalsh(got[3]).max() == pytest.approx(9 / 8)  # complete graph: n / (n - 1)


def test_laplacian_of_edgeless_graph_is_identity_and_bipartite_reaches_two():
    """No edges: L = I (no division by zero). A bipartite graph (a path) has 2 as its largest eigenvalue."""
    np.testing.assert_array_equal(normalized_laplacian(torch.zeros(1, 4, 4))[0].numpy(), np.eye(4))
    path = np.diag(np.ones(4), 1) + np.diag(np.ones(4), -1)
    lam = np.linalg.eigvalsh(normalized_laplacian(torch.from_numpy(path[None]))[0].numpy())
    assert lam[0] == pytest.approx(0.0, abs=1e-12) and lam[-1] == pytest.approx(2.0)


def test_kipf_propagation_matches_dense():
    """D~^-1/2 (A + I) D~^-1/2 with D~ = D + I, entry by entry; an isolated node keeps weight 1 on itself."""
    rng = np.random.default_rng(1)
    a = random_adjacency(rng, 6)
    a[2, :] = a[:, 2] = 0.0
    looped = a + np.eye(6)
    d = looped.sum(axis=1)
    expected = looped / np.sqrt(d[:, None] * d[None, :])
    got = kipf_propagation(torch.from_numpy(a[None]))[0].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-12)
    assert got[2, 2] == 1.0


# --- ChebNet ------------------------------------------------------------------------------------------------


def test_cheby_equals_chebyshev_response_in_eigenbasis():
    """sum_k T_k(L~) X Theta_k = sum_k U T_k(2 Lambda / 2 - 1) U^T X Theta_k, with lambda_max = 2."""
    rng = np.random.default_rng(2)
    a = np.stack([random_adjacency(rng, 8, 0.4) for _ in range(3)])
    x = rng.normal(size=(3, 8, 5))
    layer = ChebConv(5, 3, order=4).double()
    theta = layer.weight.detach().numpy()
    got = layer(torch.from_numpy(x), torch.from_numpy(a)).detach().numpy()
    for g in range(3):
        expected = sum(
            spectral_reference(a[g], x[g], lambda lam, k=k: cheb_t(k, 2 * lam / 2 - 1)) @ theta[k] for k in range(4)
        )
        np.testing.assert_allclose(got[g], expected, atol=1e-10)


def test_cheby_order_one_is_a_dense_layer_and_order_two_first_order():
    """K = 1: X Theta_0 (no graph). K = 2: X Theta_0 + (L - I) X Theta_1."""
    rng = np.random.default_rng(3)
    a, x = random_adjacency(rng, 6)[None], rng.normal(size=(1, 6, 4))
    lap = dense_laplacian(a[0])
    one, two = ChebConv(4, 2, order=1).double(), ChebConv(4, 2, order=2).double()
    w1, w2 = one.weight.detach().numpy(), two.weight.detach().numpy()
    np.testing.assert_allclose(one(torch.from_numpy(x), torch.from_numpy(a))[0].detach(), x[0] @ w1[0], atol=1e-12)
    expected = x[0] @ w2[0] + (lap - np.eye(6)) @ x[0] @ w2[1]
    np.testing.assert_allclose(two(torch.from_numpy(x), torch.from_numpy(a))[0].detach(), expected, atol=1e-12)


# --- the response basis and the spline / polynomial filter -------------------------------------------------


@pytest.mark.parametrize("count", [4, 5, 8, 13])
def test_bspline_basis_is_nonnegative_partition_of_unity(count):
    """Cubic B-splines on uniform knots: each >= 0, together summing to 1 everywhere on [0, 2]."""
    lam = torch.linspace(0.0, 2.0, 1001, dtype=torch.float64)
    basis = response_basis(lam, "bspline", count)
    assert basis.shape == (1001, count)
    assert (basis >= 0).all()
    np.testing.assert_allclose(basis.sum(dim=-1).numpy(), np.ones(1001), atol=1e-12)
    assert (basis.amax(dim=0) > 0.1).all()  # every function matters somewhere on [0, 2]


def test_bspline_basis_values_and_clamping():
    """At a knot the three live cubic B-splines are 1/6, 2/3, 1/6; eigenvalues outside [0, 2] are clamped."""
    basis = response_basis(torch.tensor([0.0, -1e-7, 2.0 + 1e-7], dtype=torch.float64), "bspline", 5)
    np.testing.assert_allclose(basis[0].numpy(), [1 / 6, 2 / 3, 1 / 6, 0, 0], atol=1e-12)
    np.testing.assert_array_equal(basis[1].numpy(), basis[0].numpy())
    np.testing.assert_allclose(basis[2].numpy(), [0, 0, 1 / 6, 2 / 3, 1 / 6], atol=1e-12)


def test_poly_basis_is_chebyshev_in_lambda_minus_one():
    """The poly basis is T_b(lambda - 1), b < count."""
    lam = np.linspace(0.0, 2.0, 101)
    got = response_basis(torch.from_numpy(lam), "poly", 6).numpy()
    np.testing.assert_allclose(got, np.stack([cheb_t(b, lam - 1) for b in range(6)], axis=-1), atol=1e-12)


@pytest.mark.parametrize(("kind", "count"), [("bspline", 4), ("bspline", 9), ("poly", 2), ("poly", 5)])
def test_initial_response_is_low_pass_line(kind, count):
    """Both bases start from h(lambda) = 1 - lambda / 2."""
    lam = torch.linspace(0.0, 2.0, 51, dtype=torch.float64)
    h = response_basis(lam, kind, count) @ initial_response(kind, count).double()
    np.testing.assert_allclose(h.numpy(), 1 - lam.numpy() / 2, atol=1e-6)


@pytest.mark.parametrize("basis", ["bspline", "poly"])
def test_spline_equals_response_in_numpy_eigenbasis(basis):
    """U h(Lambda) U^T X W with h = sum_b c_b phi_b, on graphs with repeated eigenvalues too (h is a function)."""
    rng = np.random.default_rng(4)
    a = np.stack([random_adjacency(rng, 7, 0.4), star(7), np.zeros((7, 7))])
    x = rng.normal(size=(3, 7, 4))
    layer = SplineConv(4, 3, basis=basis, knots=7).double()
    with torch.no_grad():
        layer.response.copy_(torch.from_numpy(rng.normal(size=7)))
    coefficients, w = layer.response.detach(), layer.weight.detach().numpy()

    def h(lam: np.ndarray) -> np.ndarray:
        return (response_basis(torch.from_numpy(lam), basis, 7) @ coefficients).numpy()

    got = layer(torch.from_numpy(x), torch.from_numpy(a)).detach().numpy()
    for g in range(3):
        np.testing.assert_allclose(got[g], spectral_reference(a[g], x[g], h) @ w, atol=1e-10)


def test_degree_one_polynomial_response_is_first_order_propagation():
    """h(lambda) = a + b lambda (poly, 2 terms: c = (a + b, b)) gives a X W + b L X W."""
    rng = np.random.default_rng(5)
    adj = np.stack([random_adjacency(rng, 6, 0.5) for _ in range(2)])
    x = rng.normal(size=(2, 6, 4))
    a, b = 0.7, -1.3
    layer = SplineConv(4, 3, basis="poly", knots=2).double()
    with torch.no_grad():
        layer.response.copy_(torch.tensor([a + b, b], dtype=torch.float64))
    w = layer.weight.detach().numpy()
    got = layer(torch.from_numpy(x), torch.from_numpy(adj)).detach().numpy()
    for g in range(2):
        np.testing.assert_allclose(got[g], a * x[g] @ w + b * dense_laplacian(adj[g]) @ x[g] @ w, atol=1e-10)


# --- Lanczos ------------------------------------------------------------------------------------------------


def spectral_only(layer: LanczosConv, coefficients: np.ndarray) -> LanczosConv:
    """Keep only the long-range term with W_2 = I and the given response coefficients."""
    with torch.no_grad():
        layer.weight.zero_()
        layer.weight[2].copy_(torch.eye(layer.in_dim))
        layer.response.copy_(torch.from_numpy(coefficients))
    return layer


@pytest.mark.parametrize("basis", ["bspline", "poly"])
def test_lanczos_with_n_steps_is_exact_spectral_filter(basis):
    """m = n Lanczos steps (float64, distinct eigenvalues): V h(R) V^T X = U h(Lambda) U^T X to 1e-5."""
    rng = np.random.default_rng(6)
    a, x = distinct_spectrum_graphs(3, 8, seed=6), rng.normal(size=(3, 8, 4))
    coefficients = rng.normal(size=6)
    layer = spectral_only(LanczosConv(4, 4, steps=8, basis=basis, knots=6).double(), coefficients)
    graph = layer.prepare(torch.from_numpy(a), torch.from_numpy(x))
    assert graph.spectral.shape == (3, 8, 8, 6)
    got = layer(torch.from_numpy(x), graph).detach().numpy()

    def h(lam: np.ndarray) -> np.ndarray:
        return response_basis(torch.from_numpy(lam), basis, 6).numpy() @ coefficients

    for g in range(3):
        np.testing.assert_allclose(got[g], spectral_reference(a[g], x[g], h), atol=1e-5)
    # More steps than nodes is the same as n steps.
    more = spectral_only(LanczosConv(4, 4, steps=20, basis=basis, knots=6).double(), coefficients)
    np.testing.assert_allclose(more(torch.from_numpy(x), torch.from_numpy(a)).detach().numpy(), got, atol=1e-10)


def test_lanczos_is_exact_on_its_krylov_subspace():
    """m < n steps: Q orthonormal, Q^T L Q = T tridiagonal, and on vectors of span(Q) the layer's V h(R) V^T
    equals Q h(T) Q^T from numpy's eigh of T; a polynomial of degree < m is exact on the start vector."""
    rng = np.random.default_rng(7)
    n, m = 12, 5
    a, x = distinct_spectrum_graphs(2, n, seed=7), rng.normal(size=(2, n, 3))
    lap = normalized_laplacian(torch.from_numpy(a))
    start = lanczos_start(torch.from_numpy(x))
    q, t, used = lanczos(lap, start, m)
    q, t = q.numpy(), t.numpy()
    assert q.shape == (2, n, m) and t.shape == (2, m, m) and used.all()
    coefficients = rng.normal(size=6)
    layer = spectral_only(LanczosConv(m, m, steps=m).double(), coefficients)
    for g in range(2):
        np.testing.assert_allclose(q[g].T @ q[g], np.eye(m), atol=1e-12)
        np.testing.assert_allclose(q[g].T @ lap[g].numpy() @ q[g], t[g], atol=1e-12)
        assert np.abs(np.triu(t[g], 2)).max() < 1e-12  # tridiagonal
    # Vectors in the Krylov space: node features X = Q C.
    c = rng.normal(size=(2, m, m))
    xs = q @ c
    graph = layer.prepare(torch.from_numpy(a), torch.from_numpy(x))  # the same start vector (from x)
    got = layer(torch.from_numpy(xs), graph).detach().numpy()
    for g in range(2):
        ritz, b = np.linalg.eigh(t[g])
        h = response_basis(torch.from_numpy(ritz), "bspline", 6).numpy() @ coefficients
        np.testing.assert_allclose(got[g], q[g] @ b @ np.diag(h) @ b.T @ q[g].T @ xs[g], atol=1e-10)
    # p(L) q_1 = Q p(T) e_1 for deg p < m: a poly response of m terms reproduces the exact h(L) q_1; one of
    # m + 1 terms (degree m) does not, so the check discriminates.
    q1 = start / start.norm(dim=-1, keepdim=True)
    for terms, exact in [(m, True), (m + 1, False)]:
        poly = spectral_only(LanczosConv(1, 1, steps=m, basis="poly", knots=terms).double(), rng.normal(size=terms))
        response = poly.response.detach()
        got = poly(q1[..., None], poly.prepare(torch.from_numpy(a), torch.from_numpy(x)))[..., 0].detach().numpy()
        for g in range(2):
            expected = spectral_reference(
                a[g],
                q1[g, :, None].numpy(),
                lambda lam, terms=terms, response=response: (
                    response_basis(torch.from_numpy(lam), "poly", terms) @ response
                ).numpy(),
            )[:, 0]
            assert np.allclose(got[g], expected, atol=1e-10) == exact


def test_lanczos_breakdown_is_per_graph_and_finite():
    """An edgeless graph (L = I) stops after 1 step, a complete one after 2; the others go on; no NaNs."""
    rng = np.random.default_rng(8)
    n = 6
    a = np.stack([np.zeros((n, n)), np.ones((n, n)) - np.eye(n), distinct_spectrum_graphs(1, n, seed=8)[0]])
    x = rng.normal(size=(3, n, 4))
    lap = normalized_laplacian(torch.from_numpy(a))
    q, t, used = lanczos(lap, lanczos_start(torch.from_numpy(x)), n)
    assert used.sum(dim=-1).tolist() == [1, 2, n]
    assert torch.isfinite(q).all() and torch.isfinite(t).all()
    assert (q[0, :, 1:] == 0).all() and (q[1, :, 2:] == 0).all()
    layer = LanczosConv(4, 3, steps=n).double()
    out = layer(torch.from_numpy(x), torch.from_numpy(a))
    assert torch.isfinite(out).all()
    # The Krylov space of the complete graph is invariant, so the filter is exact on it for any response.
    layer = spectral_only(LanczosConv(1, 1, steps=n).double(), rng.normal(size=6))
    q1 = q[1, :, :1]
    got = layer(q1[None], layer.prepare(torch.from_numpy(a[1:2]), torch.from_numpy(x[1:2])))[0].detach().numpy()
    coefficients = layer.response.detach()
    expected = spectral_reference(
        a[1], q1.numpy(), lambda lam: (response_basis(torch.from_numpy(lam), "bspline", 6) @ coefficients).numpy()
    )
    np.testing.assert_allclose(got, expected, atol=1e-10)


def test_lanczos_start_vector():
    """q_i = 1 + r_i / max r: equivariant, in [1, 2]; identical features give the constant vector."""
    x = torch.tensor([[[0.0, 0.0], [2.0, 0.0], [1.0, 0.0], [1.0, 3.0]]], dtype=torch.float64)
    r = (x[0] - x[0].mean(dim=0)).norm(dim=-1)
    np.testing.assert_allclose(lanczos_start(x)[0].numpy(), (1 + r / r.max()).numpy(), atol=1e-12)
    same = torch.tensor([0.3, -1.2, 2.0]).repeat(1, 5, 1)
    np.testing.assert_array_equal(lanczos_start(same).numpy(), np.ones((1, 5)))


# --- Fourier ------------------------------------------------------------------------------------------------


def test_fourier_equals_numpy_eigenbasis_filter():
    """U diag(theta) U^T X W with eigenvalues ascending, on graphs with distinct eigenvalues."""
    rng = np.random.default_rng(9)
    a, x = distinct_spectrum_graphs(3, 7, seed=9), rng.normal(size=(3, 7, 4))
    layer = FourierConv(4, 3, 7).double()
    theta = rng.normal(size=7)
    with torch.no_grad():
        layer.response.copy_(torch.from_numpy(theta))
    w = layer.weight.detach().numpy()
    got = layer(torch.from_numpy(x), torch.from_numpy(a)).detach().numpy()
    for g in range(3):
        _, u = np.linalg.eigh(dense_laplacian(a[g]))
        np.testing.assert_allclose(got[g], u @ np.diag(theta) @ u.T @ x[g] @ w, atol=1e-10)


def test_fourier_averages_theta_over_repeated_eigenvalues():
    """A star with isolated nodes has eigenvalue 1 many times: theta is averaged over that group, so the output
    is the same for any eigenbasis (permuting the nodes permutes the output) and equals the averaged reference."""
    n = 8
    a = np.zeros((n, n))
    a[:5, :5] = star(5)  # eigenvalues 0, 1, 1, 1, 2, and 1 for each of the 3 isolated nodes
    rng = np.random.default_rng(10)
    x, theta = rng.normal(size=(1, n, 3)), rng.normal(size=n)
    layer = FourierConv(3, 3, n).double()
    with torch.no_grad():
        layer.weight.copy_(torch.eye(3))
        layer.response.copy_(torch.from_numpy(theta))
    lam, u = np.linalg.eigh(dense_laplacian(a))
    groups = np.round(lam, 6)
    averaged = np.array([theta[groups == value].mean() for value in groups])
    assert len(set(groups)) == 3
    got = layer(torch.from_numpy(x), torch.from_numpy(a[None]))[0].detach().numpy()
    np.testing.assert_allclose(got, u @ np.diag(averaged) @ u.T @ x[0], atol=1e-10)
    perm = rng.permutation(n)
    permuted = layer(torch.from_numpy(x[:, perm]), torch.from_numpy(a[perm][:, perm][None]))[0].detach().numpy()
    np.testing.assert_allclose(permuted, got[perm], atol=1e-10)


def test_tie_average_groups():
    """Numerically equal neighbours in sorted order share one mean; distinct ones keep their own."""
    lam = torch.tensor([[0.0, 0.5, 0.5 + 1e-12, 0.5 + 2e-12, 1.5]], dtype=torch.float64)
    s = tie_average(lam)[0].numpy()
    expected = np.zeros((5, 5))
    expected[0, 0] = expected[4, 4] = 1.0
    expected[1:4, 1:4] = 1 / 3
    np.testing.assert_allclose(s, expected, atol=1e-15)


def test_fourier_refuses_other_graph_sizes():
    """theta has one entry per eigenvalue of an M-node graph: any other size is a one-line error naming the param."""
    layer = FourierConv(3, 2, 6)
    with pytest.raises(GraphhashError, match=r"^graph\.nodes: .* 6 nodes .* 4$"):
        layer(torch.randn(1, 4, 3), torch.zeros(1, 4, 4))
    graph = layer.prepare(torch.zeros(1, 6, 6), torch.randn(1, 6, 3))
    with pytest.raises(GraphhashError, match=r"^graph\.nodes: "):
        layer(torch.randn(1, 5, 3), graph)


# --- every filter -------------------------------------------------------------------------------------------

KINDS: dict[str, tuple[str, dict[str, Any]]] = {  # label: (filter name, its hyperparameters)
    "gcn": ("gcn", {"p": 0.8}),
    "gcn-kipf": ("gcn", {"propagation": "kipf"}),
    "none": ("none", {}),
    "cheby": ("cheby", {"order": 3}),
    "lanczos": ("lanczos", {"steps": 4}),
    "lanczos-poly": ("lanczos", {"steps": 3, "basis": "poly", "knots": 3}),
    "spline": ("spline", {}),
    "spline-poly": ("spline", {"basis": "poly", "knots": 4}),
    "fourier": ("fourier", {}),
}


def make_layer(kind: str, in_dim: int, out_dim: int, nodes: int) -> torch.nn.Module:
    name, options = KINDS[kind]
    return build_filter(name, in_dim, out_dim, nodes, options).double()


def random_batch(seed: int, graphs: int = 3, nodes: int = 7, dim: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and their Eq. 3 graphs (rho 0.2: about a third of the pairs linked), float64."""
    x = torch.from_numpy(np.random.default_rng(seed).normal(size=(graphs, nodes, dim)))
    return x, adjacency(x, 0.2)


def isolated_node_batch(seed: int, nodes: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One graph with linked nodes and node 2 isolated (so U' has both p and 1 on its diagonal), float64."""
    rng = np.random.default_rng(seed)
    a = random_adjacency(rng, nodes)
    a[2, :] = a[:, 2] = 0.0
    assert (a.sum(axis=1) > 0).sum() == nodes - 1
    return torch.from_numpy(rng.normal(size=(1, nodes, dim))), torch.from_numpy(a[None])


def test_build_filter_selects_class_and_hyperparameters():
    """The registry maps each name to its layer; build_filter passes the hyperparameters (and the graph size to
    the one filter defined on a single size), which show in what the layer computes."""
    expected = {"gcn": GCNConv, "none": NoGraph, "cheby": ChebConv, "lanczos": LanczosConv, "spline": SplineConv,
                "fourier": FourierConv}  # fmt: skip
    assert expected == FILTERS
    for name, cls in expected.items():
        layer = build_filter(name, 4, 3, 9, {})
        assert type(layer) is cls and (layer.in_dim, layer.out_dim) == (4, 3)
    x, a = isolated_node_batch(21, nodes=9, dim=4)
    linked = a[0].sum(dim=-1) > 0
    operator = build_filter("gcn", 4, 3, 9, {"p": 0.6}).prepare(a, x).operator[0]
    np.testing.assert_allclose(operator.diagonal().numpy(), np.where(linked.numpy(), 0.6, 1.0), atol=1e-12)
    kipf = build_filter("gcn", 4, 3, 9, {"propagation": "kipf"}).prepare(a, x).operator
    torch.testing.assert_close(kipf, kipf_propagation(a))
    fourier = build_filter("fourier", 4, 3, 9, {})
    assert fourier.response.shape == (9,)
    with pytest.raises(GraphhashError, match=r"^graph\.nodes: "):
        fourier(x[:, :8], a[:, :8, :8])
    assert build_filter("cheby", 4, 3, 9, {"order": 5}).weight.shape == (5, 4, 3)
    spline = build_filter("spline", 4, 3, 9, {"basis": "poly", "knots": 7})
    assert spline.response.shape == (7,)
    lam = torch.linspace(0.0, 2.0, 11, dtype=torch.float64)  # the poly basis of 7 terms, started at 1 - lambda / 2
    h = response_basis(lam, "poly", 7) @ spline.response.detach().double()
    np.testing.assert_allclose(h.numpy(), 1 - lam.numpy() / 2, atol=1e-6)
    lanczos_layer = build_filter("lanczos", 4, 3, 9, {"steps": 2, "knots": 5})
    assert lanczos_layer.response.shape == (5,) and lanczos_layer.weight.shape == (3, 4, 3)


def test_default_hyperparameters():
    """gcn: NRDH's propagation with p = 0.3; cheby: order 3; lanczos: 6 steps; spline and lanczos: 6 B-splines."""
    x, a = isolated_node_batch(22, nodes=8, dim=4)
    linked = a[0].sum(dim=-1) > 0
    operator = GCNConv(4, 3).double().prepare(a, x).operator[0]
    np.testing.assert_allclose(operator.diagonal().numpy(), np.where(linked.numpy(), 0.3, 1.0), atol=1e-12)
    assert ChebConv(4, 3).weight.shape == (3, 4, 3)
    assert LanczosConv(4, 3).hyperparameters == {"steps": 6, "basis": "bspline", "knots": 6}
    assert SplineConv(4, 3).hyperparameters == {"basis": "bspline", "knots": 6}


@pytest.mark.parametrize(
    ("cls", "args", "options"),
    [
        (GCNConv, (), {"p": True}),  # a bool is not a number
        (GCNConv, (), {"p": 1.5}),
        (GCNConv, (), {"p": -0.1}),
        (GCNConv, (), {"propagation": "sym"}),
        (ChebConv, (), {"order": True}),
        (ChebConv, (), {"order": 0}),
        (ChebConv, (), {"order": 2.0}),
        (ChebConv, (), {"order": 101}),
        (LanczosConv, (), {"steps": False}),
        (LanczosConv, (), {"steps": 0}),
        (LanczosConv, (), {"basis": "fourier"}),
        (SplineConv, (), {"knots": True}),
        (SplineConv, (), {"knots": 0}),
        (SplineConv, (), {"basis": "fourier"}),
        (FourierConv, (True,), {}),
        (FourierConv, (1,), {}),
        (NoGraph, (), {"p": 0.5}),  # no hyperparameters at all
    ],
)
def test_bad_hyperparameters_are_refused_at_construction(cls, args, options):
    """Types are strict and ranges enforced when the layer is built, before any graph is seen."""
    with pytest.raises(ValidationError):
        cls(4, 3, *args, **options)


@pytest.mark.parametrize("cls", [SplineConv, LanczosConv])
def test_cubic_bsplines_need_four_knots(cls):
    """The rule across basis and knots: bspline with 3 knots is a HyperparameterError naming knots; poly with 3
    and bspline with 4 are fine."""
    with pytest.raises(HyperparameterError) as info:
        cls(4, 3, basis="bspline", knots=3)
    assert info.value.key == "knots" and isinstance(info.value, ValueError)
    assert "4" in info.value.message
    assert cls(4, 3, basis="poly", knots=3).response.shape == (3,)
    assert cls(4, 3, basis="bspline", knots=4).response.shape == (4,)


def test_hyperparameters_are_keyword_only():
    """A hyperparameter passed by position is refused rather than taken for another one."""
    with pytest.raises(ValidationError):
        ChebConv(4, 3, 2)
    with pytest.raises(ValidationError):
        SplineConv(4, 3, "poly", 7)


SHAPES = [(4, 3), (1, 1), (37, 5)]  # (in_dim, out_dim) of the layers whose initialisation is checked


def reference_initialisation(name: str, hyperparameters: dict[str, Any], in_dim: int, out_dim: int, nodes: int):
    """The parameters a filter has always started from, drawn here as the layers drew them: the weight
    Glorot-uniform from torch's global RNG (xavier_uniform_ on (in, out); on (K, in, out), cheby's K = order and
    lanczos' 3 terms, uniform with the bound scaled by 1/sqrt(K)), then the response, which draws nothing."""
    terms = {"cheby": hyperparameters.get("order"), "lanczos": 3}.get(name)
    if terms is None:
        weight = torch.empty(in_dim, out_dim)
        torch.nn.init.xavier_uniform_(weight)
    else:
        bound = math.sqrt(6.0 / (in_dim + out_dim) / terms)
        weight = torch.empty(terms, in_dim, out_dim).uniform_(-bound, bound)
    expected = {"weight": weight}
    if name in ("spline", "lanczos"):
        expected["response"] = initial_response(hyperparameters["basis"], hyperparameters["knots"])
    elif name == "fourier":
        expected["response"] = torch.linspace(1.0, 0.0, nodes)
    return expected


def test_every_filter_has_an_initialisation_case():
    """KINDS, which the initialisation and repr tests run over, covers every registered filter."""
    assert {name for name, _ in KINDS.values()} == set(FILTERS)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", list(KINDS))
def test_seeded_construction_gives_the_reference_initialisation(kind, shape):
    """After torch.manual_seed, a new layer's parameters are bit for bit the reference draws, and the global RNG
    is left where the reference leaves it (the same number and order of draws: the autoencoder builds six
    layers from one seed)."""
    name, options = KINDS[kind]
    torch.manual_seed(31)
    layer = build_filter(name, *shape, 7, options)
    state = torch.get_rng_state()
    torch.manual_seed(31)
    expected = reference_initialisation(name, layer.hyperparameters, *shape, 7)
    assert torch.equal(state, torch.get_rng_state())
    got = dict(layer.named_parameters())
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key].dtype == value.dtype and torch.equal(got[key], value), key


@pytest.mark.parametrize("kind", list(KINDS))
def test_reset_parameters_restores_the_initialisation_in_place(kind):
    """After training-like in-place changes, reset_parameters under the construction's seed gives back the
    initial values, in the same tensors (an optimiser holding them keeps them) and with the same draws; without
    reseeding it draws a new weight and sets the response to its initial value again."""
    name, options = KINDS[kind]
    torch.manual_seed(32)
    layer = build_filter(name, 5, 4, 7, options)
    state = torch.get_rng_state()
    initial = {key: value.detach().clone() for key, value in layer.named_parameters()}
    tensors = dict(layer.named_parameters())
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.add_(1.0)
    assert not any(torch.equal(value, initial[key]) for key, value in layer.named_parameters())
    torch.manual_seed(32)
    layer.reset_parameters()
    assert torch.equal(state, torch.get_rng_state())
    for key, value in layer.named_parameters():
        assert value is tensors[key] and torch.equal(value, initial[key]), key
    layer.reset_parameters()  # the RNG has moved on: a fresh weight, the same response
    assert not torch.equal(layer.weight, initial["weight"])
    if "response" in initial:
        assert torch.equal(layer.response, initial["response"])


REPRS = {  # repr of make_layer(kind, 5, 4, 7)
    "gcn": "GCNConv(5, 4, propagation='nrdh', p=0.8)",
    "gcn-kipf": "GCNConv(5, 4, propagation='kipf', p=0.3)",
    "none": "NoGraph(5, 4)",
    "cheby": "ChebConv(5, 4, order=3)",
    "lanczos": "LanczosConv(5, 4, steps=4, basis='bspline', knots=6)",
    "lanczos-poly": "LanczosConv(5, 4, steps=3, basis='poly', knots=3)",
    "spline": "SplineConv(5, 4, basis='bspline', knots=6)",
    "spline-poly": "SplineConv(5, 4, basis='poly', knots=4)",
    "fourier": "FourierConv(5, 4, nodes=7)",
}


def test_repr_shows_class_dims_and_hyperparameters():
    """PyTorch Geometric's style: class name, in and out dims, then each hyperparameter as key=value; the
    autoencoder's repr lists its layers so."""
    assert repr(GCNConv(64, 32)) == "GCNConv(64, 32, propagation='nrdh', p=0.3)"
    assert repr(ChebConv(1280, 64)) == "ChebConv(1280, 64, order=3)"
    assert repr(FourierConv(64, 64, 10)) == "FourierConv(64, 64, nodes=10)"
    assert REPRS.keys() == KINDS.keys()
    for kind, expected in REPRS.items():
        assert repr(make_layer(kind, 5, 4, 7)) == expected
    assert "(0): ChebConv(1280, 64, order=3)" in repr(torch.nn.ModuleList([ChebConv(1280, 64)]))


def test_graph_slices_every_field():
    """Graph[i:j] selects the same graphs of every tensor and keeps the unused fields None."""
    x, a = random_batch(11)
    graph = LanczosConv(5, 2, steps=3).double().prepare(a, x)
    part = graph[1:3]
    assert torch.equal(part.operator, graph.operator[1:3]) and torch.equal(part.spectral, graph.spectral[1:3])
    assert Graph()[0:1] == Graph()


@pytest.mark.parametrize("kind", list(KINDS))
def test_prepared_graph_serves_layers_of_every_width(kind):
    """The per-batch preparation depends on the graph and the hyperparameters only: layers of other widths (all
    six of an autoencoder) prepare the same Graph, and each gives with it what it gives preparing on the fly."""
    x, a = random_batch(20)
    first, other = make_layer(kind, 5, 4, 7), make_layer(kind, 5, 2, 7)
    got, expected = first.prepare(a, x), other.prepare(a, x)
    for name in ("operator", "spectral"):
        left, right = getattr(got, name), getattr(expected, name)
        assert (left is None and right is None) or torch.equal(left, right), name
    assert torch.equal(other(x, got), other(x, a))


@pytest.mark.parametrize("kind", list(KINDS))
def test_filter_is_permutation_equivariant(kind):
    """Permuting the nodes of A and X permutes the output rows the same way."""
    x, a = random_batch(12)
    layer = make_layer(kind, 5, 4, 7)
    perm = torch.from_numpy(np.random.default_rng(13).permutation(7))
    got = layer(x, a)
    permuted = layer(x[:, perm], a[:, perm][:, :, perm])
    torch.testing.assert_close(permuted, got[:, perm], rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("kind", list(KINDS))
def test_filter_gradients_reach_every_parameter(kind):
    """Every learnable parameter gets a finite gradient with no zero entry."""
    x, a = random_batch(14)
    layer = make_layer(kind, 5, 4, 7)
    (layer(x, a) ** 2).sum().backward()
    for name, parameter in layer.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all() and (parameter.grad != 0).all(), name


@pytest.mark.parametrize("kind", list(KINDS))
def test_filter_is_deterministic(kind):
    """The same input twice gives bit-identical outputs (no random draws at call time)."""
    x, a = random_batch(15)
    layer = make_layer(kind, 5, 4, 7)
    assert torch.equal(layer(x, a), layer(x, a))
    assert torch.equal(layer(x, layer.prepare(a, x)), layer(x, a))


@pytest.mark.parametrize("kind", list(KINDS))
def test_filter_batched_equals_per_graph(kind):
    """G graphs in one call give each graph's output alone."""
    x, a = random_batch(16, graphs=4)
    layer = make_layer(kind, 5, 4, 7)
    batched = layer(x, a)
    for g in range(4):
        torch.testing.assert_close(batched[g : g + 1], layer(x[g : g + 1], a[g : g + 1]), rtol=1e-9, atol=1e-10)


def degenerate_graphs(nodes: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(features, adjacency) of one graph each: no edges, identical features (complete graph), zero
    features, a star with isolated nodes, and the complete graph with identical features but no links."""
    rng = np.random.default_rng(17)
    same = torch.from_numpy(np.tile(rng.normal(size=3), (nodes, 1)))[None]
    star_isolated = np.zeros((nodes, nodes))
    star_isolated[: max(nodes - 2, 1), : max(nodes - 2, 1)] = star(max(nodes - 2, 1))
    random_x = torch.from_numpy(rng.normal(size=(1, nodes, 3)))
    return [
        (random_x, torch.zeros(1, nodes, nodes, dtype=torch.float64)),
        (same, adjacency(same, 0.5)),
        (torch.zeros(1, nodes, 3, dtype=torch.float64), adjacency(torch.zeros(1, nodes, 3, dtype=torch.float64), 0.0)),
        (random_x, torch.from_numpy(star_isolated)[None]),
        (same, torch.zeros(1, nodes, nodes, dtype=torch.float64)),
    ]


@pytest.mark.parametrize("nodes", [1, 2, 3, 6])
@pytest.mark.parametrize("kind", list(KINDS))
def test_filter_output_finite_on_degenerate_graphs(kind, nodes):
    """Isolated nodes, identical or zero features, complete graphs, and graphs of 1-3 nodes (fewer than the
    Chebyshev order or the Lanczos steps): finite outputs and gradients."""
    if kind == "fourier" and nodes == 1:  # one eigenvalue is no graph filter: refused when built
        with pytest.raises(ValidationError):
            make_layer(kind, 3, 2, nodes)
        return
    layer = make_layer(kind, 3, 2, nodes)
    for x, a in degenerate_graphs(nodes):
        out = layer(x, a)
        assert out.shape == (1, nodes, 2)
        assert torch.isfinite(out).all()
        out.sum().backward()
        assert all(torch.isfinite(p.grad).all() for p in layer.parameters())


@pytest.mark.parametrize("kind", list(KINDS))
def test_filter_runs_in_float32_like_float64(kind):
    """Float32 inputs give float32 outputs close to the float64 computation."""
    x, a = random_batch(18)
    layer = make_layer(kind, 5, 4, 7)
    expected = layer(x, a)
    got = layer.float()(x.float(), a.float())
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("kind", list(KINDS))
def test_filter_on_cuda_matches_cpu(kind):
    """On a GPU the graph is prepared on the inputs' device and the output matches the CPU's."""
    x, a = random_batch(19)
    layer = make_layer(kind, 5, 4, 7)
    expected = layer(x, a)
    got = layer.cuda()(x.cuda(), a.cuda())
    assert got.device.type == "cuda"
    torch.testing.assert_close(got.cpu(), expected, rtol=1e-8, atol=1e-9)
