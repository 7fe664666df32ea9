"""kNN graphs: nearest training items against brute force, graph inputs against Eqs. 2-4 by hand, the file."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from graphhash.errors import GraphhashError
from graphhash.files.features import write_features
from graphhash.files.neighbours import Neighbours, read_neighbours, write_neighbours
from graphhash.graphs.knn import graph_inputs, knn_graphs, nearest_training
from graphhash.params.graph import GraphParams
from graphhash.pipeline.neighbours import find_neighbours


def brute_force(features: np.ndarray, train: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarity to every training item, itself excluded, sorted by (-similarity, training row)."""
    rows = np.flatnonzero(train)
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    indices, sims = [], []
    for i in range(len(features)):
        candidates = [(-float(unit[i] @ unit[r]), j) for j, r in enumerate(rows) if r != i]
        best = sorted(candidates)[:k]
        indices.append([j for _, j in best])
        sims.append([-s for s, _ in best])
    return np.array(indices), np.array(sims)


@pytest.fixture
def items() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(70, 6)).astype(np.float32)
    train = np.zeros(70, dtype=bool)
    train[rng.choice(70, 45, replace=False)] = True
    return features, train


@pytest.mark.parametrize("block_size", [7, 2048])
def test_nearest_training_matches_brute_force(items, block_size):
    features, train = items
    found = nearest_training(features, train, 5, block_size=block_size)
    indices, sims = brute_force(features.astype(np.float64), train, 5)
    np.testing.assert_array_equal(found.indices, indices)
    np.testing.assert_allclose(found.similarities, sims, atol=1e-6)


def test_a_training_item_is_never_its_own_neighbour_but_its_duplicate_is():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(12, 4)).astype(np.float32)
    features[7] = features[3]  # an exact duplicate: similarity 1, tied with the item itself
    features[9] = 2.5 * features[3]  # the same direction: cosine 1 as well
    train = np.ones(12, dtype=bool)
    found = nearest_training(features, train, 3)
    assert 3 not in found.indices[3]
    np.testing.assert_array_equal(found.indices[3][:2], [7, 9])  # equal similarities: by training row
    np.testing.assert_array_equal(found.indices[7][:2], [3, 9])
    assert (found.indices != np.arange(12)[:, None]).all()


def test_queries_search_only_the_training_items(items):
    features, train = items
    found = nearest_training(features, train, 4)
    assert found.indices.max() < train.sum()
    query_rows = np.flatnonzero(~train)
    indices, _ = brute_force(features.astype(np.float64), train, 4)
    np.testing.assert_array_equal(found.indices[query_rows], indices[query_rows])


def test_too_many_neighbours_names_the_param():
    features = np.eye(4, dtype=np.float32)
    with pytest.raises(GraphhashError, match=r"^graph\.nodes: "):
        nearest_training(features, np.ones(4, dtype=bool), 4)


def test_knn_graphs_put_the_node_first():
    indices = torch.tensor([[1, 2], [2, 0], [0, 1]])
    np.testing.assert_array_equal(knn_graphs(torch.tensor([2, 0]), indices), [[2, 0, 1], [0, 1, 2]])


@pytest.mark.parametrize(("rho", "p"), [(0.0, 0.3), (0.5, 0.8), (0.99, 0.3), (-1.0, 1.0)])
def test_graph_inputs_follow_eqs_2_to_4_by_hand(items, rho, p):
    """Row 0 of U' for the item's own graph: p x + (1 - p) * mean of the neighbours linked to it (x if none)."""
    features, train = items
    found = nearest_training(features, train, 6)
    training = features[train].astype(np.float64)
    expected = np.empty(features.shape)
    for i, x in enumerate(features.astype(np.float64)):
        neighbours = training[found.indices[i]]
        cosine = neighbours @ x / (np.linalg.norm(neighbours, axis=1) * np.linalg.norm(x))
        linked = neighbours[cosine > rho]
        expected[i] = p * x + (1 - p) * linked.mean(axis=0) if len(linked) else x
    np.testing.assert_allclose(graph_inputs(features, train, found, rho, p, block_size=9), expected, atol=1e-5)


def test_neighbours_stage_round_trip_and_errors(items, tmp_path):
    """The stage writes graph.nodes - 1 neighbours per item; reading fewer gives the first k, more is refused."""
    features, train = items
    path = tmp_path / "features.h5"
    write_features(path, [features], dim=6, ids=[f"item/{i}" for i in range(70)], labels=np.zeros(70),
                   masks={"query": ~train, "database": train, "train": train}, attrs={})  # fmt: skip
    find_neighbours(path, GraphParams(nodes=6), tmp_path / "neighbours.h5")
    found = read_neighbours(tmp_path / "neighbours.h5", 70, 3)
    indices, sims = brute_force(features.astype(np.float64), train, 3)
    np.testing.assert_array_equal(found.indices, indices)
    np.testing.assert_allclose(found.similarities, sims, atol=1e-6)
    assert read_neighbours(tmp_path / "neighbours.h5", 70, 5).indices.shape == (70, 5)
    with pytest.raises(GraphhashError, match=r"neighbours\.h5.*rerun the neighbours stage"):
        read_neighbours(tmp_path / "neighbours.h5", 70, 6)  # the file holds 5
    with pytest.raises(GraphhashError, match=r"neighbours\.h5.*do not cover 71 items.*rerun the neighbours stage"):
        read_neighbours(tmp_path / "neighbours.h5", 71, 3)  # built from another features file
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["indices"] = np.zeros((70, 5), dtype=np.int64)
    with pytest.raises(GraphhashError, match=r"other\.h5: is not a neighbours file.*rerun the neighbours stage"):
        read_neighbours(tmp_path / "other.h5", 70, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features.h5", "neighbours.h5", "other.h5"]


def test_neighbours_file_keeps_indices_and_similarities_exactly(tmp_path):
    """write_neighbours then read_neighbours gives back the very arrays, dtypes included."""
    rng = np.random.default_rng(3)
    found = Neighbours(rng.integers(0, 50, size=(9, 4)).astype(np.int64), rng.random((9, 4)).astype(np.float32))
    write_neighbours(tmp_path / "n.h5", found)
    back = read_neighbours(tmp_path / "n.h5", 9, 4)
    assert back.indices.dtype == np.int64 and back.similarities.dtype == np.float32
    np.testing.assert_array_equal(back.indices, found.indices)
    np.testing.assert_array_equal(back.similarities, found.similarities)
    np.testing.assert_array_equal(read_neighbours(tmp_path / "n.h5", 9, 2).indices, found.indices[:, :2])
