"""The ``hash@<filter>`` stage: NRDH's stage 2. For every code length, fits the hash network to one filter's
representations and writes the codes of the query and database items, the model and its loss per epoch.

With ``hash.input: graph`` every item's input is its features propagated over its kNN graph
(``nrdh.encoder.GraphInput``, with ``graph.rho``, ``graph.nodes - 1`` neighbours and ``hash.input_p``), for
queries too; with ``hash.target: rotated`` the representations are first rotated to balanced, decorrelated
directions (``nrdh.hashnet.rotated_targets``). The query and database items are hashed by the ``ItemEncoder`` that
``graphhash encode``, ``search`` and ``serve`` use for new items.

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

from graphhash.backbones import BACKBONES, Backbone, load_backbone
from graphhash.data.sources import open_source
from graphhash.errors import GraphhashError
from graphhash.files.atomic import write_csv
from graphhash.files.codes import PARTS, code_file, nrdh_method, split_codes, write_codes
from graphhash.files.features import FeatureSet, open_features, read_rows
from graphhash.files.manifest import Manifest
from graphhash.files.models import save_model
from graphhash.files.neighbours import Neighbours, read_neighbours
from graphhash.files.representations import read_representations
from graphhash.files.resume import Resume, fingerprint
from graphhash.graphs.knn import TrainingSet, nearest_training
from graphhash.nrdh.cnn.model import HashCNN
from graphhash.nrdh.cnn.training import CnnLearner, GraphParts
from graphhash.nrdh.encoder import ENCODE_ROWS, HASH_MODELS, GraphInput, ItemEncoder
from graphhash.nrdh.hashnet import HashLearner, HashNet, Targets
from graphhash.params.extract import ExtractParams
from graphhash.params.graph import GraphParams
from graphhash.params.hash import HashParams
from graphhash.runtime import precision, require_memory

log = logging.getLogger(__name__)


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
    learner = HashLearner(**params.hyperparameters(HashLearner))
    graph_input = GraphInput(graph.rho, learner.input_p, graph.nodes - 1) if learner.input == "graph" else None
    with open_features(features_path) as fs:  # rows read as they are needed, never the matrix and a copy
        fs.require_memory(None, 2, "every item's network inputs and the training rows")
        trainers = {modality: _trainer(fs, modality, neighbours_path, graph_input, params, learner, features_path,
                                       extract, manifest) for modality in fs.modalities}  # fmt: skip
        method = nrdh_method(filter_name)
        for g in bits:
            path = representations / f"{g}.h5"
            found = read_representations(path)
            z = found.values
            if found.ids != fs.ids_where(fs.train) or z.shape[1] < g:
                raise GraphhashError(f"{path}: does not match the training items of {features_path} at {g} bits")
            if learner.target == "representation" and z.shape[1] != g:
                raise GraphhashError(f"hash.target: representation fits fc(x) to the representations themselves, but "
                                     f"{path} holds {z.shape[1]} dimensions for {g} bits; set represent.latent: 0 or "
                                     "hash.target: rotated")  # fmt: skip
            targets = learner.targets(z, g)
            for modality, trainer in trainers.items():
                config = {"method": method, "bits": g, "modality": modality, "training": params.model_dump(),
                          "backbone": fs.attrs.get("backbone"),
                          "graph_input": graph_input.saved() if graph_input else None}  # fmt: skip
                network, history, found_codes, config = trainer.fit(targets, models, config)
                write_codes(code_file(codes, method, g, modality), split_codes(fs, found_codes, method, g, modality))
                save_model(models / str(g) / modality, network, HASH_MODELS[learner.network], config)
                write_csv(losses / f"{g}-{modality}.csv", history)


def _trainer(fs: FeatureSet, modality: str, neighbours_path: Path, graph_input: GraphInput | None,
             params: HashParams, learner: HashLearner, features_path: Path, extract: ExtractParams | None,
             manifest: Path | None) -> MlpTrainer | CnnTrainer:  # fmt: skip
    """The trainer of ``modality``'s hash network. Its items' kNN graphs, for ``hash.input: graph``, are the
    neighbours file's when the run has one modality; with several, the neighbours file compares pairs, and each
    modality's are searched among the training items' features of that modality."""
    neighbours = None
    if graph_input and len(fs.views) > 1:
        neighbours = nearest_training(fs.view(modality), fs.train, graph_input.neighbours)
    elif graph_input:
        neighbours = read_neighbours(neighbours_path, len(fs.ids), graph_input.neighbours)
    fs = fs.only(modality)
    if learner.network == "cnn":
        if extract is None or manifest is None:
            raise GraphhashError("hash.network: cnn needs the extract section and the manifest (the images)")
        cnn = CnnLearner(**params.cnn.hyperparameters(CnnLearner))
        return CnnTrainer(fs, features_path, Manifest.load(manifest), extract, params, learner, cnn, graph_input,
                          neighbours)  # fmt: skip
    return MlpTrainer(fs, learner, graph_input, neighbours)


class MlpTrainer:
    """``hash.network: mlp``: Table 2's head on the (graph-propagated) features.

    With graph input, every item's input is made once, a block of rows at a time, before any network is fitted:
    then the training items' features are let go, the network trains on its rows of those inputs (no copy), and
    the query and database items are encoded from them. Memory: the training rows and every item's inputs while
    the inputs are made, the inputs alone afterwards.
    """

    def __init__(self, fs: FeatureSet, learner: HashLearner, graph_input: GraphInput | None,
                 neighbours: Neighbours | None):  # fmt: skip
        self.fs, self.learner = fs, learner
        self.inputs = None
        if graph_input:
            training = TrainingSet(read_rows(fs.features, fs.train))
            self.inputs = graph_input.inputs(training, fs.features, neighbours)

    def fit(self, targets: Targets, models: Path, config: dict[str, Any]) -> tuple[HashNet, list, np.ndarray, dict]:
        fs = self.fs
        if self.inputs is None:
            network, history = self.learner.fit(torch.from_numpy(read_rows(fs.features, fs.train)), targets)
        else:
            network, history = self.learner.fit(torch.from_numpy(self.inputs), targets,
                                                torch.from_numpy(np.flatnonzero(fs.train)))  # fmt: skip
        config = {**config, **network.config}
        encoder = ItemEncoder(network, config)
        codes = np.zeros((len(fs.features), network.bits), dtype=bool)
        for part in PARTS:  # each part encoded on its own, as the code files always were, ENCODE_ROWS rows at a time
            rows = np.flatnonzero(getattr(fs, part))
            for start in range(0, len(rows), ENCODE_ROWS):
                chunk = rows[start : start + ENCODE_ROWS]
                if self.inputs is not None:
                    x = self.inputs[chunk]
                else:  # a contiguous range read at once, its chunk's rows picked from it
                    x = np.asarray(fs.features[chunk[0] : chunk[-1] + 1], dtype=np.float32)[chunk - chunk[0]]
                codes[chunk] = encoder.encode_inputs(x)
        return network, history, codes, config


class CnnTrainer:
    """``hash.network: cnn``: the run's backbone and Table 2's head trained on the training images
    (``graphhash.nrdh.cnn``); the frozen stages' outputs are computed once for every code length."""

    def __init__(self, fs: FeatureSet, features_path: Path, manifest: Manifest, extract: ExtractParams,
                 params: HashParams, learner: HashLearner, cnn: CnnLearner, graph_input: GraphInput | None,
                 neighbours: Neighbours | None):  # fmt: skip
        made_with = fs.attrs.get("backbone")
        if made_with != extract.backbone:
            raise GraphhashError(f"{features_path}: made with backbone {made_with}, but extract.backbone is "
                                 f"{extract.backbone}; rerun the extract stage (dvc repro)")  # fmt: skip
        source = open_source(manifest.source, manifest.path)
        if source.holds_vectors:
            raise GraphhashError(f"hash.network: cnn trains on images, but the {manifest.source} items are vectors")
        batch, size = cnn.batch_size, cnn.image_size
        require_memory(
            "hash.cnn.batch_size",
            2 * BACKBONES[extract.backbone].forward_bytes(batch, size),
            f"training on {batch:,} images of {size} x {size} ({extract.backbone}, with gradients)",
        )
        self.fs, self.features_path, self.extract, self.params = fs, features_path, extract, params
        self.learner, self.cnn = learner, cnn
        backbone = self._backbone()
        self.all = cnn.images(source.image, fs.ids, backbone.interpolation, learner.seed)
        self.train = cnn.images(source.image, fs.ids_where(fs.train), backbone.interpolation, learner.seed)
        self.graph = None
        if graph_input:
            training = TrainingSet(read_rows(fs.features, fs.train))
            own, context = graph_input.parts(training, fs.features, neighbours)
            self.graph = GraphParts(torch.from_numpy(own), torch.from_numpy(context))
        probe = HashCNN.build(backbone, 1, trainable=cnn.trainable, negative_slope=learner.negative_slope)
        self.cache = cnn.frozen_outputs(probe, self.all)
        log.info("hash: cnn on %s, %s, %d of %d backbone stages trained, augment %s", cnn.torch_device().type,
                 precision(cnn.torch_device()), cnn.trainable, len(backbone.stages()),
                 cnn.augment or "none")  # fmt: skip

    def _backbone(self) -> Backbone:
        """The pretrained backbone, afresh (training changes its weights in place)."""
        extract = self.extract
        return load_backbone(extract.backbone, extract.weights, extract.weights_path, self.cnn.image_size,
                             made_with=self.fs.attrs.get("weights"), features=str(self.features_path))  # fmt: skip

    def fit(self, targets: Targets, models: Path, config: dict[str, Any]) -> tuple[HashCNN, list, np.ndarray, dict]:
        fs, learner, cnn = self.fs, self.learner, self.cnn
        backbone = self._backbone()
        torch.manual_seed(learner.seed)
        model = HashCNN.build(backbone, targets.fit.shape[1], trainable=cnn.trainable,
                              negative_slope=learner.negative_slope)  # fmt: skip
        train_rows = torch.from_numpy(np.flatnonzero(fs.train))
        run = [self.params.model_dump(), self.train.ids, backbone.weights]
        resume = Resume(models, fingerprint(run, targets.fit.numpy(), targets.reference.numpy()))
        history = cnn.fit(model, self.train, targets, learner, resume=resume,
                          cache=None if self.cache is None else self.cache[train_rows],
                          graph=None if self.graph is None else self.graph[train_rows])  # fmt: skip
        codes = cnn.encode(model, self.all, cache=self.cache, graph=self.graph)
        resume.remove()
        config = {**config, "network": "cnn", "in_dim": backbone.dim, "hidden": list(model.head.hidden),
                  "negative_slope": learner.negative_slope, "dropout": model.head.dropout,
                  "weights": backbone.weights, "image_size": cnn.image_size, "trainable": cnn.trainable}  # fmt: skip
        return model.cpu(), history, codes, config
