"""The ``represent@<filter>`` stage: NRDH's stage 1. For every code length, trains the graph autoencoder on the
training items and writes their node representations, the model and its loss per epoch. For paired data a node is
a pair: its features are every modality's side by side, as the neighbours stage compares them
(``graphs.knn.joint_features``), so one representation serves every modality.

One stage per filter runs every code length in one process: a stage's start (Python, torch) costs about as
much as training one small autoencoder, and the pipeline should be quick on small data."""

from __future__ import annotations

from pathlib import Path

import torch

from graphhash.files.atomic import write_csv
from graphhash.files.features import FeatureSet, open_features, read_rows
from graphhash.files.models import save_model
from graphhash.files.neighbours import read_neighbours
from graphhash.files.representations import Representations, write_representations
from graphhash.graphs.knn import joint_features
from graphhash.nrdh.autoencoder import Graphs, RepresentationLearner, node_representations
from graphhash.params.graph import GraphParams
from graphhash.params.represent import RepresentParams
from graphhash.runtime import require_memory

AUTOENCODER = "nrdh-graph-autoencoder"


def training_neighbours(path: Path, fs: FeatureSet, graph: GraphParams) -> torch.Tensor:
    """The training items' kNN graphs, (N_train, M - 1) rows among the training items."""
    return torch.from_numpy(read_neighbours(path, len(fs.ids), graph.nodes - 1).indices[fs.train])


def represent(
    features_path: Path,
    neighbours_path: Path,
    filter_name: str,
    bits: list[int],
    represent: RepresentParams,
    graph: GraphParams,
    *,
    out: Path,
    models: Path,
    losses: Path,
) -> None:
    """For each code length g: ``<out>/<g>.h5`` (the representations, max(represent.latent, g) wide), the
    ``<models>/<g>`` model folder and the ``<losses>/<g>.csv`` loss per epoch."""
    with open_features(features_path) as fs:  # the training rows only
        fs.require_memory(fs.train, 2, "the training rows and their representations")
        width = fs.width + graph.nodes  # a node's features and its edges
        require_memory(
            "represent.graphs_per_step",
            3 * represent.graphs_per_step * graph.nodes * width * 4,
            f"{represent.graphs_per_step:,} graphs of {graph.nodes:,} nodes per step, with gradients",
        )
        train = torch.from_numpy(read_rows(joint_features(fs, graph.weights), fs.train))
        neighbours = training_neighbours(neighbours_path, fs, graph) if graph.kind == "knn" else None
    learner = RepresentationLearner(represent.filter_options(), **represent.hyperparameters(RepresentationLearner))
    graphs = Graphs(graph.kind, graph.nodes, graph.rho)
    trained: dict[int, tuple] = {}  # by representation size: code lengths below represent.latent share one
    for g in bits:
        size = learner.size(g)
        if size not in trained:
            autoencoder, history = learner.fit(train, size, filter_name, graphs, neighbours)
            z = node_representations(autoencoder, train, graphs, learner.seed, neighbours)
            trained[size] = autoencoder, history, z
        autoencoder, history, z = trained[size]
        write_representations(out / f"{g}.h5", Representations(z.numpy(), fs.ids_where(fs.train), filter_name))
        config = {"in_dim": train.shape[1], "bits": size, "filter": filter_name, "represent": represent.model_dump(),
                  "graph": graph.model_dump()}  # fmt: skip
        save_model(models / str(g), autoencoder, AUTOENCODER, config)
        write_csv(losses / f"{g}.csv", history)
