"""Gumbel top-k, quotas and budget filling, checked by hand values and by statistics."""

from __future__ import annotations

import numpy as np
import pytest

from assay.errors import ConfigError
from selector.gumbel import (
    fill_budget,
    group_index,
    group_quotas,
    gumbel_topk,
    largest_remainder,
    rank_order,
    repeat_fill,
)


def test_temperature_zero_is_plain_topk_with_stable_ties():
    scores = np.array([0.3, 2.0, 2.0, -1.0, 5.0, np.nan])
    assert gumbel_topk(scores, 3, 0.0).tolist() == [4, 1, 2]
    assert rank_order(scores).tolist() == [4, 1, 2, 0, 3]  # NaN never ranked
    rng = np.random.default_rng(1)
    x = rng.normal(size=1000)
    assert set(gumbel_topk(x, 50, 0.0)) == set(np.argsort(-x)[:50])


def test_high_temperature_approaches_uniform():
    scores = np.linspace(0, 3, 10)  # item 9 is e^3 = 20x as likely as item 0 at T=1
    rng = np.random.default_rng(0)
    hot = np.bincount(
        np.concatenate([gumbel_topk(scores, 1, 1000.0, rng) for _ in range(4000)]), minlength=10
    )
    assert hot.min() > 300 and hot.max() < 500  # ~400 each
    warm = np.bincount(
        np.concatenate([gumbel_topk(scores, 1, 1.0, rng) for _ in range(4000)]), minlength=10
    )
    p = np.exp(scores) / np.exp(scores).sum()  # the exact softmax law at T=1
    assert np.abs(warm / 4000 - p).max() < 0.03


def test_negative_temperature_is_refused():
    with pytest.raises(ConfigError, match="--temperature"):
        gumbel_topk(np.ones(3), 1, -1.0)


def test_largest_remainder_sums_exactly():
    assert largest_remainder(np.array([1, 1, 1]), 10).tolist() == [4, 3, 3]
    assert largest_remainder(np.array([0.5, 0.25, 0.25]), 7).tolist() == [3, 2, 2]
    w = np.random.default_rng(0).random(50)
    assert largest_remainder(w, 123_457).sum() == 123_457


def test_quotas_redistribute_a_short_group():
    quota, short = group_quotas(np.array([0.5, 0.5]), np.array([100, 1000]), 400)
    assert quota.tolist() == [100, 300]
    assert short.tolist() == [True, False]
    # three groups, one short: its deficit goes 2:1 to the others by weight
    quota, short = group_quotas(np.array([0.2, 0.4, 0.4]), np.array([10, 10**6, 10**6]), 1000)
    assert quota.tolist() == [10, 495, 495] and short.tolist() == [True, False, False]


def test_quotas_with_repetition_and_exhaustion():
    # max_epochs 3: the short group may give 3x what it holds
    quota, short = group_quotas(np.array([0.5, 0.5]), np.array([100, 1000]), 400, 3.0)
    assert quota.tolist() == [200, 200] and not short.any()
    # everything capped: the quotas sum to what exists
    quota, short = group_quotas(np.array([0.5, 0.5]), np.array([100, 100]), 1000)
    assert quota.tolist() == [100, 100] and short.all()
    with pytest.raises(ConfigError, match="--budget-tokens"):
        group_quotas(np.array([1.0]), np.array([10]), -5)


def test_fill_budget_never_overflows_and_skips_big_documents():
    assert fill_budget(np.array([0, 1, 2]), np.array([5, 9, 3]), 10).tolist() == [0, 2]
    assert fill_budget(np.array([2, 1, 0]), np.array([5, 9, 3]), 12).tolist() == [2, 1]
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 500, size=5000)
    order = rng.permutation(5000)
    for quota in (1, 999, 250_000, 10**9):
        taken = fill_budget(order, tokens, quota)
        assert tokens[taken].sum() <= quota
        assert len(set(taken.tolist())) == taken.size
    exact = fill_budget(order, tokens, 250_000)
    assert 250_000 - tokens[exact].sum() < tokens.min() + 1 or exact.size == 5000


def test_repeat_fill_counts_copies():
    picks, copies = repeat_fill(np.array([1, 0]), np.array([3, 4]), 16)
    # 7 tokens per pass: two full passes (14), then the best doc that fits in 2: none
    assert picks.tolist() == [1, 0, 1, 0] and copies.tolist() == [0, 0, 1, 1]
    picks, copies = repeat_fill(np.array([1, 0]), np.array([3, 4]), 18)
    assert picks.tolist() == [1, 0, 1, 0, 1] and copies.tolist() == [0, 0, 1, 1, 2]


def test_group_index():
    names, idx = group_index(np.array([3, 1, 3, 7]))
    assert names == ["1", "3", "7"] and idx.tolist() == [1, 0, 1, 2]
    names, idx = group_index(["b", "a", None])
    assert names == ["", "a", "b"] and idx.tolist() == [2, 1, 0]
