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

The graph filters (``graphhash.graphs.filters``) start from the same binary graph A = U of Eq. 3 (no self-link)
and its degrees d_i = n_i:

- normalised Laplacian:        L = I - D^-1/2 A D^-1/2, with d_i^-1/2 := 0 for an isolated node (L_ii = 1);
                                its spectrum lies in [0, 2]
- Eq. 4 as a matrix:           U' = p I + (1 - p) D^-1 A for nodes with neighbours, row e_i for isolated ones
- Kipf and Welling (2017):     P = D~^-1/2 (A + I) D~^-1/2 with D~ = D + I (never singular)
"""

from __future__ import annotations

import torch


def cosine_similarity(features: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Eq. 2 for every pair of nodes of each graph: (G, M, D) -> (G, M, M)."""
    unit = features / features.norm(dim=-1, keepdim=True).clamp_min(eps)
    return unit @ unit.transpose(-1, -2)


def adjacency(features: torch.Tensor, rho: float) -> torch.Tensor:
    """Eq. 3 for each graph: (G, M, D) -> (G, M, M), 1 where the cosine exceeds rho, 0 elsewhere and on the diagonal.

    Symmetric, in the features' dtype.
    """
    count = features.shape[-2]
    eye = torch.eye(count, dtype=torch.bool, device=features.device)
    above = cosine_similarity(features) > rho
    # Both directions, so that A is exactly symmetric whatever the rounding of the matrix product (it always is
    # in practice, so this changes no link); without the trivial self-link.
    return (above & above.transpose(-1, -2) & ~eye).to(features.dtype)


def reweighted_propagation(adjacency: torch.Tensor, p: float) -> torch.Tensor:
    """Eq. 4 on a binary graph: (G, M, M) -> U' = p I + (1 - p) D^-1 A, with an identity row for isolated nodes."""
    neighbours = adjacency.sum(dim=-1, keepdim=True)  # n_i, (G, M, 1): exact, a sum of zeros and ones
    off_diagonal = adjacency * ((1.0 - p) / neighbours.clamp_min(1))
    self_weight = torch.where(neighbours > 0, neighbours.new_tensor(p), neighbours.new_tensor(1.0))  # isolated: 1
    return off_diagonal + torch.diag_embed(self_weight.squeeze(-1))


def nrdh_propagation(features: torch.Tensor, rho: float, p: float) -> torch.Tensor:
    """The re-weighted correlation matrix U' of Eqs. 2-4 for each graph: (G, M, D) -> (G, M, M)."""
    return reweighted_propagation(adjacency(features, rho), p)


def normalized_laplacian(adjacency: torch.Tensor) -> torch.Tensor:
    """L = I - D^-1/2 A D^-1/2 for each graph: (G, M, M) -> (G, M, M), symmetric, spectrum in [0, 2].

    An isolated node has d_i^-1/2 := 0, so its row and column are those of the identity (eigenvalue 1)
    instead of a division by zero.
    """
    degree = adjacency.sum(dim=-1)
    scale = torch.where(degree > 0, degree.clamp_min(1e-30).rsqrt(), torch.zeros_like(degree))  # (G, M)
    eye = torch.eye(adjacency.shape[-1], dtype=adjacency.dtype, device=adjacency.device)
    return eye - scale[..., :, None] * adjacency * scale[..., None, :]


def kipf_propagation(adjacency: torch.Tensor) -> torch.Tensor:
    """Kipf and Welling's renormalised propagation D~^-1/2 (A + I) D~^-1/2, D~ = D + I: (G, M, M) -> (G, M, M)."""
    looped = adjacency + torch.eye(adjacency.shape[-1], dtype=adjacency.dtype, device=adjacency.device)
    scale = looped.sum(dim=-1).rsqrt()  # every degree is at least 1: the self-loop
    return scale[..., :, None] * looped * scale[..., None, :]


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


def epoch_graphs(order: torch.Tensor, size: int, complete: bool = False) -> list[tuple[torch.Tensor, int]]:
    """``epoch_batches`` as (block, own) pairs: own is how many leading nodes of each graph in block are its own.

    With ``complete`` a remainder graph of r < ``size`` nodes is completed to ``size`` nodes with the first
    nodes of the order (which sit in the epoch's first graph), for filters defined only on graphs of exactly
    ``size`` nodes; its own nodes are its first r. Needs at least ``size`` nodes, so that no node repeats
    within a graph.
    """
    blocks = epoch_batches(order, size)
    if not complete or blocks[-1].shape[1] == size:
        return [(block, block.shape[1]) for block in blocks]
    if len(order) < size:
        raise ValueError(f"cannot complete a graph of {size} nodes from {len(order)} nodes")
    *full, last = blocks
    own = last.shape[1]
    completed = torch.cat([last, order[None, : size - own]], dim=1)
    return [*((block, size) for block in full), (completed, own)]
