"""Classical baselines: their defining properties, checked on real (digits) and constructed data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from graphhash.baselines import BASELINES, ITQ, LSH, PCAH, SH
from graphhash.errors import GraphhashError


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return load_digits().data[:400].astype(np.float64)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_codes_shape_and_identical_vectors_get_identical_codes(name, digits):
    model = BASELINES[name](16).fit(digits)
    repeated = np.repeat(digits[:5], 3, axis=0)
    codes = model.encode(repeated)
    assert codes.shape == (15, 16) and codes.dtype == bool
    assert (codes.reshape(5, 3, 16) == codes.reshape(5, 3, 16)[:, :1]).all()


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_fitted_on_training_data_only(name, digits):
    """Encoding other data afterwards does not change the fitted model."""
    model = BASELINES[name](8).fit(digits[:200])
    before = model.encode(digits[200:])
    model.encode(digits[:10] * 5)
    np.testing.assert_array_equal(model.encode(digits[200:]), before)


def test_itq_loss_never_increases_and_rotation_is_orthogonal(digits):
    model = ITQ(24).fit(digits)
    losses = np.array(model.losses_)
    assert len(losses) == 50
    assert (np.diff(losses) <= 1e-6 * losses[0]).all()
    assert losses[-1] < losses[0]
    np.testing.assert_allclose(model.rotation_ @ model.rotation_.T, np.eye(24), atol=1e-10)
    # the loss it reports is ||B - V R||^2 with B = sign(V R), recomputed here from the final rotation
    v = (digits - digits.mean(0)) @ model.components_ @ model.rotation_
    assert np.sum((np.where(v >= 0, 1.0, -1.0) - v) ** 2) <= losses[-1] + 1e-6 * losses[0]


def test_pcah_projects_on_top_principal_components(digits):
    """PCAH's directions are the covariance's leading eigenvectors (up to sign), by descending variance."""
    model = PCAH(6).fit(digits)
    centred = digits - digits.mean(0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    for i in range(6):
        assert abs(abs(model.components_[:, i] @ vt[i]) - 1) < 1e-8
    assert np.all(np.diff(singular[:6]) <= 0)


def test_lsh_is_seeded_sign_random_projection(digits):
    a, b, c = LSH(32, seed=1).fit(digits), LSH(32, seed=1).fit(digits), LSH(32, seed=2).fit(digits)
    np.testing.assert_array_equal(a.encode(digits), b.encode(digits))
    assert (a.encode(digits) != c.encode(digits)).any()
    # a point and its mirror image through the mean get complementary codes
    mirrored = 2 * digits.mean(0) - digits[:20]
    assert (a.encode(digits[:20]) != a.encode(mirrored)).mean() > 0.99


def test_sh_modes_are_the_smallest_eigenvalues_in_increasing_order():
    """On a box with widths 4, 1.5, 0.9 the modes are (d, k) by increasing (k / width_d)^2 (no ties)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(5000, 3)) * np.array([4.0, 1.5, 0.9])  # principal axes = coordinate axes
    model = SH(5).fit(x)
    assert (np.diff(model.eigenvalues_) >= 0).all()
    widths = model.width_
    expected = sorted(((k * np.pi / widths[d]) ** 2, d, k) for d in range(3) for k in range(1, 6))[:5]
    np.testing.assert_allclose(model.eigenvalues_, [e for e, _, _ in expected])
    # the widest direction (variance 16/12) carries the first two modes: k = 1, 2 on width ~4
    assert model.mode_dims_[0] == model.mode_dims_[1] == 0 and list(model.mode_freqs_[:2]) == [1, 2]


def test_sh_first_mode_splits_the_widest_direction_in_half():
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(4000, 2)) * np.array([10.0, 1.0])
    codes = SH(1).fit(x).encode(x)[:, 0]
    # sin(pi/2 + pi * t) >= 0 for t <= 1/2: the lower half of the box along the first axis is 1
    projected = (x - x.mean(0)) @ SH(1).fit(x).components_[:, 0]
    low = projected < np.median(projected)
    assert (codes[low] == codes[low][0]).mean() > 0.98 and (codes[~low] != codes[low][0]).mean() > 0.98


def test_too_many_bits_for_the_data_is_a_clear_error():
    with pytest.raises(GraphhashError, match="bits need at least"):
        PCAH(10).fit(np.random.default_rng(0).normal(size=(5, 4)))
