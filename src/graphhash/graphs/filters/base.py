"""What every graph filter layer is: ``GraphFilter``, the ``Graph`` it prepares once per batch, and its
hyperparameters.

A filter is a layer X (G, M, in) -> X' (G, M, out) on G graphs of M nodes, built from the binary batch graph
A (Eq. 3, ``graphs.batch.adjacency``). Its graph-side work (a propagation matrix, an eigendecomposition, a
Lanczos basis) depends only on A, the graphs' input features and the layer's hyperparameters, never on its
weights: ``layer.prepare(adjacency, features)`` does it once for a batch of graphs and returns a ``Graph``,
which all layers of a network with the same filter, and all optimiser steps on those graphs, reuse:
``layer(x, graph)``. ``layer(x, adjacency)`` prepares on the fly, with ``x`` as the features. Everything runs
batched over the G graphs, on the inputs' device and dtype, and draws no random numbers.

**Hyperparameters** are the keyword-only arguments of a filter's ``__init__`` (``graphhash.hyperparameters``):
declared once in the signature, checked when a layer is built, and the ``represent.<filter>`` section of
params.yaml is built from them. Rules across several of them go in the filter's ``check``. A layer shows them in
its ``repr``: ``GCNConv(64, 32, propagation='nrdh', p=0.3)``.

**Parameters** are allocated empty in ``__init__`` and given their initial values by ``reset_parameters``,
which ``__init__`` calls: the one place a layer is initialised. ``weight`` is drawn Glorot-uniform from torch's
global RNG (``glorot_``), every other parameter is set to the layer's ``initial_values``, so
``torch.manual_seed(s)`` followed by building (or resetting) the layers gives the same parameters every time.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from graphhash.hyperparameters import Configurable


@dataclass(frozen=True)
class Graph:
    """What a layer needs of a batch of G graphs of M nodes, computed once by ``prepare``; unused fields are None.

    - ``operator`` (G, M, M): the matrix multiplying node features: P (gcn), L~ (cheby), L (lanczos).
    - ``spectral`` (G, M, M, B): a spectral filter is linear in the layer's B response coefficients c,
      U diag(Phi c) U^T = sum_b c_b U diag(Phi_b) U^T, so the B matrices U diag(Phi_b) U^T are computed
      once per batch (``spectral.spectral_operators``) and a forward pass only mixes them: one small product
      instead of a round trip through the eigenbasis.
    """

    operator: torch.Tensor | None = None
    spectral: torch.Tensor | None = None

    def __getitem__(self, index: slice) -> Graph:
        """The graphs ``index`` selects, e.g. those of one optimiser step."""
        return Graph(**{f.name: _select(getattr(self, f.name), index) for f in dataclasses.fields(self)})


def _select(tensor: torch.Tensor | None, index: slice) -> torch.Tensor | None:
    return None if tensor is None else tensor[index]


class GraphFilter(nn.Module, Configurable):
    """A filter layer: ``forward(x, graph)`` with a prepared ``Graph`` or, for convenience, the adjacency.

    Subclasses implement ``graph`` (a static method: the per-batch preparation from the adjacency (G, M, M),
    the input features (G, M, D) and the layer's hyperparameters, no weights) and ``propagate``. Their
    ``__init__`` allocates the parameters empty (``nn.Parameter(torch.empty(...))``: a ``weight`` and any others)
    and ends with ``self.reset_parameters()``; a layer with parameters besides ``weight`` gives their values in
    ``initial_values``.
    """

    # True for a filter defined only on graphs of one size: it takes that size, ``nodes``, as its third argument.
    fixed_size: ClassVar[bool] = False

    def __init__(self, in_dim: int, out_dim: int, **hyperparameters: Any):
        super().__init__()
        self.check(**hyperparameters)
        self.in_dim, self.out_dim = in_dim, out_dim
        self.hyperparameters = hyperparameters

    @staticmethod
    def graph(adjacency: torch.Tensor, features: torch.Tensor, **hyperparameters: Any) -> Graph:
        raise NotImplementedError

    def prepare(self, adjacency: torch.Tensor, features: torch.Tensor) -> Graph:
        """The weight-free, per-batch part for this layer's hyperparameters: one ``Graph`` for all layers alike."""
        return self.graph(adjacency, features, **self.hyperparameters)

    def propagate(self, x: torch.Tensor, graph: Graph) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, graph: Graph | torch.Tensor) -> torch.Tensor:
        if isinstance(graph, torch.Tensor):
            graph = self.prepare(graph, x)
        return self.propagate(x, graph)

    def initial_values(self) -> dict[str, torch.Tensor]:
        """The initial value of each parameter other than ``weight``, by name; none by default."""
        return {}

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Every parameter back to its initial value, in place: ``weight`` drawn anew by ``glorot_`` (from torch's
        global RNG, the only draw), the others copied from ``initial_values``."""
        values = self.initial_values()
        for name, parameter in self.named_parameters(recurse=False):
            if name == "weight":
                glorot_(parameter)
            else:
                parameter.copy_(values[name])

    def extra_repr(self) -> str:
        """``in, out, key=value, ...``: nn.Module's repr shows it as ``ChebConv(1280, 64, order=3)``."""
        options = "".join(f", {key}={value!r}" for key, value in self.hyperparameters.items())
        return f"{self.in_dim}, {self.out_dim}{options}"


def glorot_(weight: torch.Tensor) -> torch.Tensor:
    """Glorot-uniform weights, in place: (in, out), or (terms, in, out) with the bound scaled by 1/sqrt(terms).

    A layer summing several filtered copies of X, each through its own matrix, so keeps the output scale of
    a single Glorot-initialised matrix.
    """
    if weight.dim() == 2:
        return nn.init.xavier_uniform_(weight)  # the draws NRDH's GCN always made, so its training is unchanged
    terms, in_dim, out_dim = weight.shape
    bound = math.sqrt(6.0 / (in_dim + out_dim) / terms)
    with torch.no_grad():
        return weight.uniform_(-bound, bound)
