"""First-order propagation, NRDH's layer: X' = P X W, and the layer without a graph, X' = X W."""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import nn

from graphhash.graphs.batch import kipf_propagation, reweighted_propagation
from graphhash.graphs.filters.base import Graph, GraphFilter
from graphhash.hyperparameters import checked


class GCNConv(GraphFilter):
    """X' = P X W (NRDH's Eq. 5 before its activation).

    Args:
        in_dim, out_dim: feature sizes of X and X'.
        propagation: nrdh, P = U' of Eq. 4 (a node keeps p, its neighbours share 1 - p) | kipf, Kipf and
            Welling's D~^-1/2 (A + I) D~^-1/2
        p: the weight a node keeps for itself in U' (the paper: 0.8; 0.3 chosen on validation splits)

    Shapes: x (G, M, in_dim), P (G, M, M) -> (G, M, out_dim).
    """

    @checked
    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        *,
        propagation: Literal["nrdh", "kipf"] = "nrdh",
        p: Annotated[float, Field(ge=0.0, le=1.0)] = 0.3,
    ):
        super().__init__(in_dim, out_dim, propagation=propagation, p=p)
        self.weight = nn.Parameter(torch.empty(in_dim, out_dim))
        self.reset_parameters()

    @staticmethod
    @torch.no_grad()
    def graph(adjacency: torch.Tensor, features: torch.Tensor, *, propagation: str, p: float) -> Graph:
        if propagation == "nrdh":
            return Graph(operator=reweighted_propagation(adjacency, p))
        return Graph(operator=kipf_propagation(adjacency))

    def propagate(self, x: torch.Tensor, graph: Graph) -> torch.Tensor:
        return graph.operator @ (x @ self.weight)


class NoGraph(GraphFilter):
    """X' = X W: each node on its own, the "without GCN" arm of NRDH's Table 7 (filter ``none``).

    Shapes: x (G, M, in_dim) -> (G, M, out_dim).
    """

    @checked
    def __init__(self, in_dim: int, out_dim: int):
        super().__init__(in_dim, out_dim)
        self.weight = nn.Parameter(torch.empty(in_dim, out_dim))
        self.reset_parameters()

    @staticmethod
    def graph(adjacency: torch.Tensor, features: torch.Tensor) -> Graph:
        return Graph()

    def propagate(self, x: torch.Tensor, graph: Graph) -> torch.Tensor:
        return x @ self.weight
