"""Stage 1 of NRDH (section 3.1): a graph-convolutional autoencoder whose latent vectors are the node
representations.

Layers (Table 1), for a graph with propagation matrix U' (G, M, M) and node features X (G, M, D):

    X^{l+1} = f(U' X^l W^l)                                  (Eq. 5, no bias)
    encoder: D -> 64 (ReLU) -> 64 (ReLU) -> g (none)         the node representation Z
    decoder: g -> 64 (ReLU) -> 64 (ReLU) -> D (none)         the reconstruction X_hat

    L1 = alpha * L_r + beta * L_w                            (Eq. 8)
         + spread * L_n
    L_r = mean over nodes of ||X - X_hat||^2                 (Eq. 6)
    L_w = 1/2 * sum over encoder and decoder layers of ||W||_F^2   (Eq. 7)
    L_n = 1 - H(p) / log g,  p = eig(cov(Z)) / tr(cov(Z))     over the nodes of a step's graphs

L_n is graphhash's (``represent.spread``, 0 in the paper): the narrowness of the representations, 0 when their
variance is spread evenly over all g directions and 1 when it lies in one. Without it the autoencoder keeps almost
all of its representations' variance in about 16 directions, whatever g (``docs/results/validation.md``, "Where each
stage stands"), and longer codes have nothing more to encode.

The filter (``codes.filters``) swaps U' X W for another graph filter (``graphhash.graphs.filters``); L_w then
covers all of the layers' parameters (weight matrices and responses). Training runs for ``steps`` Adam steps
whatever the number of items, so that its length carries from one dataset to another. ``RepresentationLearner``
holds the hyperparameters (params.yaml's ``represent`` section is built from its signature) and trains;
``Graphs`` says how nodes become graphs (the ``graph`` section).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import torch
from pydantic import Field
from torch import nn

from graphhash.errors import GraphhashError
from graphhash.graphs.batch import adjacency, epoch_graphs
from graphhash.graphs.filters import Graph, GraphFilter, build_filter
from graphhash.graphs.knn import knn_graphs
from graphhash.hyperparameters import Configurable, Count, NonNegative, Positive, Seed, Steps, Width, checked
from graphhash.runtime import single_threaded

log = logging.getLogger(__name__)

# Nodes per optimiser step from which training uses all of torch's threads.
MANY_NODES = 256

# Graphs prepared together in knn mode: bounds the (graphs, M, D) copy of their features (4096 x 10 x 1280 floats
# = 210 MB) while keeping the batched preparation.
KNN_CHUNK = 4096


@dataclass(frozen=True)
class Graphs:
    """How nodes become graphs (Eqs. 2-4; params.yaml's ``graph`` section): ``kind`` batch, M = ``nodes`` random
    training nodes (the paper), or knn, a node and its M - 1 nearest training items; an edge links two nodes whose
    cosine similarity is above ``rho`` (Eq. 3)."""

    kind: Literal["batch", "knn"]
    nodes: int
    rho: float


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

    @property
    def fixed_size(self) -> bool:
        """Whether its filter is defined on graphs of one size only (``GraphFilter.fixed_size``)."""
        return self.encoder[0].fixed_size

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


def reconstruction_loss(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """L_r of Eq. 6: the mean over nodes of the squared Euclidean reconstruction error."""
    return (x - x_hat).pow(2).sum(dim=-1).mean()


def narrowness(z: torch.Tensor) -> torch.Tensor:
    """L_n of rows z (n, g): 1 - H(p) / log g, p the eigenvalues of their covariance over its trace (eigenvalues
    below 1e-12 count as 1e-12), H the entropy; 0 for variance spread evenly over the g directions."""
    centred = z - z.mean(0)
    values = torch.linalg.eigvalsh(centred.T @ centred / max(len(z) - 1, 1)).clamp_min(1e-12)
    p = values / values.sum()
    return 1 - (-(p * p.log()).sum()) / math.log(z.shape[1])


def _graphs(
    order: torch.Tensor, graph: Graphs, fixed_size: bool, neighbours: torch.Tensor | None
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


class RepresentationLearner(Configurable):
    """NRDH's stage 1: trains the graph autoencoder on the training nodes (section 3.1, Table 1).

    ``filter_options``: each filter's hyperparameters by its name (``represent.<filter>``; a filter missing from
    it takes its defaults).

    >>> x = torch.randn(40, 12)
    >>> model, history = RepresentationLearner(steps=8).fit(x, 4, "gcn", Graphs("batch", nodes=10, rho=0.4))
    >>> node_representations(model, x, Graphs("batch", nodes=10, rho=0.4), seed=0).shape
    torch.Size([40, 4])

    Args:
        hidden: width of the two hidden graph convolutions (Table 1)
        latent: the representation's size: max(latent, code length); 0: the code length (the paper); wider than the
            code, hash.target rotated fits the bits to its leading principal directions
        alpha: weight of the reconstruction loss (Eq. 8)
        beta: weight of the 1/2 sum ||W||^2 penalty (Eq. 8)
        spread: weight of L_n, the narrowness of a step's representations (1 - the entropy of their covariance's
            normalised eigenvalues / log g); 0: none, as the paper
        steps: Adam steps, whatever the dataset's size
        lr: Adam's learning rate
        graphs_per_step: graphs per Adam step (the paper: 1)
        seed: initialisation, node order, and the graphs of the final representations
    """

    @checked
    def __init__(
        self,
        filter_options: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        hidden: Width = 64,
        latent: Annotated[int, Field(ge=0, le=65536)] = 64,
        alpha: NonNegative = 0.999,
        beta: NonNegative = 0.001,
        spread: NonNegative = 0.0,
        steps: Steps = 800,
        lr: Positive = 0.001,
        graphs_per_step: Count = 32,
        seed: Seed = 0,
    ):
        self.filter_options = dict(filter_options or {})
        self.hidden, self.latent, self.alpha, self.beta = hidden, latent, alpha, beta
        self.spread = spread
        self.steps, self.lr, self.graphs_per_step, self.seed = steps, lr, graphs_per_step, seed

    def size(self, bits: int) -> int:
        """The representation's size for a code of ``bits`` bits: max(latent, bits)."""
        return max(self.latent, bits)

    def build(self, in_dim: int, bits: int, filter_name: str, graph: Graphs) -> GraphAutoencoder:
        """The autoencoder of ``bits`` wide representations with filter ``filter_name`` (and its options)."""
        options = self.filter_options.get(filter_name, {})

        def layer(a: int, b: int) -> GraphFilter:
            return build_filter(filter_name, a, b, graph.nodes, options)

        return GraphAutoencoder(in_dim, bits, layer, self.hidden, graph.rho)

    def fit(
        self,
        features: torch.Tensor,
        bits: int,
        filter_name: str,
        graph: Graphs,
        neighbours: torch.Tensor | None = None,
    ) -> tuple[GraphAutoencoder, list[dict[str, float]]]:
        """Train on the training nodes ``features`` (N, D); return the model and one loss record per epoch.

        Every epoch shuffles the nodes (seeded) into graphs (``_graphs``: random batches of ``graph.nodes``
        nodes, or each node's kNN graph from ``neighbours``), prepares the graphs (propagation matrices,
        eigendecompositions...) in batched calls, then takes one Adam step per ``graphs_per_step`` graphs (1 in
        the paper: one graph, one step), for ``steps`` steps in all: the last epoch stops where the steps run out.
        For a filter defined on one graph size with batch graphs, the remainder graph is completed with nodes of
        the epoch's first graph, which only lend it their links: the loss counts its own nodes.
        """
        torch.manual_seed(self.seed)
        model = self.build(features.shape[1], bits, filter_name, graph)
        # L1 = alpha * L_r + beta * L_w (Eq. 8). The gradient of beta * L_w = beta/2 sum ||W||^2 is beta * W,
        # which is exactly what Adam's (coupled) weight decay adds to every gradient; applying it there saves
        # about twenty tiny tensor operations per step, and steps are many (one per graph of 10 nodes).
        optimiser = torch.optim.Adam(model.parameters(), lr=self.lr, weight_decay=self.beta, foreach=True)
        order_rng = torch.Generator().manual_seed(self.seed)
        history: list[dict[str, float]] = []
        # Steps on a few small graphs are too small to split across threads (runtime.single_threaded); from a few
        # hundred nodes per step on, two threads win (CIFAR-10, kNN graphs of 10 nodes, 2 cores: 128 graphs per
        # step 9.3 s per epoch on one thread, 5.6 s on two).
        many = self.graphs_per_step * graph.nodes >= MANY_NODES
        with nullcontext() if many else single_threaded():
            step = 0
            while step < self.steps:
                order = torch.randperm(len(features), generator=order_rng)
                blocks = _graphs(order, graph, model.fixed_size, neighbours)
                record = _epoch(model, optimiser, features, blocks, self.alpha, self.beta, self.graphs_per_step,
                                self.steps - step, self.spread)  # fmt: skip
                step += record["steps"]
                history.append({"epoch": len(history) + 1, "step": step, **record})
                log.info("represent: epoch %d, step %d/%d, loss %.5f", len(history), step, self.steps, record["loss"])
                if not math.isfinite(record["loss"]):
                    raise GraphhashError(f"represent: the loss became {record['loss']} in epoch {len(history)} (step "
                                         f"{step}); lower represent.lr, or check the features")  # fmt: skip
        return model, history


