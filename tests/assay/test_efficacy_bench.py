"""Pure helpers of benchmarks/selection_efficacy.py, by hand: held-out target slices and
which rows each arm selects (the ablation arms included)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def _bench(name: str = "selection_efficacy"):
    from assay.cli_pipeline import _benchmark_module

    return _benchmark_module(name)


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
    bench = _bench("efficacy_common")
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
    # the quotas (group 0 only; row 2 is pruned), then DSIR inside: rows 1 (9.0) and 0
    assert bench.arm_rows("mixture+dsir", 0, pool, 20).tolist() == [0, 1]
    # quality + dsir z-scores inside the quotas: row 1 (q 1, dsir 9) beats row 0 (0, 0)
    assert bench.arm_rows("assay-influence", 0, pool, 10).tolist() == [1]
    assert bench.domain_shares(["a", "b", "a"], [1, 2, 1]) == {"a": 0.5, "b": 0.5}
    assert bench.total_variation({"a": 1.0}, {"b": 1.0}) == 1.0


def test_suite_targets_hold_out_their_documents_and_keep_made_junk_for_quality_only(
    demo_records,
):
    t = _bench("efficacy_targets")
    corpus = t.sample_corpus(demo_records, 60, seed=0)
    assert max(__import__("collections").Counter(d["domain"] for d in corpus).values()) == 60
    clean = [d for d in corpus if d["domain"] != "junk"]
    made = t.low_quality_docs(clean, 10, 4, seed=0)
    source = {d["id"]: d["text"] for d in clean}
    assert len(made) == 14 and all(m["text"] != source[t.made_from(m["id"])] for m in made)
    assert {m["source"] for m in made} == {f"made:{k}" for k in t.MADE_KINDS} | {
        "made:near_duplicate"
    }
    targets = t.make_targets(corpus + made, target_docs=20, dev_docs=6, min_domain_docs=40)
    names = [x.name for x in targets]
    assert "junk" not in names and names[-2:] == [t.GENERAL, t.QUALITY] and len(names) == 11
    made_ids = {m["id"] for m in made}
    for x in targets:
        own = {d["id"] for d in x.dev + x.eval}
        assert len(x.dev) == 6 and len(x.eval) == 14 and own <= x.exclude
        if x.kind == "domain":
            assert {d["domain"] for d in x.dev + x.eval} == {x.name}
        if x.kind == "quality":  # clean target; the made junk stays in its pool
            assert not {d["domain"] for d in x.dev + x.eval} & {"junk"}
            assert made_ids - x.exclude == {m for m in made_ids if t.made_from(m) not in own}
        else:
            assert made_ids <= x.exclude


def test_suite_summary_counts_wins_and_losses_in_random_std(tmp_path):
    rep = _bench("efficacy_report")

    def arm(loss, std=0.1, reach=None):
        return {"loss_mean": loss, "loss_std": std, "bigram_mean": 0.0, "reach_fraction": reach}

    results = [
        {"target": "a", "arms": {"random": arm(7.0), "assay": arm(6.8, reach=0.4)}},
        {"target": "b", "arms": {"random": arm(7.0), "assay": arm(7.05)}},
        {"target": "c", "arms": {"random": arm(7.0), "assay": arm(7.3)}},
    ]
    table, s = rep.summarize(results, ["random", "assay"])
    a = s["assay"]
    assert (a["wins"], a["losses"]) == (["a"], ["c"])
    assert a["win_rate"] == a["loss_rate"] == pytest.approx(1 / 3)
    assert a["median_reach_fraction"] is None  # two of three never reach random
    assert s["random"]["win_rate"] == 0 and "| c | assay |" in table
    svg = rep.write_heatmap_svg(tmp_path / "h.svg", results, ["random", "assay"], "t")
    text = Path(svg).read_text()
    assert text.startswith("<svg") and "+3.0" in text and "-2.0" in text
