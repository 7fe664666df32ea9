"""Stage 1 of NRDH (section 3.1): a graph-convolutional autoencoder whose latent vectors are the node
representations.

Layers (Table 1), for a graph with propagation matrix U' (G, M, M) and node features X (G, M, D):

    X^{l+1} = f(U' X^l W^l)                                  (Eq. 5, no bias)
    encoder: D -> 64 (ReLU) -> 64 (ReLU) -> g (none)         the node representation Z
    decoder: g -> 64 (ReLU) -> 64 (ReLU) -> D (none)         the reconstruction X_hat

    L1 = alpha * L_r + beta * L_w                            (Eq. 8)
    L_r = mean over nodes of ||X - X_hat||^2                 (Eq. 6)
    L_w = 1/2 * sum over encoder and decoder layers of ||W||_F^2   (Eq. 7)
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from functools import partial
from types import SimpleNamespace

import torch
from torch import nn

from graphhash.errors import GraphhashError
from graphhash.graph import epoch_batches, identity_propagation, nrdh_propagation
from graphhash.runtime import single_threaded

log = logging.getLogger(__name__)


class GraphConv(nn.Module):
    """One graph convolution without activation: (G, M, in), (G, M, M) -> (G, M, out) = U' X W."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_dim, out_dim))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, x: torch.Tensor, propagation: torch.Tensor) -> torch.Tensor:
        return propagation @ (x @ self.weight)


class GraphAutoencoder(nn.Module):
    """Table 1's encoder and its mirror image as decoder; ReLU after every layer but the last of each."""

    def __init__(self, in_dim: int, bits: int, hidden: int = 64):
        super().__init__()
        dims = [in_dim, hidden, hidden, bits]
        self.encoder = nn.ModuleList(GraphConv(a, b) for a, b in itertools.pairwise(dims))
        back = dims[::-1]
        self.decoder = nn.ModuleList(GraphConv(a, b) for a, b in itertools.pairwise(back))

    @staticmethod
    def _run(layers: nn.ModuleList, x: torch.Tensor, propagation: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(layers):
            x = layer(x, propagation)
            if i < len(layers) - 1:
                x = torch.relu(x)
        return x

    def encode(self, x: torch.Tensor, propagation: torch.Tensor) -> torch.Tensor:
        return self._run(self.encoder, x, propagation)

    def forward(self, x: torch.Tensor, propagation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encode(x, propagation)
        return z, self._run(self.decoder, z, propagation)

    def weight_penalty(self) -> torch.Tensor:
        """L_w of Eq. 7."""
        return 0.5 * sum(layer.weight.pow(2).sum() for layer in (*self.encoder, *self.decoder))


def reconstruction_loss(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """L_r of Eq. 6: the mean over nodes of the squared Euclidean reconstruction error."""
    return (x - x_hat).pow(2).sum(dim=-1).mean()


def propagation_for(params: SimpleNamespace) -> Callable[[torch.Tensor], torch.Tensor]:
    """The batch-graph builder ``represent.filter`` selects."""
    if params.filter == "gcn":
        return partial(nrdh_propagation, rho=params.rho, p=params.p)
    if params.filter == "none":
        return identity_propagation
    raise GraphhashError(f"represent.filter: unknown filter {params.filter!r} (gcn, none)")


def train_autoencoder(
    features: torch.Tensor, bits: int, params: SimpleNamespace
) -> tuple[GraphAutoencoder, list[dict[str, float]]]:
    """Train on the training nodes ``features`` (N, D); return the model and one loss record per epoch.

    Every epoch shuffles the nodes (seeded) into graphs of ``batch_nodes`` nodes, builds all their
    propagation matrices in one batched call, then takes one Adam step per ``graphs_per_step`` graphs
    (1 in the paper: one graph, one step).
    """
    torch.manual_seed(params.seed)
    model = GraphAutoencoder(features.shape[1], bits, params.hidden)
    # L1 = alpha * L_r + beta * L_w (Eq. 8). The gradient of beta * L_w = beta/2 sum ||W||^2 is beta * W,
    # which is exactly what Adam's (coupled) weight decay adds to every gradient; applying it there saves
    # about twenty tiny tensor operations per step, and steps are many (one per graph of 10 nodes).
    optimiser = torch.optim.Adam(model.parameters(), lr=params.lr, weight_decay=params.beta, foreach=True)
    propagate = propagation_for(params)
    order_rng = torch.Generator().manual_seed(params.seed)
    history = []
    with single_threaded():
        for epoch in range(1, params.epochs + 1):
            history.append(_epoch(model, optimiser, features, propagate, order_rng, params, epoch))
    return model, history


def _epoch(
    model: GraphAutoencoder,
    optimiser: torch.optim.Optimizer,
    features: torch.Tensor,
    propagate: Callable[[torch.Tensor], torch.Tensor],
    order_rng: torch.Generator,
    params: SimpleNamespace,
    epoch: int,
) -> dict[str, float]:
    """One pass over the nodes in freshly shuffled graphs; the epoch's loss record."""
    reconstruction_sum = torch.zeros((), dtype=torch.float64)
    for block in epoch_batches(torch.randperm(len(features), generator=order_rng), params.batch_nodes):
        x = features[block]
        propagation = propagate(x)
        for start in range(0, len(block), params.graphs_per_step):
            xs = x[start : start + params.graphs_per_step]
            _, x_hat = model(xs, propagation[start : start + params.graphs_per_step])
            reconstruction = reconstruction_loss(xs, x_hat)
            optimiser.zero_grad(set_to_none=True)
            (params.alpha * reconstruction).backward()
            optimiser.step()
            reconstruction_sum += reconstruction.detach() * (xs.shape[0] * xs.shape[1])  # per node
    mean_reconstruction = reconstruction_sum.item() / len(features)
    with torch.no_grad():
        penalty = model.weight_penalty().item()  # at the end of the epoch
    loss = params.alpha * mean_reconstruction + params.beta * penalty
    log.info("represent: epoch %d/%d, loss %.5f", epoch, params.epochs, loss)
    return {"epoch": epoch, "loss": loss, "reconstruction": mean_reconstruction, "weight_penalty": penalty}


@torch.no_grad()
def node_representations(model: GraphAutoencoder, features: torch.Tensor, params: SimpleNamespace) -> torch.Tensor:
    """The g-dimensional representation of every training node, (N, g).

    A node's representation depends on the graph it sits in, so it is computed the way training saw
    nodes: in random graphs of ``batch_nodes`` nodes built by the same rule. The grouping is drawn from a
    generator seeded with ``represent.seed``, so the representations, and everything fitted to them,
    are reproducible.
    """
    propagate = propagation_for(params)
    order = torch.randperm(len(features), generator=torch.Generator().manual_seed(params.seed))
    out = torch.empty(len(features), model.encoder[-1].weight.shape[1])
    for block in epoch_batches(order, params.batch_nodes):
        x = features[block]
        out[block.reshape(-1)] = model.encode(x, propagate(x)).reshape(-1, out.shape[1])
    return out
