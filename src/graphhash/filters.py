"""Spectral graph filters for the graph autoencoder: NRDH's GCN and the filters HAGCN compares with it.

Each filter is a layer X (G, M, in) -> X' (G, M, out) on G graphs of M nodes, built from the binary batch
graph A (Eq. 3, ``graph.adjacency``) through its normalised Laplacian L = I - D^-1/2 A D^-1/2 = U Lambda U^T,
whose spectrum lies in [0, 2]:

    gcn       X' = P X W                       P = U' (Eq. 4, NRDH) or D~^-1/2 (A + I) D~^-1/2 (Kipf, Welling)
    none      X' = X W                         no graph: the "without GCN" arm of NRDH's Table 7
    cheby     X' = sum_{k<K} T_k(L~) X Theta_k      L~ = 2 L / lambda_max - I      (Defferrard et al. 2016)
    spline    X' = U h(Lambda) U^T X W         h = sum_b c_b phi_b, B-splines or polynomials (HAGCN's "Poly")
    fourier   X' = U diag(theta) U^T X W       one theta per eigenvalue index     (Bruna et al. 2014)
    lanczos   X' = X W_0 + L X W_1 + V h(R) V^T X W_2    m Ritz pairs (R, V) of L   (Liao et al. 2019)

with T_k the Chebyshev polynomials (T_0 = 1, T_1 = x, T_k = 2 x T_{k-1} - T_{k-2}) and h one learnable
response per layer, shared by ``spline`` and ``lanczos`` (``response_basis``).

A layer's graph-side work (P, L~, the eigendecomposition, the Lanczos basis, the response's basis functions
at the eigenvalues) depends only on A, the graphs' input features and the layer's hyperparameters, never on
its weights. ``layer.prepare(adjacency, features)`` does it once for a batch of graphs and returns a
``Graph``, which all layers of a network with the same filter, and all optimiser steps on those graphs,
reuse: ``layer(x, graph)``. ``layer(x, adjacency)`` prepares on the fly, with ``x`` as the features.
Everything runs batched over the G graphs, on the inputs' device and dtype, and draws no random numbers.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from types import SimpleNamespace

import torch
from torch import nn

from graphhash.errors import GraphhashError
from graphhash.graph import adjacency, kipf_propagation, normalized_laplacian, reweighted_propagation

FILTERS = ("gcn", "cheby", "lanczos", "spline", "fourier", "none")
BASES = ("bspline", "poly")

# Used when ``represent`` params leave a filter's hyperparameter out (params written before the filters existed).
DEFAULTS = {"gcn_propagation": "nrdh", "cheby_order": 3, "lanczos_steps": 6, "spectral_basis": "bspline",
            "spectral_knots": 6}  # fmt: skip


@dataclass(frozen=True)
class Graph:
    """What a layer needs of a batch of G graphs of M nodes, computed once by ``prepare``; unused fields are None.

    - ``operator`` (G, M, M): the matrix multiplying node features: P (gcn), L~ (cheby), L (lanczos).
    - ``spectral`` (G, M, M, B): a spectral filter is linear in the layer's B response coefficients c,
      U diag(Phi c) U^T = sum_b c_b U diag(Phi_b) U^T, so the B matrices U diag(Phi_b) U^T are computed
      once per batch (``spectral_operators``) and a forward pass only mixes them: one small product instead
      of a round trip through the eigenbasis. U: the eigenvectors of L (spline, fourier) or the Ritz vectors
      V (lanczos); Phi: the response's basis functions at the eigenvalues (spline, lanczos) or the tie
      averaging (fourier).
    """

    operator: torch.Tensor | None = None
    spectral: torch.Tensor | None = None

    def __getitem__(self, index: slice) -> Graph:
        """The graphs ``index`` selects, e.g. those of one optimiser step."""
        return Graph(**{f.name: _select(getattr(self, f.name), index) for f in dataclasses.fields(self)})


def _select(tensor: torch.Tensor | None, index: slice) -> torch.Tensor | None:
    return None if tensor is None else tensor[index]


class GraphFilter(nn.Module):
    """A filter layer: ``forward(x, graph)`` with a prepared ``Graph`` or, for convenience, the adjacency.

    ``graph`` (a static method: no weights) does the per-batch preparation from the adjacency (G, M, M), the
    input features (G, M, D) and the hyperparameters the layer was built with, its ``hyperparameters``.
    """

    fixed_nodes: int | None = None  # the one graph size a filter is defined on, if any

    def __init__(self, in_dim: int, out_dim: int, **hyperparameters):
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.hyperparameters = hyperparameters

    @staticmethod
    def graph(adjacency: torch.Tensor, features: torch.Tensor, **hyperparameters) -> Graph:
        raise NotImplementedError

    def prepare(self, adjacency: torch.Tensor, features: torch.Tensor) -> Graph:
        """The weight-free, per-batch part for this layer's hyperparameters: ``Graph`` for all layers alike."""
        return self.graph(adjacency, features, **self.hyperparameters)

    def propagate(self, x: torch.Tensor, graph: Graph) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, graph: Graph | torch.Tensor) -> torch.Tensor:
        if isinstance(graph, torch.Tensor):
            graph = self.prepare(graph, x)
        return self.propagate(x, graph)


