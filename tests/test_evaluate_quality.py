"""ID quality metrics on tiny hand-checked cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rqvae_ids.core.errors import UserError
from rqvae_ids.evaluate.quality import (
    category_levels,
    category_metrics,
    code_usage_metrics,
    nmi,
    purity,
    reconstruction_metrics,
)
from rqvae_ids.evaluate.random_ids import random_codes


def test_nmi_hand_checked():
    assert nmi([0, 0, 1, 1], ["x", "x", "y", "y"]) == pytest.approx(1.0)
    assert nmi([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(0.0)
    # H(a) = ln 2, H(b) = -(.75 ln .75 + .25 ln .25), I = H(b) - 0.5 ln 2.
    hb = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    expected = (hb - 0.5 * math.log(2)) / ((math.log(2) + hb) / 2)
    assert nmi([0, 0, 1, 1], [0, 0, 0, 1]) == pytest.approx(expected)
    assert nmi([3, 3, 3], [1, 1, 1]) == 1.0  # both single-cluster
    assert nmi([3, 3, 3], [1, 2, 1]) == 0.0


def test_nmi_matches_sklearn_when_available():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 7, 500), rng.integers(0, 5, 500)
    b[:200] = a[:200] % 5
    assert nmi(a, b) == pytest.approx(metrics.normalized_mutual_info_score(a, b), abs=1e-10)


def test_purity_hand_checked():
    assert purity([0, 0, 0, 1, 1], ["a", "a", "b", "b", "c"]) == pytest.approx(3 / 5)
    assert purity([0, 1, 2], ["a", "a", "a"]) == 1.0


def test_category_levels_drop_shared_root_and_metrics():
    cats = ["R > A > x", "R > A > y", "R > B > x", "R > B > x", None, "Other"]
    levels = category_levels(cats)
    assert levels.dropped_root is None  # "R" covers 4 of 5 known paths < 95 %
    levels = category_levels(cats[:4] + [None])
    assert levels.dropped_root == "R"
    assert levels.top == ["A", "A", "B", "B", None]
    assert levels.second == ["A > x", "A > y", "B > x", "B > x", None]
    codes = np.array([[0, 0], [0, 1], [1, 0], [1, 0], [2, 2]])
    m = category_metrics(codes, levels)
    assert m["nmi_l0"] == pytest.approx(1.0) and m["purity_l0"] == 1.0
    assert m["nmi_l01"] == pytest.approx(1.0) and m["purity_l01"] == 1.0
    assert category_levels(None) is None and category_levels([None, ""]) is None


def test_code_usage_and_collisions():
    codes = np.array([[0, 0], [0, 0], [1, 2]])
    m = code_usage_metrics(codes, 4, suffix=np.array([0, 1, 0]))
    assert m["utilisation_l0"] == 0.5 and m["utilisation_l1"] == 0.5
    assert m["perplexity_l0"] == pytest.approx(math.exp(-(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))))
    assert m["duplicate_rate_raw"] == pytest.approx(1 / 3)  # 1 - 2 distinct / 3 items
    assert m["colliding_share_raw"] == pytest.approx(2 / 3)  # two of three items share (0, 0)
    assert m["duplicate_rate_resolved"] == 0.0


def test_reconstruction_metrics():
    m = reconstruction_metrics(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[0.0, 1.0], [0.0, 2.0]]))
    assert m["recon_mse"] == pytest.approx((1 + 1 + 0 + 1) / 4)
    assert m["recon_cosine"] == pytest.approx(0.5)


def test_random_codes_unique_seeded_in_range():
    a = random_codes(500, 3, 8, seed=1)
    assert a.shape == (500, 3) and a.dtype == np.int64
    assert a.min() >= 0 and a.max() < 8
    assert len(np.unique(a, axis=0)) == 500
    np.testing.assert_array_equal(a, random_codes(500, 3, 8, seed=1))
    assert not np.array_equal(a, random_codes(500, 3, 8, seed=2))
    with pytest.raises(UserError):
        random_codes(65, 2, 8)
