"""Stage 1 of NRDH (section 3.1): a graph-convolutional autoencoder whose latent vectors are the node
representations.

Layers (Table 1), for a graph with propagation matrix U' (G, M, M) and node features X (G, M, D):

    X^{l+1} = f(U' X^l W^l)                                  (Eq. 5, no bias)
    encoder: D -> 64 (ReLU) -> 64 (ReLU) -> g (none)         the node representation Z
    decoder: g -> 64 (ReLU) -> 64 (ReLU) -> D (none)         the reconstruction X_hat

    L1 = alpha * L_r + beta * L_w                            (Eq. 8)
    L_r = mean over nodes of ||X - X_hat||^2                 (Eq. 6)
    L_w = 1/2 * sum over encoder and decoder layers of ||W||_F^2   (Eq. 7)

``represent.filter`` swaps U' X W for another graph filter (``graphhash.filters``: gcn, cheby, lanczos,
spline, fourier, none); L_w then covers all of the layers' parameters (weight matrices and responses).
"""

from __future__ import annotations

import itertools
import logging
from contextlib import nullcontext
from functools import partial
from types import SimpleNamespace

import torch
from torch import nn

from graphhash.errors import GraphhashError
from graphhash.filters import Graph, filter_layer, prepare_graph
from graphhash.graph import epoch_graphs
from graphhash.neighbours import knn_graphs
from graphhash.runtime import single_threaded

log = logging.getLogger(__name__)

# The paper's graph (Eqs. 2-4) for a model built without params.
PAPER_GRAPH = SimpleNamespace(filter="gcn", gcn_propagation="nrdh", rho=0.4, p=0.8)


class GraphAutoencoder(nn.Module):
    """Table 1's encoder and its mirror image as decoder; ReLU after every layer but the last of each.

    The six layers are the filter ``params`` select (``filters.filter_layer``; default NRDH's GCN); they share
    one ``Graph`` per batch of graphs, built by ``prepare`` (or ``filters.prepare_graph`` with other params).
    """

    def __init__(self, in_dim: int, bits: int, hidden: int = 64, params: SimpleNamespace | None = None):
        super().__init__()
        self.graph_params = PAPER_GRAPH if params is None else params
        layer = partial(filter_layer, self.graph_params)
        dims = [in_dim, hidden, hidden, bits]
        self.encoder = nn.ModuleList(layer(a, b) for a, b in itertools.pairwise(dims))
        back = dims[::-1]
        self.decoder = nn.ModuleList(layer(a, b) for a, b in itertools.pairwise(back))

    def prepare(self, features: torch.Tensor) -> Graph:
        """Everything weight-free about the batch graphs of ``features`` (G, M, D), for all six layers."""
        return prepare_graph(self.graph_params, features)

    @staticmethod
    def _run(layers: nn.ModuleList, x: torch.Tensor, graph: Graph) -> torch.Tensor:
        for i, layer in enumerate(layers):
            x = layer(x, graph)
            if i < len(layers) - 1:
                x = torch.relu(x)
        return x

    def encode(self, x: torch.Tensor, graph: Graph) -> torch.Tensor:
        return self._run(self.encoder, x, graph)

    def forward(self, x: torch.Tensor, graph: Graph) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encode(x, graph)
        return z, self._run(self.decoder, z, graph)

    def weight_penalty(self) -> torch.Tensor:
        """L_w of Eq. 7, over every parameter: what Adam's weight decay (beta) applies to in training."""
        return 0.5 * sum(parameter.pow(2).sum() for parameter in self.parameters())


