"""The ``hash@<filter>`` stage: NRDH's stage 2. For every code length, fits the hash network to one filter's
representations and writes the codes of the query and database items, the model and its loss per epoch.

With ``hash.input: graph`` every item's input is its features propagated over its kNN graph
(``graphs.knn.graph_inputs``, with ``graph.rho``, ``graph.nodes - 1`` neighbours and ``hash.input_p``), for
queries too; with ``hash.target: rotated`` the representations are first rotated to balanced, decorrelated
directions (``nrdh.hashnet.rotated_targets``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from graphhash.errors import GraphhashError
from graphhash.files.atomic import write_csv
from graphhash.files.codes import code_file, encode_splits, nrdh_method, write_codes
from graphhash.files.features import FeatureSet, read_features
from graphhash.files.models import load_model, load_weights, save_model
from graphhash.files.neighbours import Neighbours, read_neighbours
from graphhash.files.representations import read_representations
from graphhash.graphs.knn import graph_inputs, nearest_training
from graphhash.nrdh.hashnet import HashNet, HashNetConfig, encode, rotated_targets, train_hashnet
from graphhash.params.graph import GraphParams
from graphhash.params.hash import HashParams

HASH_NETWORK = "nrdh-hashnet"


def with_graph_inputs(fs: FeatureSet, graph_input: dict[str, Any], neighbours: Neighbours | None = None) -> FeatureSet:
    """``fs`` with every item's features propagated over its kNN graph (``hash.input: graph``).

    ``graph_input`` holds ``rho``, ``p`` and the number of ``neighbours``, as saved with the hash model;
    without ``neighbours`` they are searched among the training items of ``fs`` (as ``graphhash encode`` does).
    """
    found = neighbours or nearest_training(fs.features, fs.train, graph_input["neighbours"])
    return replace(fs, features=graph_inputs(fs.features, fs.train, found, graph_input["rho"], graph_input["p"]))


def hash_codes(
    features_path: Path,
    neighbours_path: Path,
    representations: Path,
    filter_name: str,
    bits: list[int],
    params: HashParams,
    graph: GraphParams,
    *,
    codes: Path,
    models: Path,
    losses: Path,
) -> None:
    """For each code length g, from ``<representations>/<g>.h5``: the code file ``<codes>/nrdh-<filter>-<g>.h5``,
    the ``<models>/<g>`` model folder and the ``<losses>/<g>.csv`` loss per epoch."""
    fs = read_features(features_path)
    graph_input = None
    if params.input == "graph":
        graph_input = {"rho": graph.rho, "p": params.input_p, "neighbours": graph.nodes - 1}
        fs = with_graph_inputs(fs, graph_input, read_neighbours(neighbours_path, len(fs.features), graph.nodes - 1))
    method = nrdh_method(filter_name)
    for g in bits:
        path = representations / f"{g}.h5"
        found = read_representations(path)
        z = found.values
        if found.ids != fs.ids_where(fs.train) or z.shape[1] != g:
            raise GraphhashError(f"{path}: does not match the training items of {features_path} at {g} bits")
        if params.target == "rotated":
            z = rotated_targets(z, params.seed)
        network, history = train_hashnet(torch.from_numpy(fs.features[fs.train]), torch.from_numpy(z), params)
        write_codes(code_file(codes, method, g), encode_splits(fs, lambda x, net=network: encode(net, x), method, g))
        config = {"method": method, "in_dim": network.config.in_dim, "bits": g,
                  "hidden": list(network.config.hidden), "negative_slope": network.config.negative_slope,
                  "training": params.model_dump(), "backbone": fs.attrs.get("backbone"),
                  "graph_input": graph_input}  # fmt: skip
        save_model(models / str(g), network, HASH_NETWORK, config)
        write_csv(losses / f"{g}.csv", history)


def load_hash_network(folder: Path) -> tuple[HashNet, dict[str, Any]]:
    """A saved hash network in eval mode, and its configuration."""
    state, config = load_model(folder, HASH_NETWORK, stage="hash")
    try:
        network = HashNet(HashNetConfig(config["in_dim"], config["bits"], config["negative_slope"],
                                        tuple(config["hidden"])))  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise GraphhashError(
            f"{folder}: the model's configuration is incomplete ({exc!r}); rerun the hash stage"
        ) from None
    load_weights(network, state, str(folder))
    return network.eval(), config


def encode_features(folder: Path, features_path: Path) -> np.ndarray:
    """Boolean codes (N, bits) of every row of a features file, from a saved hash network."""
    network, config = load_hash_network(folder)
    fs = read_features(features_path)
    if fs.features.shape[1] != network.config.in_dim:
        raise GraphhashError(f"{features_path}: features of {fs.features.shape[1]} dimensions, but the model at "
                             f"{folder} takes {network.config.in_dim} (features of another backbone?)")  # fmt: skip
    if config.get("graph_input"):  # the model hashes features propagated over kNN graphs of training items
        fs = with_graph_inputs(fs, config["graph_input"])
    return encode(network, fs.features)
