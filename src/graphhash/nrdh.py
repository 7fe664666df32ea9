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

from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import torch

from graphhash.atomic import atomic_path, write_csv, write_json, write_state_dict
from graphhash.autoencoder import node_representations, train_autoencoder
from graphhash.codes import encode_splits, write_codes
from graphhash.errors import GraphhashError
from graphhash.features import read_features, read_strings, write_strings
from graphhash.hashnet import encode, save_hashnet, train_hashnet


def represent(
    features_path: Path, bits: int, params: SimpleNamespace, out: Path, model_stem: Path, losses: Path
) -> None:
    fs = read_features(features_path)
    train = torch.from_numpy(fs.features[fs.train])
    model, history = train_autoencoder(train, bits, params)
    z = node_representations(model, train, params).numpy()
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
) -> None:
    fs = read_features(features_path)
    with h5py.File(representations_path, "r") as f:
        z = f["representations"][()]
        ids = read_strings(f["ids"])
    if ids != fs.ids_where(fs.train) or z.shape[1] != bits:
        raise GraphhashError(f"{representations_path}: does not match the training items of {features_path}")
    model, history = train_hashnet(torch.from_numpy(fs.features[fs.train]), torch.from_numpy(z), params)
    write_codes(codes_path, encode_splits(fs, lambda x: encode(model, x), method, bits))
    save_hashnet(model, model_stem, extra={"training": vars(params), "backbone": fs.attrs.get("backbone")})
    write_csv(losses, history)
