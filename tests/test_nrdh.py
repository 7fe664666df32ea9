"""The NRDH stages end to end on real data (scikit-learn's digits as 64-d features): outputs, codes, determinism."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
from sklearn.datasets import load_digits

from graphhash.codes import read_codes, unpack
from graphhash.features import write_features
from graphhash.hashnet import encode, load_hashnet
from graphhash.nrdh import hash_codes, represent

REPRESENT = SimpleNamespace(filter="gcn", batch_nodes=10, rho=0.4, p=0.8, hidden=32, alpha=0.999, beta=0.001,
                            epochs=3, lr=0.001, graphs_per_step=1, seed=0, gcn_propagation="nrdh", cheby_order=3,
                            lanczos_steps=6, spectral_basis="bspline", spectral_knots=6)  # fmt: skip
HASH = SimpleNamespace(mu=0.8, omega=0.2, epochs=5, batch_size=64, lr=0.001, negative_slope=0.2, seed=0)


@pytest.fixture(scope="module")
def digits_features(tmp_path_factory) -> Path:
    """The digits' pixels as a features file: 100 queries, 500 database = training items."""
    digits = load_digits()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(digits.target))[:600]
    query = np.zeros(600, dtype=bool)
    query[:100] = True
    path = tmp_path_factory.mktemp("features") / "features.h5"
    write_features(
        path,
        [digits.data[order].astype(np.float32)],
        dim=64,
        ids=[f"digits/{i:04d}" for i in order],
        labels=digits.target[order],
        masks={"query": query, "database": ~query, "train": ~query},
        attrs={"backbone": "pixels"},
    )
    return path


def run_nrdh(features: Path, out: Path, bits: int) -> Path:
    represent(features, bits, REPRESENT, out / "repr.h5", out / "gcnae", out / "represent.csv")
    hash_codes(features, out / "repr.h5", bits, HASH, "nrdh-gcn", out / "codes.h5", out / "nrdh", out / "hash.csv")
    return out


def test_codes_file_contract(digits_features, tmp_path):
    out = run_nrdh(digits_features, tmp_path, bits=12)
    codes = read_codes(out / "codes.h5")
    assert (codes.method, codes.bits) == ("nrdh-gcn", 12)
    assert codes.query.dtype == np.uint8 and codes.query.shape == (100, 2) and codes.database.shape == (500, 2)
    assert len(codes.query_ids) == 100 and not set(codes.query_ids) & set(codes.database_ids)
    # the packed padding bits beyond bit 12 are zero
    assert not (codes.query[:, 1] & 0x0F).any() and not (codes.database[:, 1] & 0x0F).any()
    with h5py.File(out / "repr.h5", "r") as f:
        assert f["representations"].shape == (500, 12)
    # the saved model re-encodes the database to the very same codes
    model = load_hashnet(out / "nrdh")
    with h5py.File(digits_features, "r") as f:
        database = f["features"][()][f["database"][()]]
    np.testing.assert_array_equal(encode(model, database), unpack(codes.database, 12))
    for name in ("represent.csv", "hash.csv"):
        lines = (out / name).read_text().splitlines()
        assert lines[0].startswith("epoch,loss") and len(lines) == 1 + {"represent.csv": 3, "hash.csv": 5}[name]


def test_codes_separate_classes_far_better_than_chance(digits_features, tmp_path):
    """Retrieval by Hamming distance (brute force, ties by index) beats random codes by a wide margin."""
    codes = read_codes(run_nrdh(digits_features, tmp_path, bits=16) / "codes.h5")
    q, d = unpack(codes.query, 16), unpack(codes.database, 16)
    precision_at_10 = []
    for i in range(len(q)):
        nearest = np.lexsort((np.arange(len(d)), (q[i] != d).sum(1)))[:10]
        precision_at_10.append(np.mean(codes.database_labels[nearest] == codes.query_labels[i]))
    assert np.mean(precision_at_10) > 0.3  # random codes give about 0.1 on ten balanced classes


def test_two_runs_give_byte_identical_code_files(digits_features, tmp_path):
    first = run_nrdh(digits_features, tmp_path / "a", bits=8)
    second = run_nrdh(digits_features, tmp_path / "b", bits=8)
    for name in ("codes.h5", "repr.h5", "nrdh.pt", "gcnae.pt"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_encode_command_writes_packed_codes(digits_features, tmp_path):
    out = run_nrdh(digits_features, tmp_path, bits=8)
    dest = tmp_path / "new-codes.npy"
    subprocess.run([sys.executable, "-m", "graphhash.cli", "encode", str(out / "nrdh"), str(digits_features),
                    str(dest)], check=True, capture_output=True)  # fmt: skip
    codes = read_codes(out / "codes.h5")
    with h5py.File(digits_features, "r") as f:
        database = f["database"][()]
    np.testing.assert_array_equal(np.load(dest)[database], codes.database)
