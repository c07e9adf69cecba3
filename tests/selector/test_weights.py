"""learn-weights (Meta-rater): columns, normalisation, the weights file that select reads,
and the whole loop with real tiny proxies on demo text."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from assay import manifest as mf
from assay.errors import ConfigError
from assay.shards import write_shard
from selector.scores import ScoreWeights
from selector.select import SelectConfig, select
from selector.weights import LearnConfig, learn_weights_from_folder, normalise, resolve_columns


def test_columns_and_signs():
    cols = ["h.a", "h.b", "p.nll", "q.x"]
    assert resolve_columns(["h.*", "-p.nll"], cols) == [("h.a", 1), ("h.b", 1), ("p.nll", -1)]
    with pytest.raises(ConfigError, match="matches no numeric column"):
        resolve_columns(["nope*"], cols)
    with pytest.raises(ConfigError, match=">= 2 columns"):
        resolve_columns(["q.x"], cols)
    v, c, s = normalise(np.array([1.0, 3.0, np.nan]), -1)
    assert v.tolist() == [1.0, 0.0, 0.0] and (np.array([1.0, 3.0]) - c) / s == pytest.approx([1, 0])
    with pytest.raises(ConfigError, match="--samples"):
        LearnConfig(samples=2)


def _pool(folder, demo_records, n_other=255, n_ency=45, seed=0):
    """An annotated folder: encyclopedic + other demo docs, a column that marks the
    encyclopedic ones and a column of noise."""
    rng = np.random.default_rng(seed)
    ency = [r for r in demo_records if r["domain"] == "encyclopedic"]
    other = [r for r in demo_records if r["domain"] != "encyclopedic"]
    picks = [other[i] for i in rng.choice(len(other), n_other, replace=False)]
    rows = ency[:n_ency] + picks
    target = [r["text"] for r in ency[n_ency : n_ency + 30]]
    folder.mkdir()
    table = pa.table(
        {
            "id": [r["id"] for r in rows],
            "text": [r["text"] for r in rows],
            "domain": [r["domain"] for r in rows],
            "probe.ency": [1.0 if r["domain"] == "encyclopedic" else 0.0 for r in rows],
            "probe.noise": rng.random(len(rows)),
        }
    )
    write_shard(folder, 0, table, {"rows": len(rows)})
    manifest = mf.new_manifest(
        "annotations", shards=["part-00000.parquet"], config={"text_field": "text"}
    )
    mf.write_json_atomic(folder / "manifest.json", manifest)
    return target


@pytest.mark.slow
def test_learns_to_weight_the_column_that_matters(demo_records, tmp_path):
    target = _pool(tmp_path / "pool", demo_records)
    cfg = LearnConfig(
        samples=10,
        val_fraction=0.3,
        search_samples=2000,
        topk=32,
        proxy={"hidden": 64, "layers": 2, "heads": 4, "seq_len": 64, "tokens": 4096},
    )
    out = tmp_path / "weights.json"
    w = learn_weights_from_folder(tmp_path / "pool", ["probe.*"], {"ency": target}, cfg, out)
    assert w.weights["probe.ency"] > w.weights["probe.noise"]
    assert np.isfinite(w.info["predictor"]["held_out_spearman"])
    v = w.info["verify"]
    assert v["loss"] < v["sampled_mean"]  # the chosen weights beat the average draw
    # the file is what select --weights reads
    again = ScoreWeights.read(out)
    assert again.weights == pytest.approx(w.weights)
    sel = select(
        tmp_path / "pool",
        tmp_path / "sel",
        SelectConfig(budget_tokens=20_000, weights=str(out), tokenizer="all-minilm-l6-v2"),
    )
    assert sel["score"]["weights"] == pytest.approx(w.weights)


def test_select_reads_a_weights_file(demo_records, tmp_path):
    import pyarrow.parquet as pq

    from raters.tokens import TokenCounter

    _pool(tmp_path / "pool", demo_records, n_other=40, n_ency=10)
    pool = pq.read_table(tmp_path / "pool" / "part-00000.parquet")
    ency = [
        t
        for t, d in zip(pool["text"].to_pylist(), pool["domain"].to_pylist(), strict=True)
        if d == "encyclopedic"
    ]
    budget = int(TokenCounter("all-minilm-l6-v2")(ency).sum())  # exactly the 10 documents
    weights = ScoreWeights(
        {"probe.ency": 0.9, "probe.noise": 0.1},
        {"probe.ency": 0, "probe.noise": 0},
        {"probe.ency": 1, "probe.noise": 1},
    )
    weights.write(tmp_path / "w.json")
    cfg = SelectConfig(
        budget_tokens=budget, weights=str(tmp_path / "w.json"), tokenizer="all-minilm-l6-v2"
    )
    m = select(tmp_path / "pool", tmp_path / "sel", cfg)
    chosen = pq.read_table(tmp_path / "sel" / m["groups"][0]["files"][0])
    assert sorted(chosen["domain"].to_pylist()) == ["encyclopedic"] * 10
    assert m["counts"]["tokens_selected"] == budget
    with pytest.raises(ConfigError, match="not a score-weights file"):
        ScoreWeights.read(tmp_path / "sel" / "mixture.json")
