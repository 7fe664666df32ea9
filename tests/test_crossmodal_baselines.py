"""Cross-modal baselines (CVH, CMFH, CCA-ITQ): their defining properties on paired synthetic views, checked against
references computed here (CCA from an SVD of the whitened cross-covariance, scipy's generalised eigensolver on
matrices built here, CMFH's objective written out again), cross-view retrieval against random codes, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from pydantic import ValidationError

from graphhash.errors import GraphhashError
from graphhash.evaluation.metrics import evaluate
from graphhash.hashers import HASHERS
from graphhash.hashers.crossmodal import CCAITQ, CMFH, CVH
from graphhash.hyperparameters import declared
from graphhash.quantisation import itq_rotation

DIMS = {"image": 24, "text": 12}

# the unsupervised cross-modal hashers (GCH, supervised, has its own tests)
CROSSMODAL_BASELINES = {name: cls for name, cls in HASHERS.items() if cls.crossmodal and not cls.supervised}


def paired_views(n: int, seed: int = 0, dims: dict[str, int] = DIMS) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Views generated from one latent: 6 classes, each a centre in a shared 5-d latent space plus a spread, mixed
    linearly into each view, plus each view's own 3-d nuisance (larger than the shared signal), noise and offset."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 6, n)
    shared = 2.0 * np.random.default_rng(99).standard_normal((6, 5))[labels] + 0.7 * rng.standard_normal((n, 5))
    views = {}
    for i, (name, dim) in enumerate(dims.items()):
        mixing = np.random.default_rng(100 + i).standard_normal((5, dim))
        nuisance = 3.0 * rng.standard_normal((n, 3)) @ np.random.default_rng(200 + i).standard_normal((3, dim))
        views[name] = shared @ mixing + nuisance + 0.5 * rng.standard_normal((n, dim)) + 10.0 * (i + 1)
    return views, labels


@pytest.fixture(scope="module")
def data() -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray], np.ndarray]:
    train, train_labels = paired_views(600, seed=1)
    test, test_labels = paired_views(200, seed=2)
    return train, train_labels, test, test_labels


def centred(views: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: x - x.mean(axis=0) for name, x in views.items()}


def kappa(x: np.ndarray, ridge: float) -> float:
    """The documented ridge: ridge times the mean variance (1/n convention) of the centred view x."""
    return ridge * float(np.mean(np.sum(x**2, axis=0) / len(x)))


def inverse_root(c: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(c)
    return vectors @ np.diag(values**-0.5) @ vectors.T


def reference_cca(x: np.ndarray, y: np.ndarray, ridge: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Canonical correlations and directions (D_x, k), (D_y, k) of centred x, y: the SVD of the whitened
    cross-covariance (C_xx + kx I)^-1/2 C_xy (C_yy + ky I)^-1/2."""
    n = len(x)
    wx = inverse_root(x.T @ x / n + kappa(x, ridge) * np.eye(x.shape[1]))
    wy = inverse_root(y.T @ y / n + kappa(y, ridge) * np.eye(y.shape[1]))
    u, s, vt = np.linalg.svd(wx @ (x.T @ y / n) @ wy)
    k = min(x.shape[1], y.shape[1])
    return s[:k], wx @ u[:, :k], wy @ vt[:k].T


def quantisation_loss(v: np.ndarray) -> float:
    return float(np.sum((np.where(v >= 0, 1.0, -1.0) - v) ** 2))


def cross_view_map(model, test, test_labels, train, train_labels, bits: int) -> dict[str, float]:
    """mAP@all of image -> text and text -> image: test items of one modality query the training items of the other."""
    scores = {}
    for query, database in (("image", "text"), ("text", "image")):
        q = np.packbits(model.encode(test[query], query), axis=1)
        d = np.packbits(model.encode(train[database], database), axis=1)
        scores[f"{query}->{database}"] = evaluate(q, d, test_labels, train_labels, bits, threads=1)["map@all"]
    return scores


