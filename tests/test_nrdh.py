"""The NRDH stages end to end on real data (scikit-learn's digits as 64-d features): outputs, codes, determinism."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from sklearn.datasets import load_digits

from graphhash.errors import GraphhashError
from graphhash.files.codes import read_codes, unpack
from graphhash.files.features import write_features
from graphhash.files.representations import read_representations
from graphhash.nrdh.encoder import ItemEncoder, load_hash_network
from graphhash.params.graph import GraphParams
from graphhash.params.hash import HashParams
from graphhash.params.represent import RepresentParams
from graphhash.pipeline.hash import hash_codes
from graphhash.pipeline.neighbours import find_neighbours
from graphhash.pipeline.represent import represent

# 500 training items: 50 batch graphs of 10 nodes an epoch at one graph a step, 7 batches of 64 for the hash network.
REPRESENT = RepresentParams(hidden=32, latent=0, alpha=0.999, beta=0.001, steps=3 * 50, lr=0.001, graphs_per_step=1,
                            seed=0, gcn={"propagation": "nrdh", "p": 0.8})  # fmt: skip
GRAPH = GraphParams(kind="batch", nodes=10, rho=0.4)
HASH = HashParams(mu=0.8, omega=0.2, steps=5 * 7, batch_size=64, lr=0.001, negative_slope=0.2, seed=0,
                  input="features", input_p=0.3, target="representation")  # fmt: skip

# Small networks run on one thread: on a busy machine intra-op threads only wait for each other.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


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
        [{"image": digits.data[order].astype(np.float32)}],
        dims={"image": 64},
        ids=[f"digits/{i:04d}" for i in order],
        labels=digits.target[order],
        masks={"query": query, "database": ~query, "train": ~query},
        attrs={"backbone": "pixels"},
    )
    return path


def represent_one(features, neighbours, bits, params, graph, *, out: Path, model: Path, losses: Path) -> None:
    """The represent stage's function at one code length, its three outputs moved to the paths given."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        work = Path(tmp)
        represent(features, neighbours, "gcn", [bits], params, graph, out=work / "r", models=work / "m",
                  losses=work / "l")  # fmt: skip
        (work / "r" / f"{bits}.h5").replace(out)
        (work / "m" / str(bits)).replace(model)
        (work / "l" / f"{bits}.csv").replace(losses)


def hash_one(features, neighbours, representations, bits, params, graph, *, codes: Path, model: Path, losses: Path):
    """The hash stage's function at one code length, from one representations file, outputs at the paths given."""
    codes.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=codes.parent) as tmp:
        work = Path(tmp)
        (work / "z").mkdir()
        shutil.copy(representations, work / "z" / f"{bits}.h5")
        hash_codes(features, neighbours, work / "z", "gcn", [bits], params, graph, codes=work / "c", models=work / "m",
                   losses=work / "l")  # fmt: skip
        (work / "c" / f"nrdh-gcn-{bits}-image.h5").replace(codes)
        (work / "m" / str(bits) / "image").replace(model)
        (work / "l" / f"{bits}-image.csv").replace(losses)


def changed(params, **updates):
    """A copy of a params section with some values changed, validated like a params file."""
    return type(params).model_validate(params.model_dump() | updates)


def run_nrdh(features: Path, out: Path, bits: int) -> Path:
    """The paper's configuration: batch graphs, plain features in, the representations as targets."""
    neighbours = out / "neighbours.h5"  # not read: batch graphs and hash.input: features need no neighbours
    represent_one(features, neighbours, bits, REPRESENT, GRAPH, out=out / "repr.h5", model=out / "gcnae",
              losses=out / "represent.csv")  # fmt: skip
    hash_one(features, neighbours, out / "repr.h5", bits, HASH, GRAPH, codes=out / "codes.h5",
               model=out / "nrdh", losses=out / "hash.csv")  # fmt: skip
    return out


