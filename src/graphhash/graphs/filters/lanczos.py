"""LanczosNet (Liao et al. 2019): X' = X W_0 + L X W_1 + V h(R) V^T X W_2, with m Ritz pairs (R, V) of L."""

from __future__ import annotations

import math
from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from graphhash.graphs.batch import normalized_laplacian
from graphhash.graphs.filters.base import Graph, GraphFilter
from graphhash.graphs.filters.spectral import (
    Basis,
    Knots,
    check_response,
    initial_response,
    response_basis,
    spectral_operators,
)
from graphhash.hyperparameters import checked


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
    D^-1/2 A D^-1/2 = I - L), which the truncated basis may miss. W_k start Glorot-scaled by 1/sqrt(3) and c
    at SplineConv's low-pass response (``reset_parameters``).

    A graph whose Krylov space ran out before m steps gets -1 on the diagonal of T's unused steps, outside
    [0, 2], so eigh keeps their spurious Ritz pairs apart from the real ones; those pairs' vectors V are zero
    (Q's unused columns are) and their response is masked to zero.

    Args:
        in_dim, out_dim: feature sizes of X and X'.
        steps: m, Lanczos steps (at most the nodes of a graph)
        basis, knots: the learnable response h, as in SplineConv

    Shapes: x (G, M, in_dim), L (G, M, M) -> (G, M, out_dim); W (3, in_dim, out_dim), c (knots,).
    """

    @checked
    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        *,
        steps: Annotated[int, Field(ge=1, le=100_000)] = 6,
        basis: Basis = "bspline",
        knots: Knots = 6,
    ):
        super().__init__(in_dim, out_dim, steps=steps, basis=basis, knots=knots)
        self.weight = nn.Parameter(torch.empty(3, in_dim, out_dim))  # W_0 (identity), W_1 (L), W_2 (spectral)
        self.response = nn.Parameter(torch.empty(knots))
        self.reset_parameters()

    def initial_values(self) -> dict[str, torch.Tensor]:
        return {"response": initial_response(self.hyperparameters["basis"], self.hyperparameters["knots"])}

    @classmethod
    def check(cls, *, steps: int, basis: str, knots: int) -> None:
        check_response(basis, knots)

    @staticmethod
    @torch.no_grad()
    def graph(adjacency: torch.Tensor, features: torch.Tensor, *, steps: int, basis: str, knots: int) -> Graph:
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