@pytest.mark.parametrize("ridge", [0.0, 0.1])
def test_cca_itq_canonical_correlations_match_an_svd_of_the_whitened_cross_covariance(data, ridge):
    train = data[0]
    bits = 5
    model = CCAITQ(bits, 0, ridge=ridge).fit(train)
    x, y = centred(train).values()
    rho, ref_x, ref_y = reference_cca(x, y, ridge)
    np.testing.assert_allclose(model.correlations_, rho[:bits], rtol=1e-8, atol=1e-10)
    px, py = x @ model.directions_["image"], y @ model.directions_["text"]
    n = len(x)
    if ridge == 0.0:  # unit variance, uncorrelated within each view, correlated only pairwise across the views
        np.testing.assert_allclose(px.T @ px / n, np.eye(bits), atol=1e-8)
        np.testing.assert_allclose(py.T @ py / n, np.eye(bits), atol=1e-8)
        np.testing.assert_allclose(px.T @ py / n, np.diag(rho[:bits]), atol=1e-8)
    # each direction is the reference's (up to sign: the correlations here are distinct)
    assert np.min(np.diff(rho[: bits + 1]) * -1) > 1e-3
    for k in range(bits):
        assert abs(np.corrcoef(px[:, k], x @ ref_x[:, k])[0, 1]) > 1 - 1e-8
        assert abs(np.corrcoef(py[:, k], y @ ref_y[:, k])[0, 1]) > 1 - 1e-8


def test_cca_itq_rotation_is_orthogonal_and_does_not_increase_the_quantisation_loss(data):
    train = data[0]
    bits = 8
    model = CCAITQ(bits, 3).fit(train)
    rotation = model.rotation_
    np.testing.assert_allclose(rotation.T @ rotation, np.eye(bits), atol=1e-10)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(bits), atol=1e-10)
    x = centred(train)
    scale = model.correlations_**model.power
    stacked = np.concatenate([x[name] @ model.directions_[name] * scale for name in ("image", "text")])
    losses = np.array(model.losses_)
    assert len(losses) == 50
    assert (np.diff(losses) <= 1e-9 * losses[0]).all()
    final = quantisation_loss(stacked @ rotation)
    assert final <= losses[-1] + 1e-9 * losses[0]
    assert final < quantisation_loss(stacked)  # better than the unrotated projections
    # the codes are sign(projection @ R), for both modalities
    np.testing.assert_array_equal(model.encode(train["image"], "image"), (stacked[:600] @ rotation) >= 0)
    np.testing.assert_array_equal(model.encode(train["text"], "text"), (stacked[600:] @ rotation) >= 0)


def test_itq_rotation_updates_are_scipy_s_orthogonal_procrustes():
    """Each update of ``itq_rotation`` (shared by ITQ and CCA-ITQ) is the orthogonal R minimising ||B - V R||
    for B = sign(V R_previous): ``scipy.linalg.orthogonal_procrustes`` computes it independently."""
    v = np.random.default_rng(5).standard_normal((300, 6)) @ np.random.default_rng(6).standard_normal((6, 6))
    previous, _ = itq_rotation(v, 0, 4)  # no update: the seeded random start
    for iterations in (1, 2, 3):
        rotation, losses = itq_rotation(v, iterations, 4)
        codes = np.where(v @ previous >= 0, 1.0, -1.0)
        expected, _ = scipy.linalg.orthogonal_procrustes(v, codes)
        np.testing.assert_allclose(rotation, expected, atol=1e-10)
        assert losses[-1] == pytest.approx(np.sum((codes - v @ previous) ** 2))
        previous = rotation


def block_matrices(views: dict[str, np.ndarray], ridge: float) -> tuple[np.ndarray, np.ndarray]:
    """CVH's M and B for paired views (W = I), built block by block from the module docstring's definitions."""
    xs = list(centred(views).values())
    n, k = len(xs[0]), len(xs)
    regularised = [x.T @ x / n + kappa(x, ridge) * np.eye(x.shape[1]) for x in xs]
    m = np.block([[(k - 1) * regularised[a] if a == b else -xs[a].T @ xs[b] / n for b in range(k)] for a in range(k)])
    return m, scipy.linalg.block_diag(*regularised)


@pytest.mark.parametrize("count", [2, 3])
def test_cvh_projections_solve_the_generalised_eigenproblem_with_decorrelated_bits(count):
    dims = dict(list({"image": 24, "text": 12, "tags": 16}.items())[:count])
    views, _ = paired_views(500, seed=3, dims=dims)
    bits, ridge = 6, 0.01
    model = CVH(bits, 0, ridge=ridge).fit(views)
    m, b = block_matrices(views, ridge)
    a = np.concatenate([model.projections_[name] for name in dims])
    assert a.shape == (sum(dims.values()), bits)
    reference = scipy.linalg.eigh(m, b, eigvals_only=True)
    np.testing.assert_allclose(model.eigenvalues_, reference[:bits], rtol=1e-8, atol=1e-10)
    residual = m @ a - b @ a @ np.diag(model.eigenvalues_)
    assert np.linalg.norm(residual) < 1e-8 * np.linalg.norm(m) * np.linalg.norm(a)
    np.testing.assert_allclose(a.T @ b @ a, np.eye(bits), atol=1e-8)  # the decorrelation constraint
    if count == 2:  # two views: lambda = 1 - rho, the canonical correlations (CVH is CCA there)
        x, y = centred(views).values()
        rho, _, _ = reference_cca(x, y, ridge)
        np.testing.assert_allclose(model.eigenvalues_, 1 - rho[:bits], atol=1e-8)


