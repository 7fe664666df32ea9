"""The ``baselines@<bits>`` stage: every hasher of ``baselines.methods``, fitted on the training features."""

from __future__ import annotations

from pathlib import Path

from graphhash.evaluation.baselines import BASELINES
from graphhash.files.codes import code_file, encode_splits, write_codes
from graphhash.files.features import open_features, read_rows
from graphhash.params.baselines import BaselinesParams


def baseline_codes(features_path: Path, bits: int, params: BaselinesParams, out: Path) -> None:
    """Write ``<out>/<method>-<bits>.h5`` for every method."""
    with open_features(features_path) as fs:  # the training rows in memory, float32; the rest read to be encoded
        train = read_rows(fs.features, fs.train)
        for method in params.methods:
            hasher = BASELINES[method](bits, params.seed, **params.options(method)).fit(train)
            write_codes(code_file(out, method, bits), encode_splits(fs, hasher.encode, method, bits))
