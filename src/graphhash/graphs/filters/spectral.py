"""Filters through the graph's spectrum, L = U Lambda U^T (exact eigendecomposition per graph):

    spline    X' = U h(Lambda) U^T X W         h = sum_b c_b phi_b, B-splines or polynomials (HAGCN's "Poly")
    fourier   X' = U diag(theta) U^T X W       one theta per eigenvalue index     (Bruna et al. 2014)

and the learnable response h that ``spline`` and ``lanczos`` share (``response_basis``, ``check_response``).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import nn

from graphhash.errors import GraphhashError
from graphhash.graphs.batch import normalized_laplacian
from graphhash.graphs.filters.base import Graph, GraphFilter
from graphhash.hyperparameters import HyperparameterError, checked

Basis = Literal["bspline", "poly"]
Knots = Annotated[int, Field(ge=1, le=100)]


def check_response(basis: str, knots: int) -> None:
    """Cubic B-splines need at least 4 basis functions (polynomials 1, which ``Knots`` already says)."""
    if basis == "bspline" and knots < 4:
        raise HyperparameterError("knots", f"{knots} is too few for cubic B-splines: must be >= 4")


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

    h(lambda) = sum_b c_b phi_b(lambda) over [0, 2], coefficients c initialised to the low-pass 1 - lambda / 2
    (``reset_parameters`` restores it, and draws W anew). A function of the eigenvalues, so U h(Lambda) U^T does
    not depend on which eigenbasis eigh returns for a repeated eigenvalue.

    Args:
        in_dim, out_dim: feature sizes of X and X'.
        basis: the response's basis functions: bspline, cubic B-splines on uniform knots | poly, Chebyshev
            polynomials in lambda - 1
        knots: how many basis functions (bspline: at least 4)

    Shapes: x (G, M, in_dim), U (G, M, M) -> (G, M, out_dim); c (knots,).
    """

    @checked
    def __init__(self, in_dim: int, out_dim: int, *, basis: Basis = "bspline", knots: Knots = 6):
        super().__init__(in_dim, out_dim, basis=basis, knots=knots)
        self.weight = nn.Parameter(torch.empty(in_dim, out_dim))
        self.response = nn.Parameter(torch.empty(knots))
        self.reset_parameters()

    def initial_values(self) -> dict[str, torch.Tensor]:
        return {"response": initial_response(self.hyperparameters["basis"], self.hyperparameters["knots"])}

    @classmethod
    def check(cls, *, basis: str, knots: int) -> None:
        check_response(basis, knots)

    @staticmethod
    @torch.no_grad()
    def graph(adjacency: torch.Tensor, features: torch.Tensor, *, basis: str, knots: int) -> Graph:
        eigenvalues, eigenvectors = torch.linalg.eigh(normalized_laplacian(adjacency))
        return Graph(spectral=spectral_operators(eigenvectors, response_basis(eigenvalues, basis, knots)))

    def propagate(self, x: torch.Tensor, graph: Graph) -> torch.Tensor:
        return spectral_filter(x @ self.weight, graph.spectral, self.response)


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
    eigenspace (and on the node order). theta starts as the low-pass 1, ..., 0, linear in the index
    (``reset_parameters`` restores it).

    Args:
        in_dim, out_dim: feature sizes of X and X'.
        nodes: M, the one graph size (``graph.nodes``); not a hyperparameter of its own.

    Shapes: x (G, nodes, in_dim), U (G, nodes, nodes) -> (G, nodes, out_dim); theta (nodes,).
    """

    fixed_size = True

    @checked
    def __init__(self, in_dim: int, out_dim: int, nodes: Annotated[int, Field(ge=2)]):
        super().__init__(in_dim, out_dim, nodes=nodes)
        self.nodes = nodes
        self.weight = nn.Parameter(torch.empty(in_dim, out_dim))
        self.response = nn.Parameter(torch.empty(nodes))
        self.reset_parameters()

    def initial_values(self) -> dict[str, torch.Tensor]:
        return {"response": torch.linspace(1.0, 0.0, self.nodes)}

    @staticmethod
    @torch.no_grad()
    def graph(adjacency: torch.Tensor, features: torch.Tensor, *, nodes: int) -> Graph:
        _check_nodes(nodes, adjacency.shape[-1])
        eigenvalues, eigenvectors = torch.linalg.eigh(normalized_laplacian(adjacency))
        return Graph(spectral=spectral_operators(eigenvectors, tie_average(eigenvalues)))

    def propagate(self, x: torch.Tensor, graph: Graph) -> torch.Tensor:
        _check_nodes(self.nodes, x.shape[-2])
        return spectral_filter(x @ self.weight, graph.spectral, self.response)


def _check_nodes(expected: int, nodes: int) -> None:
    if nodes != expected:
        raise GraphhashError(
            f"graph.nodes: the fourier filter has one coefficient per eigenvalue of a graph of "
            f"{expected} nodes and cannot filter a graph of {nodes}"
        )