def test_codes_file_contract(digits_features, tmp_path):
    out = run_nrdh(digits_features, tmp_path, bits=12)
    codes = read_codes(out / "codes.h5")
    assert (codes.method, codes.bits) == ("nrdh-gcn", 12)
    assert codes.query.dtype == np.uint8 and codes.query.shape == (100, 2) and codes.database.shape == (500, 2)
    assert len(codes.query_ids) == 100 and not set(codes.query_ids) & set(codes.database_ids)
    # the packed padding bits beyond bit 12 are zero
    assert not (codes.query[:, 1] & 0x0F).any() and not (codes.database[:, 1] & 0x0F).any()
    found = read_representations(out / "repr.h5")
    assert found.values.shape == (500, 12) and found.filter == "gcn"
    assert found.ids == list(codes.database_ids)  # the training items are the database here
    # the saved model re-encodes the database to the very same codes
    model, _ = load_hash_network(out / "nrdh")
    with h5py.File(digits_features, "r") as f:
        mask = f["database"][()]
        database = f["features/image"][()][mask]
    np.testing.assert_array_equal(model.codes(database), unpack(codes.database, 12))
    np.testing.assert_array_equal(
        ItemEncoder.load(out / "nrdh", digits_features).encode_file(digits_features)[0][mask],
        unpack(codes.database, 12),
    )
    # one loss record per epoch: 150 steps of 50 an epoch, 35 steps of 7 an epoch
    for name, header, epochs in [("represent.csv", "epoch,step,steps,loss", 3), ("hash.csv", "epoch,step,loss", 5)]:
        lines = (out / name).read_text().splitlines()
        assert lines[0].startswith(header) and len(lines) == 1 + epochs, name
    assert (out / "gcnae" / "model.pt").is_file() and (out / "nrdh" / "model.json").is_file()


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
    for name in (
        "codes.h5",
        "repr.h5",
        "nrdh/model.pt",
        "nrdh/model.json",
        "gcnae/model.pt",
        "gcnae/model.json",
        "represent.csv",
        "hash.csv",
    ):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def encode_command(model: Path, features: Path, dest: Path) -> None:
    """`graphhash encode MODEL FEATURES DEST` in a fresh interpreter, torch on one thread as in these tests."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "graphhash.cli", "encode", str(model), str(features), str(dest)],
                   check=True, capture_output=True, env=env)  # fmt: skip


def test_encode_command_writes_packed_codes(digits_features, tmp_path):
    out = run_nrdh(digits_features, tmp_path, bits=8)
    dest = tmp_path / "new-codes.npy"
    encode_command(out / "nrdh", digits_features, dest)
    codes = read_codes(out / "codes.h5")
    with h5py.File(digits_features, "r") as f:
        database = f["database"][()]
    np.testing.assert_array_equal(np.load(dest)[database], codes.database)


def run_graph_nrdh(features: Path, out: Path, bits: int, input_p: float) -> Path:
    """The kNN configuration: kNN graphs, graph inputs for the hash network, rotated targets."""
    graph = GraphParams(kind="knn", nodes=GRAPH.nodes, rho=GRAPH.rho)
    find_neighbours(features, graph, out / "neighbours.h5")
    knn = changed(REPRESENT, graphs_per_step=8, steps=3 * 63)  # 500 graphs, 8 a step
    hash_params = changed(HASH, input="graph", input_p=input_p, target="rotated")
    represent_one(features, out / "neighbours.h5", bits, knn, graph, out=out / "repr.h5", model=out / "gcnae",
              losses=out / "represent.csv")  # fmt: skip
    hash_one(features, out / "neighbours.h5", out / "repr.h5", bits, hash_params, graph,
               codes=out / "codes.h5", model=out / "nrdh", losses=out / "hash.csv")  # fmt: skip
    return out


def test_graph_input_with_p_1_is_the_plain_features(digits_features, tmp_path):
    """hash.input: graph with input_p = 1 keeps every item's own features, so the codes equal those of
    hash.input: features fitted to the same representations."""
    out = run_graph_nrdh(digits_features, tmp_path, bits=8, input_p=1.0)
    plain = changed(HASH, target="rotated")
    hash_one(digits_features, out / "neighbours.h5", out / "repr.h5", 8, plain, GRAPH,
               codes=out / "plain.h5", model=out / "plain", losses=out / "plain.csv")  # fmt: skip
    assert (out / "codes.h5").read_bytes() == (out / "plain.h5").read_bytes()


def test_graph_input_codes_reproduced_by_the_encode_command(digits_features, tmp_path):
    """A model trained on graph inputs re-encodes through `graphhash encode`, which searches the neighbours
    itself, to the stage's codes; and the kNN configuration separates classes better than chance."""
    out = run_graph_nrdh(digits_features, tmp_path, bits=16, input_p=0.3)
    dest = tmp_path / "new-codes.npy"
    encode_command(out / "nrdh", digits_features, dest)
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
    """graph.kind: knn without the neighbours stage's file is one line naming it; nothing is written."""
    graph = GraphParams(kind="knn", nodes=GRAPH.nodes, rho=GRAPH.rho)
    with pytest.raises(GraphhashError, match=r"neighbours\.h5: cannot open as a neighbours file.*rerun the neighbours"):
        represent_one(digits_features, tmp_path / "neighbours.h5", 8, REPRESENT, graph, out=tmp_path / "repr.h5",
                  model=tmp_path / "gcnae", losses=tmp_path / "represent.csv")  # fmt: skip
    assert not list(tmp_path.iterdir())


