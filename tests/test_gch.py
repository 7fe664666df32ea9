"""GCH (supervised cross-modal hashing with a label-graph GCN): its label graph and normalised adjacency against
loops written here, its likelihood against the formula, cross-modal retrieval on labelled synthetic views against
the chance level computed here, determinism, class ids and their one-hot matrix giving the same model, bad input."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from graphhash.errors import GraphhashError
from graphhash.evaluation.metrics import evaluate
from graphhash.hashers.crossmodal import CrossModalHasher
from graphhash.hashers.gch import GCH, _likelihood, label_similarity, normalised_adjacency
from graphhash.hyperparameters import declared

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CLASSES = 5
DIMS = {"image": 20, "text": 8}
SMALL = {"hidden": 64, "batch_size": 64}  # a small model, for seconds of training


def labelled_views(n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Labels decide both views: each class a centre in a 4-d latent space, plus spread, mixed linearly into each
    view (fixed mixing), plus the view's own noise and offset."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, n)
    centres = 2.0 * np.random.default_rng(50).standard_normal((CLASSES, 4))
    latent = centres[labels] + 0.6 * rng.standard_normal((n, 4))
    views = {}
    for i, (name, dim) in enumerate(DIMS.items()):
        mixing = np.random.default_rng(60 + i).standard_normal((4, dim))
        views[name] = latent @ mixing + 0.5 * rng.standard_normal((n, dim)) + 5.0 * i
    return views, labels


@pytest.fixture(scope="module")
def data() -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray], np.ndarray]:
    train, train_labels = labelled_views(400, seed=1)
    test, test_labels = labelled_views(150, seed=2)
    return train, train_labels, test, test_labels


@pytest.fixture(scope="module")
def fitted(data) -> GCH:
    train, train_labels, _, _ = data
    return GCH(16, 0, steps=200, **SMALL).fit(train, train_labels)


def reference_similarity(labels: np.ndarray) -> np.ndarray:
    """S_ij = 1 iff items i and j share a label, pair by pair: class ids equal, or some column 1 in both rows."""
    n = len(labels)
    s = np.zeros((n, n), dtype=bool)
    for i in range(n):
        for j in range(n):
            if labels.ndim == 1:
                s[i, j] = labels[i] == labels[j]
            else:
                s[i, j] = any(labels[i, c] == 1 and labels[j, c] == 1 for c in range(labels.shape[1]))
    return s


def reference_adjacency(s: np.ndarray) -> np.ndarray:
    """Kipf & Welling's D~^-1/2 (A + I) D~^-1/2 entry by entry, A = S off the diagonal."""
    n = len(s)
    a = [[(1.0 if i == j else float(s[i, j])) for j in range(n)] for i in range(n)]
    degree = [sum(row) for row in a]
    return np.array([[a[i][j] / math.sqrt(degree[i] * degree[j]) for j in range(n)] for i in range(n)])


LABEL_CASES = {
    # class ids whose products mislead: 2 * 3 > 0 though the classes differ, 0 * 0 = 0 though they agree
    "class ids": np.array([0, 2, 3, 0, 2, 7, 3, 0]),
    # several labels per item, one item with none (similar to nothing, itself included)
    "multi-label": np.array([[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 0]]),
}


@pytest.mark.parametrize("case", sorted(LABEL_CASES))
def test_label_graph_and_normalised_adjacency_match_loops(case):
    labels = LABEL_CASES[case]
    s = label_similarity(labels)
    assert s.dtype == bool
    np.testing.assert_array_equal(s, reference_similarity(labels))
    np.testing.assert_allclose(normalised_adjacency(s), reference_adjacency(s), rtol=1e-12, atol=0)
    if case == "class ids":
        assert s[0, 3] and not s[1, 2]  # the misleading products
    else:
        assert not s[2].any()  # the item without labels
        assert label_similarity(labels.astype(bool)).tolist() == s.tolist()


def test_likelihood_is_the_negative_log_likelihood_of_the_similarities():
    rng = np.random.default_rng(3)
    a, b = np.tanh(rng.standard_normal((6, 16))), np.tanh(rng.standard_normal((6, 16)))
    s = rng.random((6, 6)) < 0.4
    theta = 0.5 * a @ b.T
    # -log p(S | theta) with p(S_ij = 1) = sigmoid(theta_ij), averaged over pairs
    expected = -np.mean(np.where(s, np.log(1 / (1 + np.exp(-theta))), np.log(1 - 1 / (1 + np.exp(-theta)))))
    found = _likelihood(torch.as_tensor(theta), torch.as_tensor(s, dtype=torch.float64))
    assert found.item() == pytest.approx(expected, rel=1e-12)


def chance_map(query_labels: np.ndarray, database_labels: np.ndarray) -> float:
    """The mAP of a random ranking: each query's AP is, in expectation, about its share of relevant items."""
    return float(np.mean([np.mean(database_labels == label) for label in query_labels]))


def test_codes_retrieve_across_modalities_far_above_chance_and_the_loss_falls(data, fitted):
    train, train_labels, test, test_labels = data
    chance = chance_map(test_labels, train_labels)
    assert chance < 0.25
    for query, database in (("image", "text"), ("text", "image")):
        q = np.packbits(fitted.encode(test[query], query), axis=1)
        d = np.packbits(fitted.encode(train[database], database), axis=1)
        found = evaluate(q, d, test_labels, train_labels, 16, threads=1)["map@all"]
        assert found > 0.8, (query, found, chance)
    losses = fitted.losses_
    assert set(losses) == {"semantic", "graph", "image", "text", "all"}
    assert all(len(values) == 200 for values in losses.values())
    np.testing.assert_allclose(losses["all"], losses["semantic"] + losses["graph"] + losses["image"] + losses["text"])
    assert losses["all"][-20:].mean() < 0.7 * losses["all"][:20].mean()
    for key, values in losses.items():  # each of the four falls too
        assert values[-20:].mean() < 0.85 * values[:20].mean(), key


