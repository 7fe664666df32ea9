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
from graphhash.errors import GraphhashError
from graphhash.features import write_features
from graphhash.hashnet import encode, load_hashnet
from graphhash.neighbours import write_neighbours
from graphhash.nrdh import hash_codes, represent

REPRESENT = SimpleNamespace(filter="gcn", batch_nodes=10, rho=0.4, p=0.8, hidden=32, alpha=0.999, beta=0.001,
                            epochs=3, lr=0.001, graphs_per_step=1, seed=0, gcn_propagation="nrdh", cheby_order=3,
                            lanczos_steps=6, spectral_basis="bspline", spectral_knots=6, graph="batch")  # fmt: skip
HASH = SimpleNamespace(mu=0.8, omega=0.2, epochs=5, batch_size=64, lr=0.001, negative_slope=0.2, seed=0,
                       input="features", input_p=0.3, target="representation")  # fmt: skip


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


def run_graph_nrdh(features: Path, out: Path, bits: int, input_p: float) -> Path:
    """The kNN configuration: kNN graphs, graph inputs for the hash network, rotated targets."""
    write_neighbours(features, REPRESENT.batch_nodes - 1, out / "neighbours.h5")
    graph = SimpleNamespace(**{**vars(REPRESENT), "graph": "knn", "graphs_per_step": 8})
    hash_params = SimpleNamespace(**{**vars(HASH), "input": "graph", "input_p": input_p, "target": "rotated"})
    represent(features, bits, graph, out / "repr.h5", out / "gcnae", out / "represent.csv", out / "neighbours.h5")
    hash_codes(features, out / "repr.h5", bits, hash_params, "nrdh-gcn", out / "codes.h5", out / "nrdh",
               out / "hash.csv", graph, out / "neighbours.h5")  # fmt: skip
    return out


def test_graph_input_with_p_1_is_the_plain_features(digits_features, tmp_path):
    """hash.input: graph with input_p = 1 keeps every item's own features, so the codes equal those of
    hash.input: features fitted to the same representations."""
    out = run_graph_nrdh(digits_features, tmp_path, bits=8, input_p=1.0)
    plain = SimpleNamespace(**{**vars(HASH), "target": "rotated"})
    hash_codes(digits_features, out / "repr.h5", 8, plain, "nrdh-gcn", out / "plain.h5", out / "plain",
               out / "plain.csv")  # fmt: skip
    assert (out / "codes.h5").read_bytes() == (out / "plain.h5").read_bytes()


def test_graph_input_codes_reproduced_by_the_encode_command(digits_features, tmp_path):
    """A model trained on graph inputs re-encodes through `graphhash encode`, which searches the neighbours
    itself, to the stage's codes; and the kNN configuration separates classes better than chance."""
    out = run_graph_nrdh(digits_features, tmp_path, bits=16, input_p=0.3)
    dest = tmp_path / "new-codes.npy"
    subprocess.run([sys.executable, "-m", "graphhash.cli", "encode", str(out / "nrdh"), str(digits_features),
                    str(dest)], check=True, capture_output=True)  # fmt: skip
    codes = read_codes(out / "codes.h5")
    with h5py.File(digits_features, "r") as f:
        query, database = f["query"][()], f["database"][()]
    np.testing.assert_array_equal(np.load(dest)[query], codes.query)
    np.testing.assert_array_equal(np.load(dest)[database], codes.database)
    q, d = unpack(codes.query, 16), unpack(codes.database, 16)
    nearest = [np.lexsort((np.arange(len(d)), (q[i] != d).sum(1)))[:10] for i in range(len(q))]
    precision = np.mean([np.mean(codes.database_labels[n] == codes.query_labels[i]) for i, n in enumerate(nearest)])
    assert precision > 0.3  # random codes give about 0.1


def test_knn_representations_need_the_neighbours_file(digits_features, tmp_path):
    graph = SimpleNamespace(**{**vars(REPRESENT), "graph": "knn"})
    with pytest.raises(GraphhashError, match=r"represent\.graph: knn needs the neighbours file"):
        represent(digits_features, 8, graph, tmp_path / "repr.h5", tmp_path / "gcnae", tmp_path / "represent.csv")
    assert not list(tmp_path.iterdir())
