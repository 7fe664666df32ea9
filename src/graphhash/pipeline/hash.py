"""The ``hash@<filter>`` stage: NRDH's stage 2. For every code length, fits the hash network to one filter's
representations and writes the codes of the query and database items, the model and its loss per epoch.

With ``hash.input: graph`` every item's input is its features propagated over its kNN graph
(``graphs.knn.graph_inputs``, with ``graph.rho``, ``graph.nodes - 1`` neighbours and ``hash.input_p``), for
queries too; with ``hash.target: rotated`` the representations are first rotated to balanced, decorrelated
directions (``nrdh.hashnet.rotated_targets``).

For paired data (xmodal-nrdh) every modality gets its own hash network, fitted to the same targets (one
representation per pair), so that all the modalities' codes land in one Hamming space: an image's code ranks the
texts' codes. A query holds one modality only, so its kNN graph is among the training items' features of that
modality (searched here; the neighbours file compares pairs).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from graphhash.backbones import Backbone, load_backbone
from graphhash.data.sources import open_source
from graphhash.errors import GraphhashError
from graphhash.files.atomic import write_csv
from graphhash.files.codes import PARTS, code_file, nrdh_method, split_codes, write_codes
from graphhash.files.features import FeatureSet, open_features, read_features, read_rows
from graphhash.files.manifest import Manifest
from graphhash.files.models import load_model, load_weights, save_model
from graphhash.files.neighbours import Neighbours, read_neighbours
from graphhash.files.representations import read_representations
from graphhash.graphs.knn import TrainingSet, graph_inputs, nearest_training
from graphhash.nrdh import cnn
from graphhash.nrdh.hashnet import HashNet, HashNetConfig, Targets, encode, rotated_targets, train_hashnet
from graphhash.params.extract import ExtractParams
from graphhash.params.graph import GraphParams
from graphhash.params.hash import HashParams
from graphhash.pipeline.extract import resolve_device, resolve_workers

log = logging.getLogger(__name__)

HASH_NETWORK = "nrdh-hashnet"
HASH_MODELS = {"mlp": HASH_NETWORK, "cnn": "nrdh-hashcnn"}  # the model kind saved for each hash.network


def with_graph_inputs(fs: FeatureSet, graph_input: dict[str, Any], neighbours: Neighbours | None = None) -> FeatureSet:
    """``fs`` (one modality) with every item's features propagated over its kNN graph (``hash.input: graph``).

    ``graph_input`` holds ``rho``, ``p`` and the number of ``neighbours``, as saved with the hash model;
    without ``neighbours`` they are searched among the training items of ``fs`` (as ``graphhash encode`` does).
    """
    ((modality, view),) = fs.views.items()
    found = neighbours or nearest_training(view, fs.train, graph_input["neighbours"])
    return fs.with_views({modality: graph_inputs(view, fs.train, found, graph_input["rho"], graph_input["p"])})


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
    extract: ExtractParams | None = None,
    manifest: Path | None = None,
) -> None:
    """For each code length g, from ``<representations>/<g>.h5``, and each modality m of the features file: the code
    file ``<codes>/nrdh-<filter>-<g>-<m>.h5``, the ``<models>/<g>/<m>`` model folder and the ``<losses>/<g>-<m>.csv``
    loss per epoch. ``hash.network: cnn`` reads the images through ``manifest`` and the backbone ``extract``
    names."""
    with open_features(features_path) as fs:  # rows read as they are needed, never the matrix and a copy
        graph_input = None
        if params.input == "graph":
            graph_input = {"rho": graph.rho, "p": params.input_p, "neighbours": graph.nodes - 1}
        trainers = {modality: _trainer(fs, modality, neighbours_path, graph_input, params, features_path, extract,
                                       manifest) for modality in fs.modalities}  # fmt: skip
        method, resume = nrdh_method(filter_name), models.parent / f".{models.name}.resume"
        for g in bits:
            path = representations / f"{g}.h5"
            found = read_representations(path)
            z = found.values
            if found.ids != fs.ids_where(fs.train) or z.shape[1] < g:
                raise GraphhashError(f"{path}: does not match the training items of {features_path} at {g} bits")
            if params.target == "representation" and z.shape[1] != g:
                raise GraphhashError(f"hash.target: representation fits fc(x) to the representations themselves, but "
                                     f"{path} holds {z.shape[1]} dimensions for {g} bits; set represent.latent: 0 or "
                                     "hash.target: rotated")  # fmt: skip
            fit = rotated_targets(z, params.seed, g) if params.target == "rotated" else z
            targets = Targets(torch.from_numpy(fit), torch.from_numpy(z))
            for modality, trainer in trainers.items():
                network, history, found_codes, config = trainer.fit(targets, resume)
                write_codes(code_file(codes, method, g, modality), split_codes(fs, found_codes, method, g, modality))
                config = {"method": method, "bits": g, "modality": modality, "training": params.model_dump(),
                          "backbone": fs.attrs.get("backbone"), "graph_input": graph_input, **config}  # fmt: skip
                save_model(models / str(g) / modality, network, HASH_MODELS[params.network], config)
                write_csv(losses / f"{g}-{modality}.csv", history)


def _trainer(fs: FeatureSet, modality: str, neighbours_path: Path, graph_input: dict[str, Any] | None,
             params: HashParams, features_path: Path, extract: ExtractParams | None,
             manifest: Path | None) -> MlpTrainer | CnnTrainer:  # fmt: skip
    """The trainer of ``modality``'s hash network. Its items' kNN graphs, for ``hash.input: graph``, are the
    neighbours file's when the run has one modality; with several, the neighbours file compares pairs, and each
    modality's are searched among the training items' features of that modality."""
    neighbours = None
    if graph_input and len(fs.views) > 1:
        neighbours = nearest_training(fs.view(modality), fs.train, graph_input["neighbours"])
    elif graph_input:
        neighbours = read_neighbours(neighbours_path, len(fs.ids), graph_input["neighbours"])
    fs = fs.only(modality)
    if params.network == "cnn":
        if extract is None or manifest is None:
            raise GraphhashError("hash.network: cnn needs the extract section and the manifest (the images)")
        return CnnTrainer(fs, features_path, Manifest.load(manifest), extract, params, graph_input, neighbours)
    return MlpTrainer(with_graph_inputs(fs, graph_input, neighbours) if graph_input else fs, params)


class MlpTrainer:
    """``hash.network: mlp``: Table 2's head on the (graph-propagated) features."""

    def __init__(self, fs: FeatureSet, params: HashParams):
        self.fs, self.params = fs, params

    def fit(self, targets: Targets, resume: Path) -> tuple[HashNet, list[dict[str, float]], np.ndarray, dict]:
        fs = self.fs
        network, history = train_hashnet(torch.from_numpy(read_rows(fs.features, fs.train)), targets, self.params)
        codes = np.zeros((len(fs.features), network.config.bits), dtype=bool)
        for part in PARTS:  # each part encoded on its own, as the code files always were
            codes[getattr(fs, part)] = encode(network, read_rows(fs.features, getattr(fs, part)))
        config = {"in_dim": network.config.in_dim, "hidden": list(network.config.hidden),
                  "negative_slope": network.config.negative_slope, "dropout": network.config.dropout}  # fmt: skip
        return network, history, codes, config


