"""Hash new queries the way a run hashed its own items: images or feature rows to packed codes.

A ``QueryHasher`` holds one saved hash network (``models/nrdh-<filter>/<bits>/<modality>``, either ``hash.network``) and
what its inputs need: the run's features file (its attributes say which backbone, weights and image size made
the features; its training items are the graph a query joins with ``hash.input: graph``) and params.yaml's
``extract`` section (the backbone's weights). ``graphhash search``, ``graphhash serve`` and
``graphhash encode`` hash through it.

- ``mlp``: an image is resized and embedded by the frozen backbone, as ``extract`` did; its features (or a
  given features row) are propagated over its nearest training items when the run did so; then the head.
- ``cnn``: an image is resized to the network's own image size and hashed end to end; with graph input its
  frozen-backbone features place it on the graph (its own weight and its neighbours' sum, Eq. 4).
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from graphhash.backbones import BACKBONES, Backbone, load_backbone
from graphhash.data.images import to_batch
from graphhash.errors import GraphhashError
from graphhash.files.codes import pack
from graphhash.files.features import read_features, read_features_attrs
from graphhash.graphs.knn import TrainingSet
from graphhash.nrdh import cnn
from graphhash.nrdh.hashnet import HashNet, encode
from graphhash.params.extract import ExtractParams
from graphhash.pipeline.extract import Encoder, resolve_device
from graphhash.pipeline.hash import load_hash_network


class QueryHasher:
    """One saved hash network with its run's features file and ``extract`` params; see the module's text."""

    def __init__(self, network: HashNet | cnn.HashCNN, config: dict[str, Any], features_path: Path,
                 extract: ExtractParams | None, device: str = "auto"):  # fmt: skip
        self.network, self.config, self.features_path = network, config, Path(features_path)
        self.features_attrs = read_features_attrs(features_path)
        self.extract, self.device = extract, device
        self.head = network.head if isinstance(network, cnn.HashCNN) else network
        self.modality = str(config["modality"])
        dims = json.loads(self.features_attrs["dims"])
        if self.modality not in dims:
            raise GraphhashError(f"{features_path}: holds the modalities {', '.join(dims)}, but the hash network "
                                 f"hashes {self.modality}; rerun the pipeline (dvc repro)")  # fmt: skip
        if int(dims[self.modality]) != self.head.config.in_dim:
            raise GraphhashError(f"{features_path}: {self.modality} features of {dims[self.modality]} dimensions, but "
                                 f"the hash network takes {self.head.config.in_dim}; rerun the pipeline (dvc "
                                 "repro)")  # fmt: skip

    @classmethod
    def open(cls, model: str | Path, features_path: str | Path, extract: ExtractParams | None,
             device: str = "auto") -> QueryHasher:  # fmt: skip
        network, config = load_hash_network(Path(model))
        return cls(network, config, Path(features_path), extract, device)

    @property
    def bits(self) -> int:
        return self.head.config.bits

    @cached_property
    def backbone(self) -> Backbone:
        """The run's backbone, loaded on first use: the features file's backbone and image size, the weights
        params.yaml's ``extract`` section names, checked against those the features were made with."""
        name, size = str(self.features_attrs.get("backbone")), int(self.features_attrs.get("image_size", 0))
        if self.extract is None or name not in BACKBONES:
            raise GraphhashError(f"{self.features_path}: made without a backbone ({name}); search by item id or "
                                 "by a features file instead of images")  # fmt: skip
        backbone = load_backbone(name, self.extract.weights, self.extract.weights_path, size)
        made_with = self.features_attrs.get("weights")
        if backbone.weights != made_with:
            raise GraphhashError(f"extract.weights: gives {backbone.weights}, but {self.features_path} was made with "
                                 f"{made_with}; set params.yaml's extract section back")  # fmt: skip
        return backbone

    @cached_property
    def encoder(self) -> Encoder:
        return Encoder(self.backbone, resolve_device(self.device))

    @cached_property
    def training(self) -> TrainingSet | None:
        """The training items' features, for hash networks whose input is a query's kNN graph."""
        if not self.config.get("graph_input"):
            return None
        fs = read_features(self.features_path)
        return TrainingSet(fs.view(self.modality)[fs.train])

    def embed(self, images: list[Image.Image]) -> np.ndarray:
        """Frozen-backbone features (n, D) of RGB images, as the extract stage made the run's."""
        size, interpolation = int(self.features_attrs["image_size"]), self.backbone.interpolation
        batch = torch.from_numpy(to_batch([np.asarray(img, dtype=np.uint8) for img in images], size, interpolation))
        return self.encoder([batch])[0]

    def encode_features(self, features: np.ndarray) -> np.ndarray:
        """Packed codes (n, B) of feature rows (n, D), as the run's hash stage made its queries' codes."""
        if isinstance(self.network, cnn.HashCNN):
            raise GraphhashError("the run's hash network is a CNN (hash.network: cnn): it hashes images, not "
                                 "features; give images or item ids")  # fmt: skip
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != self.head.config.in_dim:
            raise GraphhashError(f"features of shape {features.shape}: the hash network takes "
                                 f"{self.head.config.in_dim} dimensions")  # fmt: skip
        graph_input = self.config.get("graph_input")
        if graph_input:
            neighbours = self.training.nearest(features, graph_input["neighbours"])
            features = self.training.graph_inputs(features, neighbours, graph_input["rho"], graph_input["p"])
        return pack(encode(self.network, features))

    def encode_images(self, images: list[Image.Image], batch_size: int = 256) -> np.ndarray:
        """Packed codes (n, B) of RGB images, as the run's hash stage made its queries' codes."""
        if not isinstance(self.network, cnn.HashCNN):
            return np.concatenate([self.encode_features(self.embed(images[s : s + batch_size]))
                                   for s in range(0, len(images), batch_size)])  # fmt: skip
        kind = BACKBONES[self.config["backbone"]]
        device = cnn.Device.of(resolve_device(self.device), 0, kind)
        graph_input = self.config.get("graph_input")
        codes = []
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            size = int(self.config["image_size"])
            arrays = [np.asarray(img, dtype=np.uint8) for img in chunk]
            pixels = torch.from_numpy(to_batch(arrays, size, kind.interpolation))
            parts = ()
            if graph_input:  # the frozen backbone's features place the query on the graph
                features = self.embed(chunk)
                neighbours = self.training.nearest(features, graph_input["neighbours"])
                own, context = self.training.graph_parts(features, neighbours, graph_input["rho"], graph_input["p"])
                parts = (torch.from_numpy(own), torch.from_numpy(context))
            codes.append(pack(cnn.hash_inputs(self.network, pixels, device, *parts)))
        return np.concatenate(codes)