def _epoch(
    model: GraphAutoencoder,
    optimiser: torch.optim.Optimizer,
    features: torch.Tensor,
    blocks: list[tuple[torch.Tensor, int]],
    alpha: float,
    beta: float,
    per_step: int,
    budget: int,
    spread: float,
) -> dict[str, float]:
    """One pass over the epoch's graphs, ``per_step`` graphs an Adam step, stopping after ``budget`` steps; the
    epoch's loss record (alpha and beta weigh Eq. 8's terms, spread the narrowness L_n)."""
    reconstruction_sum, narrowness_sum = torch.zeros((), dtype=torch.float64), 0.0
    counted = steps = 0  # nodes in the loss: every node once with batch graphs, M times with kNN graphs
    for block, own in blocks:
        if steps == budget:  # the steps ran out: prepare no further graphs
            break
        x = features[block]
        graph = model.prepare(x)
        for start in range(0, len(block), per_step):
            if steps == budget:
                break
            xs = x[start : start + per_step]
            z, x_hat = model(xs, graph[start : start + per_step])
            if own < xs.shape[1]:  # a completed remainder graph: the borrowed nodes count elsewhere
                xs, x_hat, z = xs[:, :own], x_hat[:, :own], z[:, :own]
            reconstruction = reconstruction_loss(xs, x_hat)
            optimiser.zero_grad(set_to_none=True)
            total = alpha * reconstruction
            if spread > 0:  # computed only when weighed: the paper's and the default's runs as they were
                narrow = narrowness(z.reshape(-1, z.shape[-1]))
                total = total + spread * narrow
                narrowness_sum += narrow.item()
            total.backward()
            optimiser.step()
            reconstruction_sum += reconstruction.detach() * (xs.shape[0] * xs.shape[1])  # per node
            counted += xs.shape[0] * xs.shape[1]
            steps += 1
    mean_reconstruction = reconstruction_sum.item() / counted
    with torch.no_grad():
        penalty = model.weight_penalty().item()  # at the end of the epoch
    record = {"steps": steps, "loss": alpha * mean_reconstruction + beta * penalty,
              "reconstruction": mean_reconstruction, "weight_penalty": penalty}  # fmt: skip
    if spread > 0:  # the mean narrowness of the epoch's steps, and its share of the loss
        record["narrowness"] = narrowness_sum / max(steps, 1)
        record["loss"] += spread * record["narrowness"]
    return record