def test_cmfh_objective_never_increases_and_is_the_paper_s(data):
    train = data[0]
    model = CMFH(8, 0, iterations=40).fit(train)
    objectives = np.array(model.objectives_)
    assert len(objectives) == 40
    assert (np.diff(objectives) <= 1e-10 * objectives[0]).all()
    assert objectives[-1] < 0.5 * objectives[0]
    # the last value is the objective written out here at the fitted U_m, P_m (= W_m^T) and V
    x1, x2 = centred(train).values()
    v, (u1, u2) = model.latent_, model.bases_
    p1, p2 = model.projections_["image"].T, model.projections_["text"].T
    lam, mu, gamma = model.lam, model.mu, model.gamma
    value = (lam * np.sum((x1.T - u1 @ v) ** 2) + (1 - lam) * np.sum((x2.T - u2 @ v) ** 2)
             + mu * (np.sum((v - p1 @ x1.T) ** 2) + np.sum((v - p2 @ x2.T) ** 2))
             + gamma * sum(np.sum(a**2) for a in (u1, u2, p1, p2, v)))  # fmt: skip
    np.testing.assert_allclose(objectives[-1], value, rtol=1e-10)


def test_cmfh_shared_latent_reconstructs_both_views_better_than_a_random_one(data):
    train = data[0]
    bits = 8
    model = CMFH(bits, 0).fit(train)
    random_latent = np.random.default_rng(7).standard_normal(model.latent_.shape)
    for name, basis in zip(("image", "text"), model.bases_, strict=True):
        x = centred(train)[name].T  # (D, n)
        learned = np.sum((x - basis @ model.latent_) ** 2) / np.sum(x**2)
        # the random latent gets its best basis (least squares), the learned one keeps CMFH's regularised one
        best, *_ = np.linalg.lstsq(random_latent.T, x.T, rcond=None)
        chance = np.sum((x - best.T @ random_latent) ** 2) / np.sum(x**2)
        assert learned < 0.5 * chance, (name, learned, chance)


def test_cmfh_is_not_limited_by_a_view_s_dimension(data):
    train, _, test, _ = data
    model = CMFH(32, 0, iterations=20).fit(train)  # more bits than the text view's 12 features
    assert model.encode(test["text"], "text").shape == (200, 32)
    assert model.projections_["text"].shape == (12, 32)


@pytest.mark.parametrize("name", sorted(CROSSMODAL_BASELINES))
def test_cross_view_retrieval_beats_random_codes(data, name):
    train, train_labels, test, test_labels = data
    bits = 8
    model = CROSSMODAL_BASELINES[name](bits, 0).fit(train)
    scores = cross_view_map(model, test, test_labels, train, train_labels, bits)

    class Random:
        @staticmethod
        def encode(x, modality):
            return np.random.default_rng(len(x) + len(modality)).random((len(x), bits)) < 0.5

    floor = cross_view_map(Random, test, test_labels, train, train_labels, bits)
    for direction, value in scores.items():
        assert value > floor[direction] + 0.25, (direction, value, floor[direction])


@pytest.mark.parametrize("name", sorted(CROSSMODAL_BASELINES))
def test_same_inputs_and_seed_give_the_same_codes(data, name):
    train, _, test, _ = data
    cls = CROSSMODAL_BASELINES[name]
    first, second = cls(8, 11).fit(train), cls(8, 11).fit(train)
    other = cls(8, 12).fit(train)
    for modality in ("image", "text"):
        codes = first.encode(test[modality], modality)
        assert codes.dtype == bool and codes.shape == (200, 8)
        np.testing.assert_array_equal(codes, second.encode(test[modality], modality))
    changed = any((first.encode(test[m], m) != other.encode(test[m], m)).any() for m in ("image", "text"))
    assert changed == (name != "cvh")  # CVH draws nothing at random