def _xavier(in_dim: int, out_dim: int, terms: int | None = None) -> nn.Parameter:
    """Glorot-uniform weights: (in, out), or (terms, in, out) with the bound scaled by 1/sqrt(terms).

    A layer summing several filtered copies of X, each through its own matrix, so keeps the output scale of
    a single Glorot-initialised matrix.
    """
    if terms is None:
        weight = torch.empty(in_dim, out_dim)
        nn.init.xavier_uniform_(weight)  # the draws NRDH's GCN always made, so its training is unchanged
        return nn.Parameter(weight)
    bound = math.sqrt(6.0 / (in_dim + out_dim) / terms)
    return nn.Parameter(torch.empty(terms, in_dim, out_dim).uniform_(-bound, bound))


class GCNConv(GraphFilter):
    """First-order propagation X' = P X W (NRDH's Eq. 5 before its activation).

    ``propagation``: ``nrdh`` (U' of Eq. 4, with ``p``), ``kipf`` (D~^-1/2 (A + I) D~^-1/2) or ``identity``
    (P = I, no graph: X' = X W).
    """

    def __init__(self, in_dim: int, out_dim: int, propagation: str = "nrdh", p: float = 0.8):
        super().__init__(in_dim, out_dim, propagation=propagation, p=p)
        if propagation not in ("nrdh", "kipf", "identity"):
            raise ValueError(f"unknown propagation {propagation!r}")
        self.propagation, self.p = propagation, p
        self.weight = _xavier(in_dim, out_dim)

    @staticmethod
    @torch.no_grad()
    def graph(adjacency: torch.Tensor, features: torch.Tensor, propagation: str = "nrdh", p: float = 0.8) -> Graph:
        if propagation == "nrdh":
            return Graph(operator=reweighted_propagation(adjacency, p))
        if propagation == "kipf":
            return Graph(operator=kipf_propagation(adjacency))
        return Graph()

    def propagate(self, x: torch.Tensor, graph: Graph) -> torch.Tensor:
        y = x @ self.weight
        return y if graph.operator is None else graph.operator @ y


class ChebConv(GraphFilter):
    """ChebNet: X' = sum_{k=0}^{K-1} T_k(L~) X Theta_k, with L~ = 2 L / lambda_max - I and K = ``order`` terms.

    lambda_max = 2, the bound of the normalised Laplacian's spectrum, rather than each graph's largest
    eigenvalue: no eigenvalue problem per batch, the same L~ = L - I for every graph, and its spectrum still
    lies in [-1, 1], where |T_k| <= 1. T_k(L~) X follows the recurrence T_k = 2 L~ T_{k-1} - T_{k-2}; a
    polynomial of degree K - 1 in L, so each node sees its (K - 1)-hop neighbourhood.
    """

    def __init__(self, in_dim: int, out_dim: int, order: int = 3):
        super().__init__(in_dim, out_dim, order=order)
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        self.order = order
        self.weight = _xavier(in_dim, out_dim, order)  # (K, in, out): Theta_0 ... Theta_{K-1}

    @staticmethod
    @torch.no_grad()
    def graph(adjacency: torch.Tensor, features: torch.Tensor, order: int = 3) -> Graph:  # the same for any K
        laplacian = normalized_laplacian(adjacency)
        eye = torch.eye(laplacian.shape[-1], dtype=laplacian.dtype, device=laplacian.device)
        return Graph(operator=laplacian - eye)  # 2 L / lambda_max - I with lambda_max = 2

    def propagate(self, x: torch.Tensor, graph: Graph) -> torch.Tensor:
        scaled = graph.operator
        terms = [x]  # T_k(L~) X, (G, M, in) each
        for k in range(1, self.order):
            terms.append(scaled @ x if k == 1 else 2.0 * (scaled @ terms[-1]) - terms[-2])
        return torch.cat(terms, dim=-1) @ self.weight.reshape(-1, self.out_dim)  # sum_k T_k(L~) X Theta_k


