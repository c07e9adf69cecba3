"""Pure helpers of benchmarks/selection_efficacy.py, by hand: held-out target slices and
which rows each arm selects (the ablation arms included)."""

from __future__ import annotations

import numpy as np
import pytest


def _bench():
    from assay.cli_pipeline import _benchmark_module

    return _benchmark_module()


def test_efficacy_held_out_random_spans_domains_and_column_value_matches():
    bench = _bench()
    docs = [{"domain": d} for d in ["a"] * 400 + ["b"] * 400]
    rows = bench.held_out(docs, "random", np.random.default_rng(0))
    assert len(set(rows)) == bench.TARGET_DOCS and {docs[i]["domain"] for i in rows} == {"a", "b"}
    rows = bench.held_out(docs, "domain=b", np.random.default_rng(0))
    assert {docs[i]["domain"] for i in rows} == {"b"}
    with pytest.raises(Exception, match="random or COLUMN=VALUE"):
        bench.held_out(docs, "nonsense", np.random.default_rng(0))


def test_efficacy_arm_rows_by_hand():
    bench = _bench()
    n = 6
    pool = bench.Pool(
        ids=np.arange(n), texts=[""] * n, tokens=np.full(n, 10), quality=np.arange(n, dtype=float),
        influence=np.array([5.0, -3, 0, -1, 2, np.nan]), topic=np.array([0, 0, 0, 1, 1, 1]),
        topic_share=np.array([0.5, 0.5]), mix_group=np.array([0, 0, -1, 1, 1, 1]),
        mix_weights=np.array([1.0, 0.0]), assay_rows=np.array([2]), domain=None,
        dsir=np.array([0.0, 9.0, 1.0, 8.0, 2.0, 3.0]),
    )  # fmt: skip
    assert bench.arm_rows("quality", 0, pool, 20).tolist() == [4, 5]
    assert bench.arm_rows("influence", 0, pool, 20).tolist() == [1, 3]  # most negative
    assert bench.arm_rows("mixture", 0, pool, 20).tolist() == [0, 1]  # group 0 only, row 2 pruned
    assert bench.arm_rows("assay", 0, pool, 20).tolist() == [2]
    assert bench.arm_rows("dsir", 0, pool, 20).tolist() == [1, 3]  # highest log weights
    assert bench.domain_shares(["a", "b", "a"], [1, 2, 1]) == {"a": 0.5, "b": 0.5}
    assert bench.total_variation({"a": 1.0}, {"b": 1.0}) == 1.0
