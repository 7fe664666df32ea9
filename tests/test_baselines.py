"""Classical baselines: their defining properties, checked on real (digits) and constructed data against
references computed here (an independent SVD, the seeded generator, the quantisation loss)."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from sklearn.datasets import load_digits

from graphhash.errors import GraphhashError
from graphhash.hashers import HASHERS
from graphhash.hashers.linear import ITQ, LSH, PCAH
from graphhash.hashers.spectral import SH
from graphhash.hyperparameters import declared

BASELINES = {name: cls for name, cls in HASHERS.items() if not cls.crossmodal}  # the single-modality hashers


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return load_digits().data[:400].astype(np.float64)


def top_right_singular_vectors(x: np.ndarray, count: int) -> np.ndarray:
    """(D, count): the leading right-singular vectors of the centred data, from NumPy's SVD (not eigh)."""
    _, _, vt = np.linalg.svd(x - x.mean(axis=0), full_matrices=False)
    return vt[:count].T


def quantisation_loss(v: np.ndarray) -> float:
    """||sign(V) - V||_F^2, the loss ITQ minimises (sign(0) taken as +1, as the codes do)."""
    return float(np.sum((np.where(v >= 0, 1.0, -1.0) - v) ** 2))


def test_pcah_codes_are_the_signs_of_the_top_principal_projections(digits):
    """Fitted on the training part, PCAH's codes of held-out items are sign((x - training mean) @ v_i) for the
    top right-singular vectors v_i of the centred training data, each bit up to the sign of its direction."""
    train, held_out = digits[:300], digits[300:]
    bits = 6
    codes = PCAH(bits, 0).fit(train).encode(held_out)
    reference = (held_out - train.mean(axis=0)) @ top_right_singular_vectors(train, bits) >= 0
    assert codes.shape == reference.shape and codes.dtype == bool
    for i in range(bits):
        same, flipped = (codes[:, i] == reference[:, i]).all(), (codes[:, i] == ~reference[:, i]).all()
        assert same or flipped, f"bit {i} is not the sign of principal direction {i}"
    # the bits come in order of descending variance: bit i is not the sign of another direction
    assert not (codes[:, 0] == reference[:, 1]).all() and not (codes[:, 0] == ~reference[:, 1]).all()


def test_lsh_codes_are_seeded_gaussian_hyperplanes_through_the_training_mean(digits):
    train, held_out = digits[:300], digits[300:]
    bits, seed = 32, 7
    codes = LSH(bits, seed).fit(train).encode(held_out)
    hyperplanes = np.random.default_rng(seed).standard_normal((train.shape[1], bits))
    np.testing.assert_array_equal(codes, (held_out - train.mean(axis=0)) @ hyperplanes >= 0)
    assert (codes != LSH(bits, seed + 1).fit(train).encode(held_out)).any()
    # a point and its mirror image through the training mean fall on opposite sides of every hyperplane
    mirrored = 2 * train.mean(axis=0) - held_out[:20]
    model = LSH(bits, seed).fit(train)
    assert (model.encode(held_out[:20]) != model.encode(mirrored)).mean() > 0.99


def test_itq_rotation_is_orthogonal_and_its_loss_never_increases(digits):
    model = ITQ(24, 0).fit(digits)
    losses = np.array(model.losses_)
    assert len(losses) == 50  # Gong and Lazebnik's 50 updates by default
    assert (np.diff(losses) <= 1e-9 * losses[0]).all()
    assert losses[-1] < losses[0]
    np.testing.assert_allclose(model.rotation_.T @ model.rotation_, np.eye(24), atol=1e-10)
    np.testing.assert_allclose(model.rotation_ @ model.rotation_.T, np.eye(24), atol=1e-10)
    # the embedding it rotates is the top-24 principal subspace (the same projector as an independent SVD)
    top = top_right_singular_vectors(digits, 24)
    np.testing.assert_allclose(model.components_ @ model.components_.T, top @ top.T, atol=1e-8)
    # the loss it reports is ||B - V R||^2 with B = sign(V R); after the last update it is no larger
    rotated = (digits - digits.mean(axis=0)) @ model.components_ @ model.rotation_
    assert quantisation_loss(rotated) <= losses[-1] + 1e-9 * losses[0]
    np.testing.assert_array_equal(model.encode(digits), rotated >= 0)