@torch.no_grad()
def node_representations(
    model: GraphAutoencoder,
    features: torch.Tensor,
    graph: Graphs,
    seed: int,
    neighbours: torch.Tensor | None = None,
) -> torch.Tensor:
    """The g-dimensional representation of every training node, (N, g).

    A node's representation depends on the graph it sits in, so it is computed the way training saw
    nodes. With kNN graphs that is the node's own graph, so it is unique. With batch graphs it is random
    graphs of ``graph.nodes`` nodes built by the same rule, the grouping drawn from a generator seeded with
    ``seed`` (the learner's), so the representations, and everything fitted to them, are reproducible;
    for a filter defined on one graph size the remainder graph is completed as in training.
    """
    if graph.kind == "knn":
        order = torch.arange(len(features))
    else:
        order = torch.randperm(len(features), generator=torch.Generator().manual_seed(seed))
    out = torch.empty(len(features), model.encoder[-1].out_dim)
    for block, own in _graphs(order, graph, model.fixed_size, neighbours):
        x = features[block]
        z = model.encode(x, model.prepare(x))
        if graph.kind == "knn":  # the node is the first of its own graph
            out[block[:, 0]] = z[:, 0]
        else:
            out[block[:, :own].reshape(-1)] = z[:, :own].reshape(-1, out.shape[1])
    return out