def reconstruction_loss(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """L_r of Eq. 6: the mean over nodes of the squared Euclidean reconstruction error."""
    return (x - x_hat).pow(2).sum(dim=-1).mean()


# Nodes per optimiser step from which training uses all of torch's threads.
MANY_NODES = 256

# Graphs prepared together in knn mode: bounds the (graphs, M, D) copy of their features (4096 x 10 x 1280 floats
# = 210 MB) while keeping the batched preparation.
KNN_CHUNK = 4096


def _graphs(
    order: torch.Tensor, params: SimpleNamespace, neighbours: torch.Tensor | None
) -> list[tuple[torch.Tensor, int]]:
    """The epoch's (block of graphs, own nodes per graph) pairs, graphs in the order of the nodes in ``order``.

    ``represent.graph``: ``batch`` (the paper) cuts the order into graphs of ``batch_nodes`` nodes (for
    fourier, the remainder graph is completed); ``knn`` gives every node its own graph, the node and its
    ``batch_nodes - 1`` nearest training items (``neighbours`` (N, >= M - 1), training rows), all nodes own.
    """
    size = params.batch_nodes
    if params.graph == "knn":
        if neighbours is None:
            raise GraphhashError("represent.graph: knn needs the nearest neighbours of the training items")
        indices = neighbours[:, : size - 1]
        return [(knn_graphs(chunk, indices), size) for chunk in order.split(KNN_CHUNK)]
    complete = params.filter == "fourier"  # the one filter defined only on graphs of exactly M nodes
    if complete and len(order) < size:
        raise GraphhashError(
            f"represent.batch_nodes: the fourier filter needs graphs of exactly {size} nodes, "
            f"but there are only {len(order)} training nodes"
        )
    return epoch_graphs(order, size, complete)


def train_autoencoder(
    features: torch.Tensor, bits: int, params: SimpleNamespace, neighbours: torch.Tensor | None = None
) -> tuple[GraphAutoencoder, list[dict[str, float]]]:
    """Train on the training nodes ``features`` (N, D); return the model and one loss record per epoch.

    Every epoch shuffles the nodes (seeded) into graphs (``_graphs``: random batches of ``batch_nodes``
    nodes, or each node's kNN graph from ``neighbours``), prepares the graphs (propagation matrices,
    eigendecompositions...) in batched calls, then takes one Adam step per ``graphs_per_step`` graphs (1 in
    the paper: one graph, one step). For the fourier filter with batch graphs the remainder graph is
    completed to ``batch_nodes`` nodes with nodes of the epoch's first graph, which only lend it their
    links: the loss counts the remainder's own nodes.
    """
    torch.manual_seed(params.seed)
    model = GraphAutoencoder(features.shape[1], bits, params.hidden, params)
    # L1 = alpha * L_r + beta * L_w (Eq. 8). The gradient of beta * L_w = beta/2 sum ||W||^2 is beta * W,
    # which is exactly what Adam's (coupled) weight decay adds to every gradient; applying it there saves
    # about twenty tiny tensor operations per step, and steps are many (one per graph of 10 nodes).
    optimiser = torch.optim.Adam(model.parameters(), lr=params.lr, weight_decay=params.beta, foreach=True)
    order_rng = torch.Generator().manual_seed(params.seed)
    history = []
    # Steps on a few small graphs are too small to split across threads (runtime.single_threaded); from a few
    # hundred nodes per step on, two threads win (CIFAR-10, kNN graphs of 10 nodes, 2 cores: 128 graphs per
    # step 9.3 s per epoch on one thread, 5.6 s on two).
    threads = single_threaded() if params.graphs_per_step * params.batch_nodes < MANY_NODES else nullcontext()
    with threads:
        for epoch in range(1, params.epochs + 1):
            history.append(_epoch(model, optimiser, features, neighbours, order_rng, params, epoch))
    return model, history


def _epoch(
    model: GraphAutoencoder,
    optimiser: torch.optim.Optimizer,
    features: torch.Tensor,
    neighbours: torch.Tensor | None,
    order_rng: torch.Generator,
    params: SimpleNamespace,
    epoch: int,
) -> dict[str, float]:
    """One pass over the nodes in freshly shuffled graphs; the epoch's loss record."""
    reconstruction_sum = torch.zeros((), dtype=torch.float64)
    counted = 0  # nodes in the loss: every node once with batch graphs, M times with kNN graphs
    order = torch.randperm(len(features), generator=order_rng)
    for block, own in _graphs(order, params, neighbours):
        x = features[block]
        graph = model.prepare(x)
        for start in range(0, len(block), params.graphs_per_step):
            xs = x[start : start + params.graphs_per_step]
            _, x_hat = model(xs, graph[start : start + params.graphs_per_step])
            if own < xs.shape[1]:  # a completed remainder graph: the borrowed nodes count elsewhere
                xs, x_hat = xs[:, :own], x_hat[:, :own]
            reconstruction = reconstruction_loss(xs, x_hat)
            optimiser.zero_grad(set_to_none=True)
            (params.alpha * reconstruction).backward()
            optimiser.step()
            reconstruction_sum += reconstruction.detach() * (xs.shape[0] * xs.shape[1])  # per node
            counted += xs.shape[0] * xs.shape[1]
    mean_reconstruction = reconstruction_sum.item() / counted
    with torch.no_grad():
        penalty = model.weight_penalty().item()  # at the end of the epoch
    loss = params.alpha * mean_reconstruction + params.beta * penalty
    log.info("represent: epoch %d/%d, loss %.5f", epoch, params.epochs, loss)
    return {"epoch": epoch, "loss": loss, "reconstruction": mean_reconstruction, "weight_penalty": penalty}


@torch.no_grad()
def node_representations(
    model: GraphAutoencoder, features: torch.Tensor, params: SimpleNamespace, neighbours: torch.Tensor | None = None
) -> torch.Tensor:
    """The g-dimensional representation of every training node, (N, g).

    A node's representation depends on the graph it sits in, so it is computed the way training saw
    nodes. With kNN graphs that is the node's own graph, so it is unique. With batch graphs it is random
    graphs of ``batch_nodes`` nodes built by the same rule, the grouping drawn from a generator seeded with
    ``represent.seed``, so the representations, and everything fitted to them, are reproducible; for the
    fourier filter the remainder graph is completed as in training.
    """
    if params.graph == "knn":
        order = torch.arange(len(features))
    else:
        order = torch.randperm(len(features), generator=torch.Generator().manual_seed(params.seed))
    out = torch.empty(len(features), model.encoder[-1].out_dim)
    for block, own in _graphs(order, params, neighbours):
        x = features[block]
        z = model.encode(x, prepare_graph(params, x))
        if params.graph == "knn":  # the node is the first of its own graph
            out[block[:, 0]] = z[:, 0]
        else:
            out[block[:, :own].reshape(-1)] = z[:, :own].reshape(-1, out.shape[1])
    return out