class CnnTrainer:
    """``hash.network: cnn``: the run's backbone and Table 2's head trained on the training images
    (``graphhash.nrdh.cnn``); the frozen stages' outputs are computed once for every code length."""

    def __init__(self, fs: FeatureSet, features_path: Path, manifest: Manifest, extract: ExtractParams,
                 params: HashParams, graph_input: dict[str, Any] | None, neighbours: Neighbours | None):  # fmt: skip
        made_with = fs.attrs.get("backbone")
        if made_with != extract.backbone:
            raise GraphhashError(f"{features_path}: made with backbone {made_with}, but extract.backbone is "
                                 f"{extract.backbone}; rerun the extract stage (dvc repro)")  # fmt: skip
        source = open_source(manifest.source, manifest.path)
        if source.holds_vectors:
            raise GraphhashError(f"hash.network: cnn trains on images, but the {manifest.source} items are vectors")
        self.fs, self.extract, self.params, self.cnn = fs, extract, params, params.cnn
        self.device_type = resolve_device(self.cnn.device, "hash.cnn.device")
        backbone = self._backbone()
        self.device = cnn.Device.of(self.device_type, resolve_workers(self.cnn.num_workers, self.device_type), backbone)
        self.all = cnn.Images(source, fs.ids, self.cnn.image_size, backbone.interpolation, self.cnn, params.seed)
        self.train = cnn.Images(source, fs.ids_where(fs.train), self.cnn.image_size, backbone.interpolation,
                                self.cnn, params.seed)  # fmt: skip
        self.graph = None
        if graph_input:
            training = TrainingSet(read_rows(fs.features, fs.train))
            own, context = training.graph_parts(fs.features, neighbours, graph_input["rho"], graph_input["p"])
            self.graph = cnn.GraphParts(torch.from_numpy(own), torch.from_numpy(context))
        probe = cnn.build(backbone, 1, self.cnn, params.negative_slope)
        self.cache = None if self.cnn.augment else cnn.frozen_outputs(probe, self.all, self.device, 256)
        log.info("hash: cnn on %s, %s, %d of %d backbone stages trained, augment %s", self.device_type.type,
                 self.device.precision, self.cnn.trainable, len(backbone.stages()),
                 self.cnn.augment or "none")  # fmt: skip

    def _backbone(self) -> Backbone:
        """The pretrained backbone, afresh (training changes its weights in place)."""
        backbone = load_backbone(self.extract.backbone, self.extract.weights, self.extract.weights_path,
                                 self.cnn.image_size)  # fmt: skip
        if backbone.weights != self.fs.attrs.get("weights"):
            raise GraphhashError(f"extract.weights: gives {backbone.weights}, but the features were made with "
                                 f"{self.fs.attrs.get('weights')}; rerun the extract stage (dvc repro)")  # fmt: skip
        return backbone

    def fit(self, targets: Targets, resume: Path) -> tuple[cnn.HashCNN, list[dict[str, float]], np.ndarray, dict]:
        fs, params = self.fs, self.params
        backbone = self._backbone()
        torch.manual_seed(params.seed)
        model = cnn.build(backbone, targets.fit.shape[1], self.cnn, params.negative_slope)
        train_rows = torch.from_numpy(np.flatnonzero(fs.train))
        checkpoints = cnn.Checkpoints(resume, cnn.fingerprint(params, targets, self.train.ids, backbone.weights))
        history = cnn.train_cnn(
            model, self.train, targets, params, self.device,
            cache=None if self.cache is None else self.cache[train_rows],
            graph=None if self.graph is None else cnn.GraphParts(self.graph.own[train_rows],
                                                                 self.graph.context[train_rows]),
            checkpoints=checkpoints,
        )  # fmt: skip
        codes = cnn.encode_images(model, self.all, self.device, 256, cache=self.cache, graph=self.graph)
        checkpoints.remove()
        config = {"network": "cnn", "in_dim": backbone.dim, "hidden": list(model.head.config.hidden),
                  "negative_slope": params.negative_slope, "dropout": model.head.config.dropout,
                  "weights": backbone.weights,
                  "image_size": self.cnn.image_size, "trainable": self.cnn.trainable}  # fmt: skip
        return model.cpu(), history, codes, config


