"""Graph filter layers for the autoencoder, by the name ``codes.filters`` gives them: NRDH's GCN and the
filters HAGCN compares with it. On G graphs of M nodes with normalised Laplacian L = U Lambda U^T:

    gcn       X' = P X W                       P = U' (Eq. 4, NRDH) or D~^-1/2 (A + I) D~^-1/2 (Kipf, Welling)
    cheby     X' = sum_{k<K} T_k(L~) X Theta_k      L~ = 2 L / lambda_max - I      (Defferrard et al. 2016)
    lanczos   X' = X W_0 + L X W_1 + V h(R) V^T X W_2    m Ritz pairs (R, V) of L   (Liao et al. 2019)
    spline    X' = U h(Lambda) U^T X W         h = sum_b c_b phi_b (HAGCN's "Poly")
    fourier   X' = U diag(theta) U^T X W       one theta per eigenvalue index     (Bruna et al. 2014)
    none      X' = X W                         no graph: the "without GCN" arm of NRDH's Table 7
"""

from __future__ import annotations

from typing import Any

from graphhash.graphs.filters.base import Graph, GraphFilter
from graphhash.graphs.filters.cheby import ChebConv
from graphhash.graphs.filters.gcn import GCNConv, NoGraph
from graphhash.graphs.filters.lanczos import LanczosConv
from graphhash.graphs.filters.spectral import FourierConv, SplineConv

FILTERS: dict[str, type[GraphFilter]] = {
    "gcn": GCNConv,
    "cheby": ChebConv,
    "lanczos": LanczosConv,
    "spline": SplineConv,
    "fourier": FourierConv,
    "none": NoGraph,
}

__all__ = ["FILTERS", "Graph", "GraphFilter", "build_filter"]


def build_filter(name: str, in_dim: int, out_dim: int, nodes: int, options: dict[str, Any]) -> GraphFilter:
    """Filter ``name``'s layer with hyperparameters ``options``, for graphs of ``nodes`` nodes."""
    cls = FILTERS[name]
    return cls(in_dim, out_dim, nodes, **options) if cls.fixed_size else cls(in_dim, out_dim, **options)