def response_basis(eigenvalues: torch.Tensor, kind: str, count: int) -> torch.Tensor:
    """The basis functions phi_b of a spectral response at each eigenvalue: (..., k) -> (..., k, count).

    - ``poly``: Chebyshev polynomials T_b(lambda - 1), b < ``count``: a polynomial response of degree count - 1,
      in the basis that maps [0, 2] onto [-1, 1] where every T_b is bounded by 1 (monomials lambda^b are
      ill-conditioned: they grow as 2^b and look alike near 2).
    - ``bspline``: ``count`` >= 4 cubic B-splines on uniform knots of spacing s = 2 / (count - 3), centred at
      c_b = (b - 1) s, so that on [0, 2] they sum to 1 (partition of unity) and reproduce linear functions.

    Eigenvalues are clamped to [0, 2], the Laplacian's spectrum, against rounding.
    """
    lam = eigenvalues.clamp(0.0, 2.0)
    if kind == "poly":
        x = lam - 1.0
        values = [torch.ones_like(x), x][:count]
        while len(values) < count:
            values.append(2.0 * x * values[-1] - values[-2])
        return torch.stack(values, dim=-1)
    if kind == "bspline":
        spacing = 2.0 / (count - 3)
        centres = (torch.arange(count, dtype=lam.dtype, device=lam.device) - 1.0) * spacing
        s = ((lam[..., None] - centres) / spacing).abs()  # distance from each centre, in knot spacings
        inner = (4.0 - 6.0 * s**2 + 3.0 * s**3) / 6.0  # the cardinal cubic B-spline on |s| < 1 ...
        outer = (2.0 - s).clamp_min(0.0) ** 3 / 6.0  # ... and on 1 <= |s| < 2; zero beyond
        return torch.where(s < 1.0, inner, outer)
    raise ValueError(f"unknown spectral basis {kind!r}")


def initial_response(kind: str, count: int) -> torch.Tensor:
    """Coefficients giving the low-pass response h(lambda) = 1 - lambda / 2 (that of (I + D^-1/2 A D^-1/2) / 2)."""
    if kind == "poly":
        coefficients = torch.zeros(count)
        coefficients[0] = 0.5  # 1 - lambda/2 = T_0 / 2 - T_1(lambda - 1) / 2
        if count > 1:
            coefficients[1] = -0.5
        return coefficients
    centres = (torch.arange(count, dtype=torch.float32) - 1.0) * (2.0 / (count - 3))
    return 1.0 - centres / 2.0  # cubic B-splines reproduce a linear function from its values at the centres


def spectral_operators(basis: torch.Tensor, response: torch.Tensor) -> torch.Tensor:
    """basis diag(response[..., b]) basis^T for each b: basis (G, M, k), response (G, k, B) -> (G, M, M, B)."""
    return torch.einsum("gik,gkb,gjk->gijb", basis, response, basis)


