"""The ``baselines@<bits>`` stage: every hasher of ``baselines.methods``, fitted on the training features.

A single-modality hasher (LSH, ITQ, ...) is fitted on each modality of the run alone: on paired data its codes of two
modalities share nothing, the floor of cross-modal ranking. A cross-modal hasher (CVH, CMFH, CCA-ITQ, GCH) is fitted
on every modality's training features at once (and their labels, for the supervised GCH), into one Hamming space.
"""

from __future__ import annotations

from pathlib import Path

from graphhash.errors import GraphhashError
from graphhash.files.codes import code_file, encode_splits, write_codes
from graphhash.files.features import open_features, read_rows
from graphhash.hashers import HASHERS
from graphhash.params.baselines import BaselinesParams


def baseline_codes(features_path: Path, bits: int, params: BaselinesParams, out: Path) -> None:
    """Write ``<out>/<method>-<bits>-<modality>.h5`` for every method and modality."""
    with open_features(features_path) as fs:  # the training rows in memory, float32; the rest read to be encoded
        supervised = [method for method in params.methods if HASHERS[method].supervised]
        if supervised and fs.labels.ndim == 2 and fs.labels.shape[1] == 0:  # unlabelled items (before any is fitted)
            raise GraphhashError(f"baselines.methods: {', '.join(supervised)} needs labels, but the items of "
                                 f"{features_path} have none (prepare.labels is none, or source "
                                 f"'{fs.attrs.get('source')}' has no labels of its own); drop it, or give labels in "
                                 "a file (prepare.labels: labels.csv)")  # fmt: skip
        fs.require_memory(fs.train, 3, "the training rows and a float64 copy of them")
        train = {modality: read_rows(view, fs.train) for modality, view in fs.views.items()}
        for method in params.methods:
            cls, options = HASHERS[method], params.options(method)
            if cls.crossmodal:
                if len(train) < 2:
                    raise GraphhashError(f"baselines.methods: {method} hashes across modalities, but {features_path} "
                                         f"holds one ({', '.join(train)})")  # fmt: skip
                hasher = cls(bits, params.seed, **options)
                hasher.fit(train, fs.labels[fs.train]) if cls.supervised else hasher.fit(train)
                encoders = {modality: _in(hasher, modality) for modality in train}
            else:
                encoders = {modality: cls(bits, params.seed, **options).fit(x).encode for modality, x in train.items()}
            for modality, encode in encoders.items():
                write_codes(code_file(out, method, bits, modality), encode_splits(fs, encode, method, bits, modality))


def _in(hasher, modality: str):
    """The cross-modal ``hasher``'s encoding of ``modality``'s features."""
    return lambda x: hasher.encode(x, modality)
