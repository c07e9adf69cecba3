"""``select --where`` on the lang rater's text column and ``select --dedup`` with clusters
from ``assay dedup``: real demo text plus planted foreign-language documents and
near-copies, annotated with the real raters."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assay.errors import AssayError, ConfigError
from selector.select import SelectConfig, read_selection, select
from selector.select_targets import one_per_cluster

TOKENIZER = "all-minilm-l6-v2"
SCORE = "heuristics.rps_doc_frac_unique_words"
FOREIGN = [
    "Alle Menschen sind frei und gleich an Würde und Rechten geboren. Sie sind mit Vernunft "
    "und Gewissen begabt und sollen einander im Geist der Brüderlichkeit begegnen.",
    "Tous les êtres humains naissent libres et égaux en dignité et en droits. Ils sont doués "
    "de raison et de conscience et doivent agir les uns envers les autres dans un esprit de "
    "fraternité.",
]


@pytest.fixture(scope="module")
def pool(tmp_path_factory, demo_sample):
    """demo_sample + 2 foreign documents + an exact copy of 3 documents, annotated with
    heuristics and lang (n_tokens under MiniLM), and its dedup folder."""
    from assay.annotate import annotate
    from clustering.dedup import dedup_corpus
    from raters.heuristics import HeuristicRater
    from raters.lang import LangRater
    from raters.tokens import TokenCounter

    records = [dict(r) for r in demo_sample]
    records += [{"id": f"foreign-{i}", "text": t, "domain": "x"} for i, t in enumerate(FOREIGN)]
    long = sorted(range(len(demo_sample)), key=lambda i: -len(demo_sample[i]["text"]))[:3]
    records += [dict(demo_sample[i], id=f"copy-{i}") for i in long]
    root = tmp_path_factory.mktemp("filters")
    src = root / "pool.jsonl.gz"
    with gzip.open(src, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    annotate(
        [src],
        root / "annotated",
        [HeuristicRater(), LangRater()],
        shard_size=17,
        count_tokens=TokenCounter(TOKENIZER),
        tokenizer_name=TOKENIZER,
    )
    dedup_corpus(root / "annotated", root / "dedup")
    return root, records


def _selected(out) -> pa.Table:
    manifest, _ = read_selection(out)
    return pa.concat_tables(
        [pq.read_table(out / f) for g in manifest["groups"] for f in g["files"]]
    )


def test_where_on_the_lang_text_column_keeps_english_only(pool, tmp_path):
    root, records = pool
    base = {"budget_tokens": 10**7, "score": SCORE, "tokenizer": TOKENIZER}
    everything = select(root / "annotated", tmp_path / "all", SelectConfig(**base))
    assert {"foreign-0", "foreign-1"} <= set(_selected(tmp_path / "all").column("id").to_pylist())
    cfg = SelectConfig(**base, where="lang == 'en' and lang.score > 0.5")
    m = select(root / "annotated", tmp_path / "en", cfg)
    table = _selected(tmp_path / "en")
    assert set(table.column("lang").to_pylist()) == {"en"}
    assert not {"foreign-0", "foreign-1"} & set(table.column("id").to_pylist())
    excluded = m["counts"]["where_excluded"]
    assert excluded >= 2 and m["counts"]["docs_selected"] == len(records) - excluded
    assert m["config"]["where"] == cfg.where
    assert everything["counts"]["where_excluded"] == 0


def test_dedup_keeps_the_best_scored_document_of_each_cluster(pool, tmp_path):
    from clustering.dedup import dedup_columns

    root, records = pool
    cfg = SelectConfig(
        budget_tokens=10**7, score=SCORE, tokenizer=TOKENIZER, dedup=str(root / "dedup")
    )
    m = select(root / "annotated", tmp_path / "dd", cfg)
    ids = _selected(tmp_path / "dd").column("id").to_pylist()
    cluster = dedup_columns(root / "annotated", root / "dedup")["dedup.cluster"]
    assert len(set(cluster.tolist())) == len(ids) == len(set(ids))  # one per cluster
    assert m["counts"]["duplicates_excluded"] == len(records) - len(ids) >= 3
    for i, r in enumerate(records):
        if r["id"].startswith("copy-"):  # an exact copy scores the same: the first is kept
            original = records[int(r["id"].removeprefix("copy-"))]["id"]
            assert original in ids and r["id"] not in ids and cluster[i] < i
    assert m["inputs"]["dedup"].endswith("dedup")


def test_one_per_cluster_by_hand():
    keep = one_per_cluster(np.array([0, 0, 2, 0, 4]), np.array([1, 3, 5, 3, 0]), np.ones(5, bool))
    assert keep.tolist() == [False, True, True, False, True]
    ok = np.array([True, False, True, True, True])  # the best is filtered out: the next
    keep = one_per_cluster(np.array([0, 0, 2, 0, 4]), np.array([1, 3, 5, 3, 0]), ok)
    assert keep.tolist() == [False, False, True, True, True]


def test_filter_errors_name_the_flag(pool, tmp_path):
    root, _ = pool
    base = {"budget_tokens": 10**6, "score": SCORE, "tokenizer": TOKENIZER}
    with pytest.raises(ConfigError, match="no column"):
        select(root / "annotated", tmp_path / "a", SelectConfig(**base, where="nope == 'x'"))
    with pytest.raises(ConfigError, match="is text and 1 a number"):
        select(root / "annotated", tmp_path / "b", SelectConfig(**base, where="lang == 1"))
    with pytest.raises(AssayError, match="loosen --where"):
        select(root / "annotated", tmp_path / "c", SelectConfig(**base, where="lang == 'xx'"))
    with pytest.raises(AssayError, match=r"no manifest\.json"):
        select(root / "annotated", tmp_path / "d", SelectConfig(**base, dedup=str(tmp_path)))


def test_dedup_then_select_from_the_command_line(pool, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root, _ = pool
    repo = Path(__file__).resolve().parents[2]

    def run(*args):
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        cmd = [sys.executable, "-m", "assay", *map(str, args)]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=repo)

    proc = run("dedup", root / "annotated", "-o", tmp_path / "dd", "--threshold", "0.9")
    assert proc.returncode == 0, proc.stderr
    assert "near-duplicate clusters" in proc.stdout and "--dedup" in proc.stdout
    args = ["select", root / "annotated", "-o", tmp_path / "sel", "--budget-tokens", 10**6]
    args += ["--score", SCORE, "--tokenizer", TOKENIZER, "--dedup", tmp_path / "dd"]
    proc = run(*args, "--where", "lang == 'en'")
    assert proc.returncode == 0, proc.stderr
    assert "left out:" in proc.stdout and "near-duplicates" in proc.stdout
    proc = run(*args[:-2], "--where", "lang = 'en'")
    assert proc.returncode != 0 and "is not an expression" in proc.stderr
    assert "Traceback" not in proc.stderr