def load_hash_network(folder: Path) -> tuple[HashNet | cnn.HashCNN, dict[str, Any]]:
    """A saved hash network (either ``hash.network``) in eval mode, and its configuration."""
    state, config = load_model(folder, tuple(HASH_MODELS.values()), stage="hash")
    try:
        head = HashNet(HashNetConfig(config["in_dim"], config["bits"], config["negative_slope"],
                                     tuple(config["hidden"]), config["dropout"]))  # fmt: skip
        network = head
        if config["model"] == HASH_MODELS["cnn"]:  # the backbone's shape; every weight comes from the file
            backbone = load_backbone(config["backbone"], "none", "", config["image_size"])
            network = cnn.HashCNN(backbone.stages(), config["trainable"], head)
    except (KeyError, TypeError, ValueError) as exc:
        raise GraphhashError(
            f"{folder}: the model's configuration is incomplete ({exc!r}); rerun the hash stage"
        ) from None
    load_weights(network, state, str(folder))
    return network.eval(), config


def encode_features(folder: Path, features_path: Path) -> np.ndarray:
    """Boolean codes (N, bits) of every row of a features file in the model's modality, from a saved hash network
    (``mlp``)."""
    network, config = load_hash_network(folder)
    if not isinstance(network, HashNet):
        raise GraphhashError(f"{folder}: a CNN hash network (hash.network: cnn) hashes images, not features")
    fs = read_features(features_path).only(config["modality"])
    if fs.features.shape[1] != network.config.in_dim:
        raise GraphhashError(f"{features_path}: {config['modality']} features of {fs.features.shape[1]} dimensions, "
                             f"but the model at {folder} takes {network.config.in_dim} (features of another "
                             "backbone?)")  # fmt: skip
    if config.get("graph_input"):  # the model hashes features propagated over kNN graphs of training items
        fs = with_graph_inputs(fs, config["graph_input"])
    return encode(network, fs.features)