def spectral_filter(y: torch.Tensor, spectral: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
    """U diag(Phi c) U^T y from the prepared operators: y (G, M, F), spectral (G, M, M, B), c (B,) -> (G, M, F)."""
    return (spectral @ coefficients) @ y


class SplineConv(GraphFilter):
    """A learnable spectral response through the exact eigendecomposition: X' = U h(Lambda) U^T X W.

    h(lambda) = sum_b c_b phi_b(lambda) over [0, 2], with ``knots`` basis functions phi_b of kind ``basis``
    (``response_basis``) and coefficients c initialised to the low-pass 1 - lambda / 2. A function of the
    eigenvalues, so U h(Lambda) U^T does not depend on which eigenbasis eigh returns for a repeated eigenvalue.
    """

    def __init__(self, in_dim: int, out_dim: int, basis: str = "bspline", knots: int = 6):
        super().__init__(in_dim, out_dim, basis=basis, knots=knots)
        _check_basis(basis, knots)
        self.basis, self.knots = basis, knots
        self.weight = _xavier(in_dim, out_dim)
        self.response = nn.Parameter(initial_response(basis, knots))

    @staticmethod
    @torch.no_grad()
    def graph(adjacency: torch.Tensor, features: torch.Tensor, basis: str = "bspline", knots: int = 6) -> Graph:
        eigenvalues, eigenvectors = torch.linalg.eigh(normalized_laplacian(adjacency))
        return Graph(spectral=spectral_operators(eigenvectors, response_basis(eigenvalues, basis, knots)))

    def propagate(self, x: torch.Tensor, graph: Graph) -> torch.Tensor:
        return spectral_filter(x @ self.weight, graph.spectral, self.response)


def _check_basis(basis: str, knots: int) -> None:
    if basis not in BASES:
        raise ValueError(f"unknown spectral basis {basis!r}")
    if knots < (4 if basis == "bspline" else 1):
        raise ValueError(f"{basis} needs at least {4 if basis == 'bspline' else 1} basis functions, got {knots}")


def tie_average(eigenvalues: torch.Tensor) -> torch.Tensor:
    """The (G, M, M) matrix averaging over groups of numerically equal eigenvalues, ascending (G, M).

    Eigenvalues closer than sqrt(eps) of the dtype to their neighbour in sorted order form one group (chained);
    within a group eigh's eigenvectors are an arbitrary basis of the eigenspace, so only the group's mean
    coefficient is well defined.
    """
    tolerance = math.sqrt(torch.finfo(eigenvalues.dtype).eps)
    step = (eigenvalues[..., 1:] - eigenvalues[..., :-1]) > tolerance
    group = torch.cat([step.new_zeros(*step.shape[:-1], 1), step], dim=-1).cumsum(dim=-1)  # (G, M) group ids
    same = (group[..., :, None] == group[..., None, :]).to(eigenvalues.dtype)
    return same / same.sum(dim=-1, keepdim=True)


class FourierConv(GraphFilter):
    """Bruna et al.'s spectral network: X' = U diag(theta) U^T X W, one learnable theta per eigenvalue index.

    Eigenvalues in ascending order; theta has length ``nodes`` = M, so the filter is defined only on graphs of
    exactly M nodes and refuses others. Where eigenvalues repeat, the thetas of the group are averaged
    (``tie_average``): U diag(theta) U^T would otherwise depend on the arbitrary basis eigh picks for the
    eigenspace (and on the node order). theta starts as the low-pass 1, ..., 0, linear in the index.
    """

    def __init__(self, in_dim: int, out_dim: int, nodes: int):
        super().__init__(in_dim, out_dim, nodes=nodes)
        self.fixed_nodes = nodes
        self.weight = _xavier(in_dim, out_dim)
        self.response = nn.Parameter(torch.linspace(1.0, 0.0, nodes))

    @staticmethod
    @torch.no_grad()
    def graph(adjacency: torch.Tensor, features: torch.Tensor, nodes: int) -> Graph:
        _check_nodes(nodes, adjacency.shape[-1])
        eigenvalues, eigenvectors = torch.linalg.eigh(normalized_laplacian(adjacency))
        return Graph(spectral=spectral_operators(eigenvectors, tie_average(eigenvalues)))

    def propagate(self, x: torch.Tensor, graph: Graph) -> torch.Tensor:
        _check_nodes(self.fixed_nodes, x.shape[-2])
        return spectral_filter(x @ self.weight, graph.spectral, self.response)


def _check_nodes(expected: int, nodes: int) -> None:
    if nodes != expected:
        raise GraphhashError(
            f"represent.batch_nodes: the fourier filter has one coefficient per eigenvalue of a graph of "
            f"{expected} nodes and cannot filter a graph of {nodes}"
        )


def lanczos_start(features: torch.Tensor) -> torch.Tensor:
    """The Lanczos start vector of each graph: features (G, M, D) -> (G, M), q_i = 1 + r_i / max_j r_j.

    r_i = ||x_i - mean_j x_j||, the node's distance to its graph's mean feature vector. Deterministic and
    permutation-equivariant (a function of the node's own features and of the graph's feature set), never
    zero, and with distinct features not the constant vector nor D^1/2 1 (the eigenvector of L for 0), so
    the Krylov space generically reaches every eigenvalue. Spreads below sqrt(eps) of the largest feature
    norm count as zero: identical features fall back to the constant vector (their graph is then complete or
    edgeless, whose Krylov spaces have dimension <= 2 from any start).
    """
    spread = (features - features.mean(dim=-2, keepdim=True)).norm(dim=-1)
    top = spread.amax(dim=-1, keepdim=True)
    floor = math.sqrt(torch.finfo(features.dtype).eps) * features.norm(dim=-1).amax(dim=-1, keepdim=True)
    return 1.0 + torch.where(top > floor, spread / top.clamp_min(torch.finfo(features.dtype).tiny), 0.0)


def lanczos(operator: torch.Tensor, start: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``steps`` = m Lanczos steps on symmetric matrices (G, M, M) from start vectors (G, M), batched.

    Returns Q (G, M, m), orthonormal columns spanning the Krylov space {q, L q, ..., L^{m-1} q}; the
    tridiagonal T = Q^T L Q (G, m, m); and ``used`` (G, m), which steps each graph took. Every new vector is
    orthogonalised against all earlier ones, twice (full reorthogonalisation: in floating point the
    three-term recurrence alone loses orthogonality). When beta_j = ||residual|| <= sqrt(eps) the graph's
    Krylov space is exhausted (an invariant subspace: an edgeless or regular graph, say): its later columns of
    Q and rows of T stay zero and its ``used`` False, while the other graphs go on.
    """
    tolerance = math.sqrt(torch.finfo(start.dtype).eps)
    q = start / start.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(start.dtype).tiny)
    active = torch.ones(start.shape[:-1], dtype=torch.bool, device=start.device)
    columns, alphas, betas, used = [], [], [], []
    for j in range(steps):
        columns.append(q)
        used.append(active)
        w = (operator @ q[..., None]).squeeze(-1)
        alphas.append((q * w).sum(dim=-1))
        if j == steps - 1:
            break
        basis = torch.stack(columns, dim=-1)  # (G, M, j + 1)
        for _ in range(2):  # removes alpha_j q_j, beta_{j-1} q_{j-1} and the rounding along older columns
            w = w - (basis @ (basis.transpose(-1, -2) @ w[..., None])).squeeze(-1)
        beta = w.norm(dim=-1)
        active = active & (beta > tolerance)
        betas.append(torch.where(active, beta, 0.0))
        q = torch.where(active[..., None], w / beta.clamp_min(tolerance)[..., None], 0.0)
    tridiagonal = torch.diag_embed(torch.stack(alphas, dim=-1))
    if betas:
        off = torch.stack(betas, dim=-1)
        tridiagonal = tridiagonal + torch.diag_embed(off, offset=1) + torch.diag_embed(off, offset=-1)
    return torch.stack(columns, dim=-1), tridiagonal, torch.stack(used, dim=-1)


class LanczosConv(GraphFilter):
    """LanczosNet's layer: X' = X W_0 + L X W_1 + V h(R) V^T X W_2.

    Long range: m = min(``steps``, M) Lanczos steps on L from ``lanczos_start`` give Q and T = B R B^T; the
    Ritz values R (G, m) and vectors V = Q B (G, M, m) approximate L's extreme eigenpairs, and the learnable
    response h (the same parameterisation as ``SplineConv``) filters in that basis. With m = M, V h(R) V^T is
    U h(Lambda) U^T exactly. Short range: LanczosNet pairs the spectral term with learnable powers of the
    graph operator; here the first order, X W_0 + L X W_1 (the span of X W_0 + A_norm X W_1, A_norm =
    D^-1/2 A D^-1/2 = I - L), which the truncated basis may miss. W_k start Glorot-scaled by 1/sqrt(3).

    A graph whose Krylov space ran out before m steps gets -1 on the diagonal of T's unused steps, outside
    [0, 2], so eigh keeps their spurious Ritz pairs apart from the real ones; those pairs' vectors V are zero
    (Q's unused columns are) and their response is masked to zero.
    """

    def __init__(self, in_dim: int, out_dim: int, steps: int = 5, basis: str = "bspline", knots: int = 6):
        super().__init__(in_dim, out_dim, steps=steps, basis=basis, knots=knots)
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        _check_basis(basis, knots)
        self.steps, self.basis, self.knots = steps, basis, knots
        self.weight = _xavier(in_dim, out_dim, 3)  # (3, in, out): W_0 (identity), W_1 (L), W_2 (spectral)
        self.response = nn.Parameter(initial_response(basis, knots))

    @staticmethod
    @torch.no_grad()
    def graph(
        adjacency: torch.Tensor, features: torch.Tensor, steps: int = 5, basis: str = "bspline", knots: int = 6
    ) -> Graph:
        laplacian = normalized_laplacian(adjacency)
        q, tridiagonal, used = lanczos(laplacian, lanczos_start(features), min(steps, laplacian.shape[-1]))
        unused = torch.diag_embed((~used).to(tridiagonal.dtype))
        ritz_values, mixing = torch.linalg.eigh(tridiagonal - unused)
        real = (mixing.square() * used[..., None]).sum(dim=-2) > 0.5  # (G, m): a pair of the used steps
        response = response_basis(ritz_values, basis, knots) * real[..., None]
        return Graph(operator=laplacian, spectral=spectral_operators(q @ mixing, response))

    def propagate(self, x: torch.Tensor, graph: Graph) -> torch.Tensor:
        spectral = graph.spectral @ self.response  # (G, M, M): V h(R) V^T
        # [X, L X, V h(R) V^T X] (G, M, 3 in) through the stacked (W_0; W_1; W_2): one product, as in ChebConv
        terms = torch.cat([x, graph.operator @ x, spectral @ x], dim=-1)
        return terms @ self.weight.reshape(-1, self.out_dim)


def selected_filter(params: SimpleNamespace) -> tuple[type[GraphFilter], dict]:
    """The layer class ``represent.filter`` names and its hyperparameters from the same params."""
    kind = params.filter
    if kind == "gcn":
        return GCNConv, {"propagation": _choice(params, "gcn_propagation", ("nrdh", "kipf")), "p": params.p}
    if kind == "none":
        return GCNConv, {"propagation": "identity"}
    if kind == "cheby":
        return ChebConv, {"order": _count(params, "cheby_order", 1)}
    if kind in ("spline", "lanczos"):
        basis = _choice(params, "spectral_basis", BASES)
        response = {"basis": basis, "knots": _count(params, "spectral_knots", 4 if basis == "bspline" else 1)}
        if kind == "spline":
            return SplineConv, response
        return LanczosConv, {"steps": _count(params, "lanczos_steps", 1), **response}
    if kind == "fourier":
        return FourierConv, {"nodes": params.batch_nodes}
    raise GraphhashError(f"represent.filter: unknown filter {kind!r} ({', '.join(FILTERS)})")


def filter_layer(params: SimpleNamespace, in_dim: int, out_dim: int) -> GraphFilter:
    """The layer ``represent.filter`` selects, with its hyperparameters from the same params."""
    cls, hyperparameters = selected_filter(params)
    return cls(in_dim, out_dim, **hyperparameters)


def prepare_graph(params: SimpleNamespace, features: torch.Tensor) -> Graph:
    """The batch graphs of ``features`` (G, M, D) for the filter ``params`` select: Eq. 3 with ``rho``, then the
    filter's preparation; what ``filter_layer(params, ...).prepare`` gives, without building a layer."""
    cls, hyperparameters = selected_filter(params)
    return cls.graph(adjacency(features, params.rho), features, **hyperparameters)


def _choice(params: SimpleNamespace, name: str, choices: tuple[str, ...]) -> str:
    value = getattr(params, name, DEFAULTS[name])
    if value not in choices:
        raise GraphhashError(f"represent.{name}: {value!r} is not one of: {', '.join(choices)}")
    return value


def _count(params: SimpleNamespace, name: str, least: int) -> int:
    value = getattr(params, name, DEFAULTS[name])
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise GraphhashError(f"represent.{name}: {value!r} must be an integer >= {least}")
    return value
