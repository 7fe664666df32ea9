"""The NRDH stages: files in, files out. The models and their training live in ``autoencoder`` and
``hashnet``; this module reads the features, runs them, and writes the declared outputs.

- ``represent`` (one per graph filter f and code length g): trains the graph autoencoder on the training
  items and writes their g-dimensional node representations (``data/representations/<f>-<g>.h5``:
  ``ids``, ``representations``), the model (``models/gcnae-<f>-<g>.pt`` + ``.json``) and the loss per epoch.
- ``hash`` (one per f and g): trains the hash network on the training items' features and
  representations, encodes the query and database items (``data/codes/nrdh-<f>-<g>.h5``, method
  ``nrdh-<f>``), and saves the network (``models/nrdh-<f>-<g>.pt`` + ``.json``) and the loss per epoch.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import torch

from graphhash.atomic import atomic_path, write_csv, write_json, write_state_dict
from graphhash.autoencoder import node_representations, train_autoencoder
from graphhash.codes import encode_splits, write_codes
from graphhash.errors import GraphhashError
from graphhash.features import FeatureSet, read_features, read_strings, write_strings
from graphhash.hashnet import encode, rotated_targets, save_hashnet, train_hashnet
from graphhash.neighbours import Neighbours, graph_inputs, nearest_training, read_neighbours


def _training_neighbours(path: Path | None, fs: FeatureSet, params: SimpleNamespace) -> torch.Tensor | None:
    """The training items' kNN graphs (N_train, M - 1) when ``represent.graph`` is knn, else None."""
    if params.graph != "knn":
        return None
    if path is None:
        raise GraphhashError("represent.graph: knn needs the neighbours file (the neighbours stage)")
    return torch.from_numpy(read_neighbours(path, fs, params.batch_nodes - 1).indices[fs.train])


def with_graph_inputs(fs: FeatureSet, graph_input: dict, neighbours: Neighbours | None = None) -> FeatureSet:
    """``fs`` with every item's features propagated over its kNN graph (``hash.input: graph``).

    ``graph_input`` holds ``rho``, ``p`` and the number of ``neighbours``, as saved with the hash model;
    without ``neighbours`` they are searched among the training items of ``fs`` (as ``graphhash encode`` does).
    """
    found = neighbours or nearest_training(fs.features, fs.train, graph_input["neighbours"])
    return replace(fs, features=graph_inputs(fs.features, fs.train, found, graph_input["rho"], graph_input["p"]))


def represent(
    features_path: Path,
    bits: int,
    params: SimpleNamespace,
    out: Path,
    model_stem: Path,
    losses: Path,
    neighbours_path: Path | None = None,
) -> None:
    fs = read_features(features_path)
    train = torch.from_numpy(fs.features[fs.train])
    neighbours = _training_neighbours(neighbours_path, fs, params)
    model, history = train_autoencoder(train, bits, params, neighbours)
    z = node_representations(model, train, params, neighbours).numpy()
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("representations", data=z.astype(np.float32))
        write_strings(f, "ids", fs.ids_where(fs.train))
        f.attrs.update({"bits": bits, "filter": params.filter})
    write_state_dict(model_stem.with_suffix(".pt"), model.state_dict())
    write_json(model_stem.with_suffix(".json"), {"model": "nrdh-graph-autoencoder", "in_dim": train.shape[1],
                                                 "bits": bits, **vars(params)})  # fmt: skip
    write_csv(losses, history)


def hash_codes(
    features_path: Path,
    representations_path: Path,
    bits: int,
    params: SimpleNamespace,
    method: str,
    codes_path: Path,
    model_stem: Path,
    losses: Path,
    graph: SimpleNamespace | None = None,
    neighbours_path: Path | None = None,
) -> None:
    """Fit the hash network to the representations; write the codes of the query and database items.

    ``params`` is the hash section. With ``hash.input: graph`` every item's input is its features propagated
    over its kNN graph (``neighbours.graph_inputs``: ``graph`` gives the represent section's ``batch_nodes``
    and ``rho``, ``hash.input_p`` the weight an item keeps); with ``hash.target: rotated`` the
    representations are first rotated to balanced, decorrelated directions (``hashnet.rotated_targets``).
    """
    fs = read_features(features_path)
    graph_input = None
    if params.input == "graph":
        if graph is None or neighbours_path is None:
            raise GraphhashError("hash.input: graph needs the represent params and the neighbours file")
        graph_input = {"rho": graph.rho, "p": params.input_p, "neighbours": graph.batch_nodes - 1}
        fs = with_graph_inputs(fs, graph_input, read_neighbours(neighbours_path, fs, graph.batch_nodes - 1))
    with h5py.File(representations_path, "r") as f:
        z = f["representations"][()]
        ids = read_strings(f["ids"])
    if ids != fs.ids_where(fs.train) or z.shape[1] != bits:
        raise GraphhashError(f"{representations_path}: does not match the training items of {features_path}")
    if params.target == "rotated":
        z = rotated_targets(z, params.seed)
    model, history = train_hashnet(torch.from_numpy(fs.features[fs.train]), torch.from_numpy(z), params)
    write_codes(codes_path, encode_splits(fs, lambda x: encode(model, x), method, bits))
    save_hashnet(model, model_stem, extra={"training": vars(params), "backbone": fs.attrs.get("backbone"),
                                           "graph_input": graph_input})  # fmt: skip
    write_csv(losses, history)
