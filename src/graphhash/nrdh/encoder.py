"""Hashing items exactly as the run hashed its own: the saved hash network and ``ItemEncoder``.

A trained hash network (either ``hash.network``) is saved by the hash stage as a model folder
(``graphhash.files.models``) whose configuration says how to rebuild it and how its inputs were made: the modality
it hashes, the backbone that made its features, and with ``hash.input: graph`` the kNN graph every item joins
(``GraphInput``). ``load_hash_network`` rebuilds it.

``ItemEncoder`` turns images or feature rows into codes as the hash stage made the codes of the run's own items:

- ``mlp``: an image is resized and embedded by the frozen backbone, as ``extract`` did; its features (or a given
  features row) are propagated over its nearest training items when the run did so (Eq. 4); then the head.
- ``cnn``: an image is resized to the network's own image size and hashed end to end; with graph input its
  frozen-backbone features place it on the graph (its own weight and its neighbours' sum, Eq. 4).

The hash stage encodes its query and database items with it, and ``graphhash encode``, ``search`` and ``serve``
encode new items.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from graphhash.backbones import BACKBONES, load_backbone
from graphhash.errors import GraphhashError
from graphhash.files.features import FeatureSet, read_features, read_features_attrs, require_finite
from graphhash.files.models import CONFIG, load_model, load_weights
from graphhash.files.neighbours import Neighbours
from graphhash.graphs.knn import TrainingSet
from graphhash.nrdh.cnn.model import HashCNN
from graphhash.nrdh.hashnet import HashNet
from graphhash.pixels import to_batch
from graphhash.runtime import resolve_device

HASH_MODELS = {"mlp": "nrdh-hashnet", "cnn": "nrdh-hashcnn"}  # the model kind saved for each hash.network
IMAGE_BATCH = 256  # images hashed at a time
# Feature rows hashed at a time: a million rows at once held their graph inputs and the network's activations
# together (the hash stage peaked at 22 GiB on the 1M mixture). A row's code depends on that row alone, and a part
# of up to this many rows (every part of the digits and CIFAR-10 runs) is one block, as before.
ENCODE_ROWS = 65_536


@dataclass(frozen=True)
class GraphInput:
    """``hash.input: graph``: an item's input is its features propagated over its kNN graph among the training
    items, the item and its ``neighbours`` nearest, linked where their cosine exceeds ``rho`` (Eq. 3), the item
    keeping ``p`` for itself (Eq. 4)."""

    rho: float
    p: float
    neighbours: int

    @classmethod
    def of(cls, saved: dict[str, Any] | None) -> GraphInput | None:
        """The graph input a model's configuration records (None: the model hashes features as they are)."""
        return cls(float(saved["rho"]), float(saved["p"]), int(saved["neighbours"])) if saved else None

    def saved(self) -> dict[str, Any]:
        return asdict(self)

    def inputs(self, training: TrainingSet, features: np.ndarray, neighbours: Neighbours | None = None) -> np.ndarray:
        """Every row's features propagated over its kNN graph (``TrainingSet.graph_inputs``); ``neighbours``: the
        rows' nearest training items when known (the neighbours file), else searched among them."""
        found = neighbours if neighbours is not None else training.nearest(features, self.neighbours)
        return training.graph_inputs(features, found, self.rho, self.p)

    def parts(
        self, training: TrainingSet, features: np.ndarray, neighbours: Neighbours | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``inputs`` in two parts, each row's own weight (N,) and its neighbours' weighted sum (N, D), for the CNN,
        which replaces the row's features with its own embedding of the image."""
        found = neighbours if neighbours is not None else training.nearest(features, self.neighbours)
        return training.graph_parts(features, found, self.rho, self.p)


def load_hash_network(folder: str | Path) -> tuple[HashNet | HashCNN, dict[str, Any]]:
    """A saved hash network (either ``hash.network``) in eval mode, and its configuration."""
    state, config = load_model(folder, tuple(HASH_MODELS.values()), stage="hash")
    try:
        head = HashNet(config["in_dim"], config["bits"], negative_slope=config["negative_slope"],
                       dropout=config["dropout"], hidden=tuple(config["hidden"]))  # fmt: skip
        network: HashNet | HashCNN = head
        if config["model"] == HASH_MODELS["cnn"]:  # the backbone's shape; every weight comes from the file
            backbone = load_backbone(config["backbone"], "none", "", config["image_size"])
            network = HashCNN(backbone, config["trainable"], head)
    except (KeyError, TypeError, ValueError) as exc:
        raise GraphhashError(
            f"{folder}: the model's configuration is incomplete ({exc!r}); rerun the hash stage"
        ) from None
    load_weights(network, state, str(folder))
    return network.eval(), config


def find_hash_network(folder: str | Path, method: str, bits: int, modality: str) -> Path:
    """The folder under ``folder`` (the run's models) of the hash network of ``method`` at ``bits`` bits for
    ``modality``, found by its configuration (``model.json``), not by its name."""
    for config_path in sorted(Path(folder).rglob(CONFIG)):
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        kind = (config.get("model"), config.get("method"), config.get("bits"), config.get("modality"))
        if kind[0] in HASH_MODELS.values() and kind[1:] == (method, bits, modality):
            return config_path.parent
    raise GraphhashError(f"{folder}: no hash network of {method} at {bits} bits for {modality} (the hash stage "
                         "writes it; dvc repro)")  # fmt: skip


class RunBackbone:
    """The backbone that made a run's features: the features file's backbone and image size, with the weights asked
    for (params.yaml's ``extract.weights``, ``extract.weights_path``), which must be those the file records. What a
    query image, an added image and the CNN's graph placement are embedded with.

    Args:
        features: the run's features file (named by errors); attrs: its attributes.
        weights, weights_path: the weights asked for.
        device: where images are embedded.
    """

    def __init__(self, features: Path | None, attrs: dict[str, Any], weights: str, weights_path: str,
                 device: torch.device):  # fmt: skip
        name, self.size = str(attrs.get("backbone")), int(attrs.get("image_size", 0))
        if name not in BACKBONES:
            raise GraphhashError(f"{features}: made without a backbone ({name}); search by item id or by a features "
                                 "file instead of images")  # fmt: skip
        self.model = load_backbone(name, weights, weights_path, self.size, made_with=attrs.get("weights"),
                                   features=str(features)).to(device)  # fmt: skip
        self.interpolation, self.device = self.model.interpolation, device
        self.settings = {"backbone": name, "weights": str(attrs.get("weights")), "image_size": self.size}

    def embed(self, images: list[np.ndarray]) -> np.ndarray:
        """Features (n, D) float32 of RGB images (uint8 (h, w, 3) arrays of any size), as ``extract`` made the run's."""
        return self.model.embed(torch.from_numpy(to_batch(images, self.size, self.interpolation)), self.device)


class ItemEncoder:
    """A trained hash network and what its inputs need; see the module's text. Built by the hash stage from the
    network it trained, or by ``load`` from a run.

    Args:
        network: the hash network, eval mode.
        config: its saved configuration (``modality``, ``graph_input``, ``image_size`` for a CNN...).
        features: the run's features file: its attributes name the backbone, weights and image size that made
            the features, and its training items are the graph's.
        weights, weights_path: the backbone's weights, as params.yaml's ``extract`` section names them (checked
            against those the features were made with).
        device: where images are embedded and hashed (``auto``, ``cpu``, ``cuda``).
        training: the run's training items and their ids (``run_training``) when already loaded by another encoder of
            the same run (every code length's network places items on the same graph).

    >>> encoder = ItemEncoder.load("models/nrdh-gcn/64/image", "data/features.h5")  # doctest: +SKIP
    >>> encoder.encode_features(np.zeros((2, 1280), dtype=np.float32)).shape  # doctest: +SKIP
    (2, 64)
    """

    def __init__(
        self,
        network: HashNet | HashCNN,
        config: dict[str, Any],
        *,
        features: str | Path | None = None,
        weights: str = "default",
        weights_path: str = "",
        device: str = "auto",
        training: tuple[TrainingSet, list[str] | None] | None = None,
    ):
        self.network, self.config = network, config
        if training is not None:
            self.__dict__["run_training"] = training  # the cached property, already known
        self.head = network.head if isinstance(network, HashCNN) else network
        self.modality = str(config.get("modality", "image"))
        self.graph = GraphInput.of(config.get("graph_input"))
        self.features_path = None if features is None else Path(features)
        self.weights, self.weights_path, self.device_name = weights, weights_path, device

    @classmethod
    def load(cls, folder: str | Path, features: str | Path, *, weights: str = "default", weights_path: str = "",
             device: str = "auto", training: tuple[TrainingSet, list[str] | None] | None = None,
             ) -> ItemEncoder:  # fmt: skip
        """The network saved in ``folder``, for the run whose features file is ``features``."""
        network, config = load_hash_network(folder)
        encoder = cls(network, config, features=features, weights=weights, weights_path=weights_path, device=device,
                      training=training)  # fmt: skip
        dims = json.loads(encoder.features_attrs["dims"])
        if encoder.modality not in dims:
            raise GraphhashError(f"{features}: holds the modalities {', '.join(dims)}, but the hash network "
                                 f"hashes {encoder.modality}; rerun the pipeline (dvc repro)")  # fmt: skip
        if int(dims[encoder.modality]) != encoder.head.in_dim:
            raise GraphhashError(f"{features}: {encoder.modality} features of {dims[encoder.modality]} dimensions, "
                                 f"but the hash network takes {encoder.head.in_dim}; rerun the pipeline (dvc "
                                 "repro)")  # fmt: skip
        return encoder

    @property
    def bits(self) -> int:
        return self.head.bits

    @cached_property
    def features_attrs(self) -> dict[str, Any]:
        if self.features_path is None:
            raise GraphhashError("the run's features file is needed (its backbone and training items)")
        return read_features_attrs(self.features_path)

    @cached_property
    def run_training(self) -> tuple[TrainingSet, list[str] | None]:
        """The run's training items' features in the network's modality (the graph a query joins), and their ids."""
        if self.features_path is None:
            raise GraphhashError("the run's features file is needed (its training items form the kNN graph)")
        fs = read_features(self.features_path)
        return TrainingSet(fs.view(self.modality)[fs.train]), fs.ids_where(fs.train)

    @property
    def training(self) -> TrainingSet:
        return self.run_training[0]

    @cached_property
    def device(self) -> torch.device:
        return resolve_device(self.device_name, "--device")

    @cached_property
    def backbone(self) -> RunBackbone:
        """The run's backbone, loaded on first use (``RunBackbone``)."""
        return RunBackbone(self.features_path, self.features_attrs, self.weights, self.weights_path, self.device)

    def neighbours(self, features: np.ndarray, ids: list[str] | None = None) -> Neighbours:
        """The rows' nearest training items. A row whose id (``ids``) is a training item's leaves itself out, as that
        item did in the run: a training item is never its own neighbour."""
        training, training_ids = self.run_training
        own = None
        if ids is not None and training_ids is not None:
            rows = {item_id: row for row, item_id in enumerate(training_ids)}
            own = np.array([rows.get(item_id, -1) for item_id in ids], dtype=np.int64)
        return training.nearest(features, self.graph.neighbours, own)

    def encode_features(
        self,
        features: np.ndarray,
        *,
        neighbours: Neighbours | None = None,
        ids: list[str] | None = None,
        where: str = "features",
    ) -> np.ndarray:
        """Bool codes (n, bits) of feature rows (n, D) in the network's modality (``mlp``); ``neighbours``: their
        nearest training items when known, else searched (``ids`` name rows that are items of the run). Rows holding
        a NaN or an infinity are refused, naming ``where`` (the file they came from) and the first such row."""
        if isinstance(self.network, HashCNN):
            raise GraphhashError("the run's hash network is a CNN (hash.network: cnn): it hashes images, not "
                                 "features; give images or item ids")  # fmt: skip
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != self.head.in_dim:
            raise GraphhashError(f"features of shape {features.shape}: the hash network takes {self.head.in_dim} "
                                 "dimensions")  # fmt: skip
        require_finite(features, where)
        codes = np.zeros((len(features), self.bits), dtype=bool)
        for start in range(0, len(features), ENCODE_ROWS):  # row by row, so blocks give the codes of the whole
            block = slice(start, start + ENCODE_ROWS)
            x = features[block]
            if self.graph:
                found = neighbours[block] if neighbours is not None else self.neighbours(x, ids and ids[block])
                x = self.graph.inputs(self.training, x, found)
            codes[block] = self.encode_inputs(x)
        return codes

    def encode_inputs(self, inputs: np.ndarray) -> np.ndarray:
        """Bool codes (n, bits) of rows that are already the network's inputs (n, D): the features themselves, or
        with graph input the features propagated over their kNN graphs (``GraphInput.inputs``), as the hash stage
        makes them once for every item of the run."""
        return self.network.codes(inputs)

    def encode_file(self, path: str | Path) -> tuple[np.ndarray, FeatureSet]:
        """Bool codes (N, bits) of every row of a features file in the network's modality (``mlp``), and the file;
        rows of items of the run (by id) join the graph as they did in the run."""
        fs = read_features(path)
        view = fs.view(self.modality)
        if view.shape[1] != self.head.in_dim:
            raise GraphhashError(f"{path}: {self.modality} features of {view.shape[1]} dimensions, but the hash "
                                 f"network takes {self.head.in_dim} (features of another backbone?)")  # fmt: skip
        return self.encode_features(view, ids=fs.ids, where=str(path)), fs

    def embed(self, images: list[np.ndarray]) -> np.ndarray:
        """Frozen-backbone features (n, D) of RGB images (uint8 arrays of any size), as ``extract`` made the run's."""
        return self.backbone.embed(images)

    def encode_images(self, images: list[np.ndarray]) -> np.ndarray:
        """Bool codes (n, bits) of RGB images (uint8 (h, w, 3) arrays of any size), as the run's hash stage made its
        items' codes."""
        codes = [np.zeros((0, self.bits), dtype=bool)]
        for start in range(0, len(images), IMAGE_BATCH):
            chunk = images[start : start + IMAGE_BATCH]
            if not isinstance(self.network, HashCNN):
                codes.append(self.encode_features(self.embed(chunk)))
                continue
            kind = BACKBONES[self.config["backbone"]]
            pixels = torch.from_numpy(to_batch(chunk, int(self.config["image_size"]), kind.interpolation))
            parts = ()
            if self.graph:  # the frozen backbone's features place the image on the graph
                own, context = self.graph.parts(self.training, self.embed(chunk))
                parts = (torch.from_numpy(own), torch.from_numpy(context))
            codes.append(self.network.codes(pixels, self.device, *parts))
        return np.concatenate(codes)
