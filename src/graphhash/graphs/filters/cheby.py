"""ChebNet (Defferrard et al. 2016): X' = sum_{k<K} T_k(L~) X Theta_k, L~ = 2 L / lambda_max - I."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from graphhash.graphs.batch import normalized_laplacian
from graphhash.graphs.filters.base import Graph, GraphFilter
from graphhash.hyperparameters import checked


class ChebConv(GraphFilter):
    """X' = sum_{k=0}^{K-1} T_k(L~) X Theta_k, with the Chebyshev polynomials T_0 = 1, T_1 = x,
    T_k = 2 x T_{k-1} - T_{k-2} of the scaled Laplacian L~ = 2 L / lambda_max - I.

    lambda_max = 2, the bound of the normalised Laplacian's spectrum, rather than each graph's largest
    eigenvalue: no eigenvalue problem per batch, the same L~ = L - I for every graph, and its spectrum still
    lies in [-1, 1], where |T_k| <= 1. A polynomial of degree K - 1 in L: each node sees its (K - 1)-hop
    neighbourhood. Theta starts Glorot-uniform scaled by 1/sqrt(K) (``glorot_``, ``reset_parameters``).

    Args:
        in_dim, out_dim: feature sizes of X and X'.
        order: K, the Chebyshev terms T_0 .. T_{K-1}

    Shapes: x (G, M, in_dim), L~ (G, M, M) -> (G, M, out_dim); Theta (K, in_dim, out_dim).
    """

    @checked
    def __init__(self, in_dim: int, out_dim: int, *, order: Annotated[int, Field(ge=1, le=100)] = 3):
        super().__init__(in_dim, out_dim, order=order)
        self.order = order
        self.weight = nn.Parameter(torch.empty(order, in_dim, out_dim))  # Theta_0 ... Theta_{K-1}
        self.reset_parameters()

    @staticmethod
    @torch.no_grad()
    def graph(adjacency: torch.Tensor, features: torch.Tensor, *, order: int) -> Graph:  # the same for any K
        laplacian = normalized_laplacian(adjacency)
        eye = torch.eye(laplacian.shape[-1], dtype=laplacian.dtype, device=laplacian.device)
        return Graph(operator=laplacian - eye)  # 2 L / lambda_max - I with lambda_max = 2

    def propagate(self, x: torch.Tensor, graph: Graph) -> torch.Tensor:
        scaled = graph.operator
        terms = [x]  # T_k(L~) X, (G, M, in) each
        for k in range(1, self.order):
            terms.append(scaled @ x if k == 1 else 2.0 * (scaled @ terms[-1]) - terms[-2])
        return torch.cat(terms, dim=-1) @ self.weight.reshape(-1, self.out_dim)  # sum_k T_k(L~) X Theta_k