def test_codes_are_bools_from_the_signs_of_the_projection(data, fitted):
    test = data[2]
    for modality in DIMS:
        codes, projected = fitted.encode(test[modality], modality), fitted.project(test[modality], modality)
        assert codes.dtype == bool and codes.shape == (150, 16)
        np.testing.assert_array_equal(codes, projected >= 0)
        assert np.abs(projected).max() <= 1.0  # tanh
        assert 0.1 < codes.mean() < 0.9
    restored = pickle.loads(pickle.dumps(fitted))  # fitted state travels
    np.testing.assert_array_equal(restored.project(test["text"], "text"), fitted.project(test["text"], "text"))


def test_same_seed_gives_the_same_codes_and_another_seed_others(data):
    train, train_labels, test, _ = data
    first, second, other = (GCH(8, seed, steps=30, **SMALL).fit(train, train_labels) for seed in (4, 4, 5))
    for modality in DIMS:
        np.testing.assert_array_equal(first.project(test[modality], modality),
                                      second.project(test[modality], modality))  # fmt: skip
    assert any((first.encode(test[m], m) != other.encode(test[m], m)).any() for m in DIMS)


def test_class_ids_and_their_one_hot_matrix_give_the_same_model(data):
    """The similarities and label targets of class ids equal those of their one-hot matrix (a multi-label matrix
    of one label per item), so both fits are the same computation; class ids need not be 0..C-1."""
    train, train_labels, test, _ = data
    ids = 10 * train_labels + 3  # the same classes, other ids, same order
    one_hot = (train_labels[:, None] == np.arange(CLASSES)[None, :]).astype(np.int64)
    first = GCH(8, 2, steps=20, **SMALL).fit(train, ids)
    second = GCH(8, 2, steps=20, **SMALL).fit(train, one_hot)
    for modality in DIMS:
        np.testing.assert_array_equal(first.project(test[modality], modality),
                                      second.project(test[modality], modality))  # fmt: skip


def test_bad_input_raises_one_line(data):
    train, train_labels, test, _ = data
    nan = {"image": train["image"].copy(), "text": train["text"]}
    nan["image"][5, 3] = np.nan
    cases = [
        (lambda: GCH(8, 0).fit(train), "needs the training items' labels"),
        (lambda: GCH(8, 0).fit(train, train_labels[:-1]), "399 labels for 400 training items"),
        (lambda: GCH(8, 0).fit(train, train_labels.astype(float)), "integer class ids, not float64"),
        (lambda: GCH(8, 0).fit(train, np.full((400, 3), 2)), "only 0 and 1"),
        (lambda: GCH(8, 0).fit(train, np.full((400, 3), np.nan)), "only 0 and 1"),
        (lambda: GCH(8, 0).fit(train, np.zeros((400, 2, 2))), r"not shape \(400, 2, 2\)"),
        (lambda: GCH(8, 0).fit(nan, train_labels), "'image' has NaN"),
        (lambda: GCH(8, 0).fit({"image": train["image"][:1], "text": train["text"][:1]}, [0]), "at least 2"),
        (lambda: GCH(8, 0).fit({**train, "tags": train["text"]}, train_labels), "exactly 2 views, got 3"),
        (lambda: GCH(8, 0).encode(test["image"], "image"), "fit it on training views before encoding"),
    ]
    for call, message in cases:
        with pytest.raises(GraphhashError, match=message) as caught:
            call()
        assert "\n" not in str(caught.value)
    model = GCH(8, 0, steps=2, **SMALL).fit(train, train_labels)
    for call, message in [
        (lambda: model.encode(test["image"], "audio"), "unknown modality 'audio'; it was fitted on 'image', 'text'"),
        (lambda: model.encode(test["image"], "text"), r"'text' items must be \(n, 8\) arrays, not \(150, 20\)"),
        (lambda: model.encode(np.full((2, 20), np.nan), "image"), "'image' items have NaN"),
    ]:
        with pytest.raises(GraphhashError, match=message) as caught:
            call()
        assert "\n" not in str(caught.value)


def test_tiny_training_sets_fit_with_a_batch_of_every_item(data):
    train, _, test, _ = data
    model = GCH(4, 0, steps=3, **SMALL).fit({m: x[:2] for m, x in train.items()}, np.array([1, 1]))
    assert model.encode(test["text"], "text").shape == (150, 4)


def test_hyperparameters_are_declared_checked_and_the_hasher_is_supervised():
    assert GCH.supervised is True and issubclass(GCH, CrossModalHasher) and GCH.taken_views == 2
    found = declared(GCH)
    assert set(found) == {"steps", "batch_size", "lr", "hidden", "alpha", "beta", "gamma", "eta"}
    for key, (_, default, description) in found.items():
        assert description, f"GCH.{key} has no Args: entry"
        GCH(4, 0, **{key: default})
    for bad in ({"steps": 0}, {"batch_size": 1}, {"lr": 0.0}, {"hidden": 0}, {"alpha": -1.0}, {"eta": -0.5}):
        with pytest.raises(ValidationError):
            GCH(4, 0, **bad)