def bad_views() -> list[tuple[str, dict, str]]:
    views, _ = paired_views(50)
    nan, inf = views["image"].copy(), views["text"].copy()
    nan[3, 4], inf[0, 0] = np.nan, np.inf
    return [
        ("rows", {"image": views["image"], "text": views["text"][:40]}, "image: 50, text: 40"),
        ("one view", {"image": views["image"]}, "got 1"),
        ("nan", {"image": nan, "text": views["text"]}, "'image' has NaN"),
        ("inf", {"image": views["image"], "text": inf}, "'text' has NaN or infinite"),
        ("1-d", {"image": views["image"][:, 0], "text": views["text"]}, "'image' must be 2-D"),
        ("not a dict", [views["image"], views["text"]], "must be a dict"),
    ]


@pytest.mark.parametrize("name", sorted(CROSSMODAL_BASELINES))
@pytest.mark.parametrize(("case", "views", "message"), bad_views(), ids=[case for case, _, _ in bad_views()])
def test_bad_views_raise_one_line(name, case, views, message):
    with pytest.raises(GraphhashError, match=message) as caught:
        CROSSMODAL_BASELINES[name](4, 0).fit(views)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("cls", [CVH, CCAITQ])
def test_bits_beyond_the_smallest_view_are_refused(data, cls):
    with pytest.raises(GraphhashError, match="13 bits need at least 13 features in every view; 'text' has 12"):
        cls(13, 0).fit(data[0])


@pytest.mark.parametrize("cls", [CMFH, CCAITQ])
def test_two_view_methods_refuse_three_views(cls):
    views, _ = paired_views(80, dims={"image": 10, "text": 8, "tags": 6})
    with pytest.raises(GraphhashError, match="exactly 2 views, got 3"):
        cls(4, 0).fit(views)


def test_views_with_too_few_correlations_are_refused():
    """Text features whose rows sum to 1 (topic proportions) lose a direction when centred: 4 features, 3
    correlations, so 4 bits of CCA-ITQ or CVH would have a bit that no image feature predicts."""
    rng = np.random.default_rng(0)
    text = rng.dirichlet(np.ones(4), 200)
    views = {"image": text @ rng.standard_normal((4, 8)) + 0.1 * rng.standard_normal((200, 8)), "text": text}
    with pytest.raises(GraphhashError, match="only 3 non-zero canonical correlations, fewer than 4 bits"):
        CCAITQ(4, 0).fit(views)
    with pytest.raises(GraphhashError, match="only 3 correlated directions, fewer than 4 bits"):
        CVH(4, 0).fit(views)
    with pytest.raises(GraphhashError, match="singular; raise ridge"):
        CCAITQ(3, 0, ridge=0.0).fit(views)
    assert CCAITQ(3, 0).fit(views).encode(text, "text").shape == (200, 3)


@pytest.mark.parametrize("name", sorted(CROSSMODAL_BASELINES))
def test_encode_names_an_unknown_modality_or_a_wrong_dimension(data, name):
    train, _, test, _ = data
    cls = CROSSMODAL_BASELINES[name]
    with pytest.raises(GraphhashError, match="fit it on training views"):
        cls(4, 0).encode(test["image"], "image")
    model = cls(4, 0).fit(train)
    with pytest.raises(GraphhashError, match="unknown modality 'audio'; it was fitted on 'image', 'text'"):
        model.encode(test["image"], "audio")
    with pytest.raises(GraphhashError, match=r"'text' items must be \(n, 12\) arrays, not \(200, 24\)"):
        model.encode(test["image"], "text")
    with pytest.raises(GraphhashError, match=r"'image' items must be \(n, 24\) arrays, not \(24,\)"):
        model.encode(test["image"][0], "image")


def test_hyperparameters_are_declared_and_checked():
    for cls in CROSSMODAL_BASELINES.values():
        for key, (_, default, description) in declared(cls).items():
            assert description, f"{cls.__name__}.{key} has no Args: entry"
            cls(4, 0, **{key: default})
    assert set(declared(CMFH)) == {"lam", "mu", "gamma", "iterations"}
    for bad in ({"lam": 1.0}, {"mu": 0.0}, {"gamma": -1.0}, {"iterations": 0}):
        with pytest.raises(ValidationError):
            CMFH(4, 0, **bad)
    with pytest.raises(ValidationError):
        CCAITQ(4, 0, ridge=-0.1)
    with pytest.raises(ValidationError):
        CVH(0, 0)
