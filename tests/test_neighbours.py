"""kNN graphs: nearest training items against brute force (exactly, and FAISS's ivf and hnsw by recall), graph
inputs against Eqs. 2-4 by hand, the file."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from graphhash.errors import GraphhashError
from graphhash.files.features import write_features
from graphhash.files.neighbours import Neighbours, read_neighbours, write_neighbours
from graphhash.graphs import search
from graphhash.graphs.knn import graph_inputs, knn_graphs, nearest_training
from graphhash.graphs.search import AUTO_APPROXIMATE_FROM, SEARCHES, resolve_method, search_neighbours
from graphhash.params.graph import GraphParams
from graphhash.params.neighbours import NeighboursParams
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
    write_features(path, [{"image": features}], dims={"image": 6}, ids=[f"item/{i}" for i in range(70)],
                   labels=np.zeros(70), masks={"query": ~train, "database": train, "train": train},
                   attrs={})  # fmt: skip
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


# ---------------------------------------------------------------- neighbours.method: exact, ivf, hnsw


@pytest.fixture(scope="module")
def clustered() -> tuple[np.ndarray, np.ndarray]:
    """6,000 items of 40 Gaussian clusters in 32-d, 4,500 of them training items."""
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(40, 32))
    features = (centres[rng.integers(0, 40, 6000)] + 0.35 * rng.normal(size=(6000, 32))).astype(np.float32)
    train = np.zeros(6000, dtype=bool)
    train[rng.choice(6000, 4500, replace=False)] = True
    return features, train


def test_exact_method_is_the_brute_force(items):
    features, train = items
    found = search_neighbours(features, train, 5, "exact")
    indices, sims = brute_force(features.astype(np.float64), train, 5)
    np.testing.assert_array_equal(found.indices, indices)
    np.testing.assert_allclose(found.similarities, sims, atol=1e-6)


@pytest.mark.parametrize(("method", "options"), [("ivf", {}), ("hnsw", {})])
def test_approximate_methods_find_the_true_neighbours_with_exact_similarities(clustered, method, options):
    """Recall of the exact 9 neighbours >= 0.95 on clustered data; every neighbour found carries its exact cosine,
    rows are ordered by (cosine, row), and no training item is its own neighbour."""
    features, train = clustered
    exact = search_neighbours(features, train, 9, "exact")
    found = search_neighbours(features, train, 9, method, options)
    recall = np.mean([len(np.intersect1d(a, b)) / 9 for a, b in zip(found.indices, exact.indices, strict=True)])
    assert recall >= 0.95, recall
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    training = unit[train]
    np.testing.assert_allclose(found.similarities, np.einsum("nd,nkd->nk", unit, training[found.indices]), atol=1e-5)
    assert (np.diff(found.similarities, axis=1) <= 1e-6).all()
    own = np.full(len(features), -1)
    own[train] = np.arange(train.sum())
    assert (found.indices != own[:, None]).all() and (found.indices >= 0).all()


@pytest.mark.parametrize("method", ["ivf", "hnsw"])
def test_approximate_methods_give_the_same_neighbours_every_run(clustered, method):
    features, train = clustered
    first, second = (search_neighbours(features, train, 9, method) for _ in range(2))
    np.testing.assert_array_equal(first.indices, second.indices)
    np.testing.assert_array_equal(first.similarities, second.similarities)


def test_ivf_with_one_cell_visited_in_full_is_exact_and_its_seed_matters(clustered):
    """nlist 1: every query scans every training item, so ivf finds the exact neighbours, up to float32 rounding
    between near-equal cosines (checked in float64); with many cells the seed of k-means changes the cells (and
    so, for some rows, what is found)."""
    features, train = clustered
    exact = search_neighbours(features, train, 9, "exact")
    whole = search_neighbours(features, train, 9, "ivf", {"nlist": 1, "nprobe": 1})
    unit = features.astype(np.float64) / np.linalg.norm(features.astype(np.float64), axis=1, keepdims=True)
    cosines = np.einsum("nd,nkd->nk", unit, unit[train][whole.indices])
    ninth = np.sort(np.einsum("nd,nkd->nk", unit, unit[train][exact.indices]), axis=1)[:, 0]
    assert (cosines >= ninth[:, None] - 1e-6).all()  # nothing found is farther than the exact 9th neighbour
    assert (whole.indices == exact.indices).all(axis=1).mean() > 0.99
    a, b = (search_neighbours(features, train, 9, "ivf", {"nlist": 100, "nprobe": 1, "seed": s}) for s in (0, 1))
    assert (a.indices != b.indices).any()


def test_ivf_asked_for_more_cells_than_the_items_fill_is_one_line(items):
    features, train = items  # 45 training items: one cell at most
    with pytest.raises(GraphhashError, match=r"^neighbours\.ivf\.nlist: 2 cells need at least 78 training items"):
        search_neighbours(features, train, 5, "ivf", {"nlist": 2})
    found = search_neighbours(features, train, 5, "ivf", {"nlist": 0})  # 0: what the items allow (one cell)
    np.testing.assert_array_equal(found.indices, brute_force(features.astype(np.float64), train, 5)[0])


def test_rows_a_method_cannot_fill_are_searched_exactly(clustered, monkeypatch):
    """With one cell searched of 100, some cells' items have fewer than 10 training items to choose from: those
    rows come from the exact search, which reads the training rows in blocks (here blocks of 64 rows), and
    equal the brute force; every row has 9 real neighbours."""
    features, train = clustered
    searched_exactly = []
    exact_rows = search.exact_rows

    def spy(unit, train_rows, rows, k, own_row):
        searched_exactly.append(rows)
        return exact_rows(unit, train_rows, rows, k, own_row)

    monkeypatch.setattr(search, "exact_rows", spy)
    monkeypatch.setattr(search, "QUERY_BLOCK", 4)  # exact_rows reads 16 x 4 training rows at a time
    found = search_neighbours(features, train, 9, "ivf", {"nlist": 100, "nprobe": 1})
    assert len(searched_exactly) == 1 and 0 < len(searched_exactly[0]) < 600
    rows = searched_exactly[0]
    indices, sims = brute_force(features.astype(np.float64), train, 9)
    np.testing.assert_array_equal(found.indices[rows], indices[rows])
    np.testing.assert_allclose(found.similarities[rows], sims[rows], atol=1e-5)
    assert (found.indices >= 0).all() and found.indices.max() < train.sum()
    assert np.isfinite(found.similarities).all()  # an unfilled place would carry -inf


def test_auto_is_exact_below_the_measured_size_and_hnsw_from_it():
    assert resolve_method("auto", AUTO_APPROXIMATE_FROM - 1) == "exact"
    assert resolve_method("auto", AUTO_APPROXIMATE_FROM) == "hnsw"
    assert {resolve_method(m, 10) for m in SEARCHES} == set(SEARCHES)


def test_neighbours_stage_takes_the_method_from_params(clustered, tmp_path):
    features, train = clustered
    path = tmp_path / "features.h5"
    write_features(path, [{"image": features}], dims={"image": 32}, ids=[f"item/{i}" for i in range(6000)],
                   labels=np.zeros(6000), masks={"query": ~train, "database": train, "train": train},
                   attrs={})  # fmt: skip
    find_neighbours(path, GraphParams(nodes=10), tmp_path / "hnsw.h5", NeighboursParams(method="hnsw"))
    expected = search_neighbours(features, train, 9, "hnsw")
    np.testing.assert_array_equal(read_neighbours(tmp_path / "hnsw.h5", 6000, 9).indices, expected.indices)
