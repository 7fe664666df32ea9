"""Stage 1 of NRDH (section 3.1): a graph-convolutional autoencoder whose latent vectors are the node
representations.

Layers (Table 1), for a graph with propagation matrix U' (G, M, M) and node features X (G, M, D):

    X^{l+1} = f(U' X^l W^l)                                  (Eq. 5, no bias)
    encoder: D -> 64 (ReLU) -> 64 (ReLU) -> g (none)         the node representation Z
    decoder: g -> 64 (ReLU) -> 64 (ReLU) -> D (none)         the reconstruction X_hat

    L1 = alpha * L_r + beta * L_w                            (Eq. 8)
    L_r = mean over nodes of ||X - X_hat||^2                 (Eq. 6)
    L_w = 1/2 * sum over encoder and decoder layers of ||W||_F^2   (Eq. 7)

The filter (``codes.filters``) swaps U' X W for another graph filter (``graphhash.graphs.filters``); L_w then
covers all of the layers' parameters (weight matrices and responses). Training runs for ``represent.steps``
Adam steps whatever the number of items, so that its length carries from one dataset to another.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable
from contextlib import nullcontext

import torch
from torch import nn

from graphhash.errors import GraphhashError
from graphhash.graphs.batch import adjacency, epoch_graphs
from graphhash.graphs.filters import FILTERS, Graph, GraphFilter, build_filter
from graphhash.graphs.knn import knn_graphs
from graphhash.params.graph import GraphParams
from graphhash.params.represent import RepresentParams
from graphhash.runtime import single_threaded

log = logging.getLogger(__name__)

# Nodes per optimiser step from which training uses all of torch's threads.
MANY_NODES = 256

# Graphs prepared together in knn mode: bounds the (graphs, M, D) copy of their features (4096 x 10 x 1280 floats
# = 210 MB) while keeping the batched preparation.
KNN_CHUNK = 4096


class GraphAutoencoder(nn.Module):
    """Table 1's encoder and its mirror image as decoder; ReLU after every layer but the last of each.

    Args:
        in_dim: D, the features' size.
        bits: g, the representation's size (the code length it is trained for).
        layer: builds one filter layer ``(in, out) -> GraphFilter``; all six share its hyperparameters.
        hidden: the width of the two hidden layers of each half.
        rho: the cosine threshold of an edge (Eq. 3), for ``prepare``.

    Shapes: x (G, M, D) -> z (G, M, g), x_hat (G, M, D).
    """

    def __init__(self, in_dim: int, bits: int, layer: Callable[[int, int], GraphFilter], hidden: int, rho: float):
        super().__init__()
        self.rho = rho
        dims = [in_dim, hidden, hidden, bits]
        self.encoder = nn.ModuleList(layer(a, b) for a, b in itertools.pairwise(dims))
        self.decoder = nn.ModuleList(layer(a, b) for a, b in itertools.pairwise(dims[::-1]))

    def prepare(self, features: torch.Tensor) -> Graph:
        """Everything weight-free about the batch graphs of ``features`` (G, M, D), for all six layers."""
        return self.encoder[0].prepare(adjacency(features, self.rho), features)

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


def build_autoencoder(
    in_dim: int, bits: int, filter_name: str, represent: RepresentParams, graph: GraphParams
) -> GraphAutoencoder:
    """The autoencoder with filter ``filter_name`` and its hyperparameters from ``represent.<filter>``."""
    options = represent.options(filter_name)

    def layer(a: int, b: int) -> GraphFilter:
        return build_filter(filter_name, a, b, graph.nodes, options)

    return GraphAutoencoder(in_dim, bits, layer, represent.hidden, graph.rho)


def reconstruction_loss(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """L_r of Eq. 6: the mean over nodes of the squared Euclidean reconstruction error."""
    return (x - x_hat).pow(2).sum(dim=-1).mean()


def _graphs(
    order: torch.Tensor, graph: GraphParams, fixed_size: bool, neighbours: torch.Tensor | None
) -> list[tuple[torch.Tensor, int]]:
    """The epoch's (block of graphs, own nodes per graph) pairs, graphs in the order of the nodes in ``order``.

    ``graph.kind``: ``batch`` (the paper) cuts the order into graphs of ``graph.nodes`` nodes (for a filter
    defined on one graph size, the remainder graph is completed); ``knn`` gives every node its own graph, the
    node and its ``nodes - 1`` nearest training items (``neighbours`` (N, >= M - 1), training rows), all own.
    """
    size = graph.nodes
    if graph.kind == "knn":
        if neighbours is None:
            raise GraphhashError("graph.kind: knn needs the nearest neighbours of the training items")
        indices = neighbours[:, : size - 1]
        return [(knn_graphs(chunk, indices), size) for chunk in order.split(KNN_CHUNK)]
    if fixed_size and len(order) < size:
        raise GraphhashError(
            f"graph.nodes: the filter needs graphs of exactly {size} nodes, but there are only {len(order)} "
            "training nodes"
        )
    return epoch_graphs(order, size, fixed_size)


def train_autoencoder(
    features: torch.Tensor,
    bits: int,
    filter_name: str,
    represent: RepresentParams,
    graph: GraphParams,
    neighbours: torch.Tensor | None = None,
) -> tuple[GraphAutoencoder, list[dict[str, float]]]:
    """Train on the training nodes ``features`` (N, D); return the model and one loss record per epoch.

    Every epoch shuffles the nodes (seeded) into graphs (``_graphs``: random batches of ``graph.nodes``
    nodes, or each node's kNN graph from ``neighbours``), prepares the graphs (propagation matrices,
    eigendecompositions...) in batched calls, then takes one Adam step per ``graphs_per_step`` graphs (1 in
    the paper: one graph, one step), for ``represent.steps`` steps in all: the last epoch stops where the
    steps run out. For a filter defined on one graph size with batch graphs, the remainder graph is completed
    with nodes of the epoch's first graph, which only lend it their links: the loss counts its own nodes.
    """
    torch.manual_seed(represent.seed)
    model = build_autoencoder(features.shape[1], bits, filter_name, represent, graph)
    # L1 = alpha * L_r + beta * L_w (Eq. 8). The gradient of beta * L_w = beta/2 sum ||W||^2 is beta * W,
    # which is exactly what Adam's (coupled) weight decay adds to every gradient; applying it there saves
    # about twenty tiny tensor operations per step, and steps are many (one per graph of 10 nodes).
    optimiser = torch.optim.Adam(model.parameters(), lr=represent.lr, weight_decay=represent.beta, foreach=True)
    order_rng = torch.Generator().manual_seed(represent.seed)
    fixed_size = FILTERS[filter_name].fixed_size
    history: list[dict[str, float]] = []
    # Steps on a few small graphs are too small to split across threads (runtime.single_threaded); from a few
    # hundred nodes per step on, two threads win (CIFAR-10, kNN graphs of 10 nodes, 2 cores: 128 graphs per
    # step 9.3 s per epoch on one thread, 5.6 s on two).
    many = represent.graphs_per_step * graph.nodes >= MANY_NODES
    with nullcontext() if many else single_threaded():
        step = 0
        while step < represent.steps:
            order = torch.randperm(len(features), generator=order_rng)
            blocks = _graphs(order, graph, fixed_size, neighbours)
            record = _epoch(model, optimiser, features, blocks, represent, represent.steps - step)
            step += record["steps"]
            history.append({"epoch": len(history) + 1, "step": step, **record})
            log.info("represent: epoch %d, step %d/%d, loss %.5f", len(history), step, represent.steps, record["loss"])
            if not math.isfinite(record["loss"]):
                raise GraphhashError(f"represent: the loss became {record['loss']} in epoch {len(history)} (step "
                                     f"{step}); lower represent.lr, or check the features")  # fmt: skip
    return model, history


def _epoch(
    model: GraphAutoencoder,
    optimiser: torch.optim.Optimizer,
    features: torch.Tensor,
    blocks: list[tuple[torch.Tensor, int]],
    represent: RepresentParams,
    budget: int,
) -> dict[str, float]:
    """One pass over the epoch's graphs, stopping after ``budget`` steps; the epoch's loss record."""
    reconstruction_sum = torch.zeros((), dtype=torch.float64)
    counted = steps = 0  # nodes in the loss: every node once with batch graphs, M times with kNN graphs
    per_step = represent.graphs_per_step
    for block, own in blocks:
        if steps == budget:  # the steps ran out: prepare no further graphs
            break
        x = features[block]
        graph = model.prepare(x)
        for start in range(0, len(block), per_step):
            if steps == budget:
                break
            xs = x[start : start + per_step]
            _, x_hat = model(xs, graph[start : start + per_step])
            if own < xs.shape[1]:  # a completed remainder graph: the borrowed nodes count elsewhere
                xs, x_hat = xs[:, :own], x_hat[:, :own]
            reconstruction = reconstruction_loss(xs, x_hat)
            optimiser.zero_grad(set_to_none=True)
            (represent.alpha * reconstruction).backward()
            optimiser.step()
            reconstruction_sum += reconstruction.detach() * (xs.shape[0] * xs.shape[1])  # per node
            counted += xs.shape[0] * xs.shape[1]
            steps += 1
    mean_reconstruction = reconstruction_sum.item() / counted
    with torch.no_grad():
        penalty = model.weight_penalty().item()  # at the end of the epoch
    loss = represent.alpha * mean_reconstruction + represent.beta * penalty
    return {"steps": steps, "loss": loss, "reconstruction": mean_reconstruction, "weight_penalty": penalty}


@torch.no_grad()
def node_representations(
    model: GraphAutoencoder,
    features: torch.Tensor,
    filter_name: str,
    graph: GraphParams,
    seed: int,
    neighbours: torch.Tensor | None = None,
) -> torch.Tensor:
    """The g-dimensional representation of every training node, (N, g).

    A node's representation depends on the graph it sits in, so it is computed the way training saw
    nodes. With kNN graphs that is the node's own graph, so it is unique. With batch graphs it is random
    graphs of ``graph.nodes`` nodes built by the same rule, the grouping drawn from a generator seeded with
    ``seed`` (``represent.seed``), so the representations, and everything fitted to them, are reproducible;
    for a filter defined on one graph size the remainder graph is completed as in training.
    """
    if graph.kind == "knn":
        order = torch.arange(len(features))
    else:
        order = torch.randperm(len(features), generator=torch.Generator().manual_seed(seed))
    out = torch.empty(len(features), model.encoder[-1].out_dim)
    for block, own in _graphs(order, graph, FILTERS[filter_name].fixed_size, neighbours):
        x = features[block]
        z = model.encode(x, model.prepare(x))
        if graph.kind == "knn":  # the node is the first of its own graph
            out[block[:, 0]] = z[:, 0]
        else:
            out[block[:, :own].reshape(-1)] = z[:, :own].reshape(-1, out.shape[1])
    return out