def test_itq_quantises_better_than_pcah(digits):
    """The point of the rotation: ITQ's quantisation loss is below that of PCAH's unrotated projections."""
    for bits in (8, 24):
        model = ITQ(bits, 0).fit(digits)
        itq = quantisation_loss((digits - digits.mean(axis=0)) @ model.components_ @ model.rotation_)
        pcah = quantisation_loss((digits - digits.mean(axis=0)) @ top_right_singular_vectors(digits, bits))
        assert itq < pcah, (bits, itq, pcah)


def test_itq_iterations_is_a_keyword_only_hyperparameter(digits):
    assert len(ITQ(8, 0, iterations=5).fit(digits).losses_) == 5
    with pytest.raises((TypeError, ValidationError)):
        ITQ(8, 0, 5)  # hyperparameters are keyword-only
    for bad in (0, 10_001, True):
        with pytest.raises(ValidationError):
            ITQ(8, 0, iterations=bad)


QUICK = {"bihalf": {"steps": 20}, "greedyhash": {"steps": 20}, "agh": {"anchors": 50}, "agh2": {"anchors": 50}}
"""Shorter training for the generic checks; each method's own tests run its defaults' kind of fit."""


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_every_baseline_takes_bits_and_seed_and_refuses_bad_ones(name, digits):
    cls = BASELINES[name]
    codes = cls(12, 3, **QUICK.get(name, {})).fit(digits[:300]).encode(digits[300:])
    assert codes.shape == (100, 12) and codes.dtype == bool
    for bits, seed in ((0, 0), (True, 0), (8, -1), (8, 1.0)):
        with pytest.raises(ValidationError):
            cls(bits, seed)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_every_hyperparameter_is_described_for_params_yaml(name):
    """params.yaml's comments come from each class's own ``Args:`` (a subclass does not inherit a docstring)."""
    for key, (_, default, description) in declared(BASELINES[name]).items():
        assert description, f"{name}.{key} has no Args: entry"
        BASELINES[name](8, 0, **{key: default})  # the default passes the declared constraints


def test_sh_modes_are_the_smallest_eigenvalues_in_increasing_order():
    """On a box with widths 4, 1.5, 0.9 the modes are (d, k) by increasing (k / width_d)^2 (no ties)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(5000, 3)) * np.array([4.0, 1.5, 0.9])  # principal axes = coordinate axes
    model = SH(5, 0).fit(x)
    assert (np.diff(model.eigenvalues_) >= 0).all()
    widths = model.width_
    expected = sorted(((k * np.pi / widths[d]) ** 2, d, k) for d in range(3) for k in range(1, 6))[:5]
    np.testing.assert_allclose(model.eigenvalues_, [e for e, _, _ in expected])
    # the widest direction (variance 16/12) carries the first two modes: k = 1, 2 on width ~4
    assert model.mode_dims_[0] == model.mode_dims_[1] == 0 and list(model.mode_freqs_[:2]) == [1, 2]


def test_sh_first_mode_splits_the_widest_direction_in_half():
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(4000, 2)) * np.array([10.0, 1.0])
    codes = SH(1, 0).fit(x).encode(x)[:, 0]
    # sin(pi/2 + pi * t) >= 0 for t <= 1/2: one half of the box along the first axis gets one code
    low = x[:, 0] < np.median(x[:, 0])
    assert (codes[low] == codes[low][0]).mean() > 0.98 and (codes[~low] != codes[low][0]).mean() > 0.98


def test_sh_second_mode_of_a_direction_splits_it_in_quarters():
    """k = 2 on the widest direction: the outer quarters get one code, the middle half the other."""
    rng = np.random.default_rng(2)
    x = rng.uniform(size=(4000, 2)) * np.array([10.0, 1.0])
    model = SH(2, 0).fit(x)
    assert list(model.mode_dims_) == [0, 0] and list(model.mode_freqs_) == [1, 2]
    second = model.encode(x)[:, 1]
    quartile = np.digitize(x[:, 0], np.quantile(x[:, 0], [0.25, 0.5, 0.75]))
    outer, middle = np.isin(quartile, (0, 3)), np.isin(quartile, (1, 2))
    value = second[outer][0]
    assert (second[outer] == value).mean() > 0.97 and (second[middle] != value).mean() > 0.97


def test_too_many_bits_for_the_data_is_a_clear_error():
    with pytest.raises(GraphhashError, match="bits need at least"):
        PCAH(10, 0).fit(np.random.default_rng(0).normal(size=(5, 4)))
