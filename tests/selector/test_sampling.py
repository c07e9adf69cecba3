"""RegMix candidate sampling and CLIMB budgets: pure functions, checked by hand values."""

from __future__ import annotations

import numpy as np
import pytest

from assay.errors import ConfigError
from selector.climb import parse_ratio, split_budget
from selector.mix_export import fixed_decimals
from selector.sampling import dedupe, epoch_caps, sample_mixtures, sample_near, size_prior

TOKENS = np.array([9_000.0, 1_000.0, 100.0, 0.0])


def test_size_prior_by_hand():
    np.testing.assert_allclose(size_prior(TOKENS, 1.0), [0.891089, 0.09901, 0.009901, 0], atol=1e-6)
    np.testing.assert_allclose(size_prior(TOKENS, 0.0), [1 / 3, 1 / 3, 1 / 3, 0])
    # RegMix's 0.5: sqrt(0.9), sqrt(0.1), sqrt(0.01) renormalised
    s = np.sqrt([0.9, 0.1, 0.01])
    np.testing.assert_allclose(size_prior(TOKENS[:3], 0.5), s / s.sum())
    with pytest.raises(ConfigError, match="prior-temperature"):
        size_prior(TOKENS, -1)


def test_epoch_caps_by_hand_and_infeasible():
    caps = epoch_caps(TOKENS, budget_tokens=10_000, max_epochs=2)
    np.testing.assert_allclose(caps, [1.0, 0.2, 0.02, 0.0])
    with pytest.raises(ConfigError, match="--max-epochs"):
        epoch_caps(TOKENS, budget_tokens=100_000, max_epochs=1)  # pool holds 0.1x the budget


def test_samples_sum_to_one_respect_caps_and_min_weight():
    tokens = np.array([5_000.0, 3_000, 1_000, 500, 200])
    prior = size_prior(tokens, 0.5)
    caps = epoch_caps(tokens, budget_tokens=5_000, max_epochs=1)  # [1, .6, .2, .1, .04]
    X = sample_mixtures(prior, 200, np.random.default_rng(0), caps=caps, min_weight=0.01)
    assert X.shape == (200, 5)
    np.testing.assert_allclose(X.sum(axis=1), 1.0, atol=1e-12)
    assert (caps + 1e-9 >= X).all()
    assert ((X == 0) | (X >= 0.01 * 0.99)).all()  # tiny weights were zeroed
    # spread: the strengths give spiky and flat mixtures alike
    assert X.max(axis=1).min() < 0.6 and X.max(axis=1).max() > 0.9
    # distinct
    d = np.abs(X[:, None, :] - X[None, :, :]).sum(-1) + np.eye(len(X)) * 9
    assert d.min() > 1e-3 / 2


def test_sampling_is_deterministic_and_avoids_existing():
    prior = size_prior(np.array([3.0, 2, 1]), 0.5)
    a = sample_mixtures(prior, 20, np.random.default_rng(7))
    b = sample_mixtures(prior, 20, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    c = sample_mixtures(prior, 20, np.random.default_rng(8), existing=a)
    assert np.abs(c[:, None, :] - a[None, :, :]).sum(-1).min() >= 1e-3


def test_impossible_count_is_an_error():
    prior = np.array([0.5, 0.5])
    caps = np.array([0.5, 0.5])  # only one mixture fits: (0.5, 0.5)
    with pytest.raises(ConfigError, match="distinct mixtures"):
        sample_mixtures(prior, 5, np.random.default_rng(0), caps=caps, max_rounds=3)


def test_dedupe_by_hand():
    rows = np.array([[0.5, 0.5], [0.5001, 0.4999], [0.9, 0.1]])
    np.testing.assert_array_equal(dedupe(rows, 1e-2), rows[[0, 2]])
    np.testing.assert_array_equal(dedupe(rows, 1e-2, existing=np.array([[0.9, 0.1]])), rows[:1])


def test_sample_near_stays_near_and_in_caps():
    center = np.array([[0.7, 0.2, 0.1]])
    caps = np.array([0.8, 1.0, 1.0])
    X = sample_near(center, 100, np.random.default_rng(0), concentration=200, caps=caps)
    assert (caps + 1e-9 >= X).all()
    assert np.abs(X - center).sum(axis=1).mean() < 0.15


def test_climb_budget_split():
    assert split_budget(112) == [64, 32, 16]
    assert split_budget(28) == [16, 8, 4]
    assert sum(split_budget(10, (2, 2, 1, 1))) == 10
    assert parse_ratio("6:1") == (6, 1)
    with pytest.raises(ConfigError, match="--rounds"):
        parse_ratio("4:x")


def test_fixed_decimals_sum_exactly():
    w = [1 / 3, 1 / 3, 1 / 3]
    r = fixed_decimals(w)
    assert round(sum(r) * 1e6) == 1e6
    assert fixed_decimals([1e-9, 1 - 1e-9])[0] == 1e-6  # no positive weight rounds to 0