def test_one_stage_for_all_code_lengths_equals_one_run_per_length(digits_features, tmp_path):
    """The stage trains every code length in one process: each length's outputs are byte for byte those of a
    run of that length alone (nothing carries over from one length to the next)."""
    neighbours = tmp_path / "neighbours.h5"  # not read: batch graphs and plain features
    for name, bits in (("both", [8, 12]), ("alone", [12])):
        out = tmp_path / name
        represent(digits_features, neighbours, "gcn", bits, REPRESENT, GRAPH, out=out / "r", models=out / "m",
                  losses=out / "l")  # fmt: skip
        hash_codes(digits_features, neighbours, out / "r", "gcn", bits, HASH, GRAPH, codes=out / "c",
                   models=out / "n", losses=out / "h")  # fmt: skip
    for name in ("r/12.h5", "m/12/model.pt", "c/nrdh-gcn-12-image.h5", "n/12/image/model.pt", "h/12-image.csv"):
        assert (tmp_path / "both" / name).read_bytes() == (tmp_path / "alone" / name).read_bytes(), name
    assert sorted(p.name for p in (tmp_path / "both" / "c").iterdir()) == ["nrdh-gcn-12-image.h5",
                                                                          "nrdh-gcn-8-image.h5"]  # fmt: skip


def test_a_wider_latent_trains_once_and_feeds_every_code_length(digits_features, tmp_path):
    """``represent.latent``: code lengths below it share one autoencoder of that size; the hash stage fits each
    length to the representations' leading rotated directions, and refuses the paper's raw targets."""
    neighbours = tmp_path / "neighbours.h5"  # not read: batch graphs and plain features
    wide = changed(REPRESENT, latent=24)
    represent(digits_features, neighbours, "gcn", [8, 12], wide, GRAPH, out=tmp_path / "r", models=tmp_path / "m",
              losses=tmp_path / "l")  # fmt: skip
    z8, z12 = (read_representations(tmp_path / "r" / f"{b}.h5").values for b in (8, 12))
    assert z8.shape[1] == 24 and np.array_equal(z8, z12)
    assert (tmp_path / "m" / "8" / "model.pt").read_bytes() == (tmp_path / "m" / "12" / "model.pt").read_bytes()
    hash_codes(digits_features, neighbours, tmp_path / "r", "gcn", [8, 12], changed(HASH, target="rotated"), GRAPH,
               codes=tmp_path / "c", models=tmp_path / "n", losses=tmp_path / "h")  # fmt: skip
    assert [read_codes(tmp_path / "c" / f"nrdh-gcn-{b}-image.h5").bits for b in (8, 12)] == [8, 12]
    with pytest.raises(GraphhashError, match=r"hash.target: representation .* holds 24 dimensions for 8 bits"):
        hash_codes(digits_features, neighbours, tmp_path / "r", "gcn", [8], changed(HASH, target="representation"),
                   GRAPH, codes=tmp_path / "c2", models=tmp_path / "n2", losses=tmp_path / "h2")  # fmt: skip
