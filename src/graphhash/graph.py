"""The mini-batch graphs of NRDH (Wang et al. 2021, section 3.1).

Each image is a node; M nodes drawn together form one graph. For the nodes' feature vectors v_i:

- Eq. 2, cosine similarity:    u_ij = v_i . v_j / (||v_i|| ||v_j||)
- Eq. 3, binarisation:          U_ij = 1 if u_ij > rho else 0
- Eq. 4, re-weighting:          U'_ii = p,   U'_ij = (1 - p) / n_i * U_ij  (i != j)

with n_i = sum_{j != i} U_ij the node's neighbour count. The paper writes the denominator as sum_j U_ij
and says that p goes to the node itself and 1 - p to its correlated nodes, so the neighbours share 1 - p
and every row sums to 1. A node with no neighbour above rho (n_i = 0) would keep only p on its row; it
gets weight 1 on itself instead, so its row is still a valid propagation row (summing to 1) and its
representation comes from its own features alone.

All graphs of an epoch are built at once: ``features`` is (G, M, D) for G graphs of M nodes.
"""

from __future__ import annotations

import torch


def cosine_similarity(features: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Eq. 2 for every pair of nodes of each graph: (G, M, D) -> (G, M, M)."""
    unit = features / features.norm(dim=-1, keepdim=True).clamp_min(eps)
    return unit @ unit.transpose(-1, -2)


def nrdh_propagation(features: torch.Tensor, rho: float, p: float) -> torch.Tensor:
    """The re-weighted correlation matrix U' of Eqs. 2-4 for each graph: (G, M, D) -> (G, M, M)."""
    count = features.shape[-2]
    eye = torch.eye(count, dtype=torch.bool, device=features.device)
    linked = (cosine_similarity(features) > rho) & ~eye  # Eq. 3, without the trivial self-link
    neighbours = linked.sum(dim=-1, keepdim=True).to(features.dtype)  # n_i, (G, M, 1)
    off_diagonal = linked * ((1.0 - p) / neighbours.clamp_min(1))
    self_weight = torch.where(neighbours > 0, neighbours.new_tensor(p), neighbours.new_tensor(1.0))  # isolated: 1
    return off_diagonal + torch.diag_embed(self_weight.squeeze(-1))


def identity_propagation(features: torch.Tensor) -> torch.Tensor:
    """No graph: each node propagates only to itself (the "without GCN" arm of the paper's Table 7)."""
    *batch, count, _ = features.shape
    return torch.eye(count, dtype=features.dtype, device=features.device).expand(*batch, count, count)


def epoch_batches(order: torch.Tensor, size: int) -> list[torch.Tensor]:
    """Split a node order into index tensors: one (G, size) block of full graphs, then the remainder.

    The full graphs are one tensor so everything per graph runs batched; a last graph smaller than
    ``size`` (when it does not divide the count) comes as a second block of shape (1, r).
    """
    full = (len(order) // size) * size
    blocks = [order[:full].view(-1, size)] if full else []
    if full < len(order):
        blocks.append(order[full:].view(1, -1))
    return blocks
