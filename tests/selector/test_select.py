"""``select``: exact token accounting, quotas from a mixture, Gumbel ranking, repetition,
and clear errors; on real demo text annotated with real heuristics."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assay.annotate import read_annotations
from assay.errors import AssayError, ConfigError
from selector.gumbel import choose
from selector.mixture import Group, Mixture
from selector.select import SelectConfig, read_selection, select

TOKENIZER = "all-minilm-l6-v2"

SCORE = "rps_doc_frac_unique_words"


def _read(out) -> pa.Table:
    manifest, _ = read_selection(out)
    files = [f for g in manifest["groups"] for f in g["files"]]
    return pa.concat_tables([pq.read_table(out / f) for f in files])


def test_choose_hand_values():
    scores = np.array([5.0, 4.0, 3.0, 2.0, 1.0, np.nan])
    tokens = np.array([10, 10, 10, 10, 10, 10])
    group = np.array([0, 1, 0, 1, 0, 0])
    c = choose(scores, tokens, group, np.array([0.5, 0.5]), 40)
    assert sorted(c.rows.tolist()) == [0, 1, 2, 3]  # 20 tokens from each group, best first
    assert [g["tokens_selected"] for g in c.groups] == [20, 20]
    # group 1 holds 20 tokens: without repetition the rest goes to group 0 (NaN never)
    c = choose(scores, tokens, group, np.array([0.25, 0.75]), 50)
    assert sorted(c.rows.tolist()) == [0, 1, 2, 3, 4] and c.groups[1]["short"]
    c = choose(scores, tokens, group, np.array([0.0, 1.0]), 40, max_epochs=2.0)
    assert sorted(zip(c.rows.tolist(), c.copies.tolist(), strict=True)) == [
        (1, 0),
        (1, 1),
        (3, 0),
        (3, 1),
    ]


def test_budget_accounting_is_exact(annotated_sample, tmp_path):
    from raters.tokens import TokenCounter

    cfg = SelectConfig(budget_tokens=3000, score=f"heuristics.{SCORE}", tokenizer=TOKENIZER)
    m = select(annotated_sample, tmp_path / "sel", cfg)
    assert m["tokens"]["source"].startswith("n_tokens column")
    table = _read(tmp_path / "sel")
    recount = TokenCounter(TOKENIZER)(table.column("text").to_pylist())
    assert int(recount.sum()) == m["counts"]["tokens_selected"] <= 3000
    assert m["counts"]["tokens_left"] == 3000 - int(recount.sum())
    assert m["counts"]["tokens_left"] < 200  # first-fit leaves less than a short document
    # the same run, counting tokens itself (no n_tokens under this tokenizer name)
    counted = select(
        annotated_sample,
        tmp_path / "sel2",
        SelectConfig(budget_tokens=3000, score=f"heuristics.{SCORE}", tokenizer=str(_minilm())),
    )
    assert counted["tokens"]["source"].startswith("counted")
    assert counted["counts"]["tokens_selected"] == m["counts"]["tokens_selected"]


def _minilm():
    from raters.hub import resolve_model

    return resolve_model(TOKENIZER)


def test_temperature_zero_takes_the_best(annotated_sample, tmp_path):
    all_rows = read_annotations(annotated_sample)
    cfg = SelectConfig(budget_tokens=4000, score=f"heuristics.{SCORE}", tokenizer=TOKENIZER)
    select(annotated_sample, tmp_path / "sel", cfg)
    chosen = set(_read(tmp_path / "sel").column("id").to_pylist())
    score = all_rows.column(f"heuristics.{SCORE}").to_numpy()
    ids = all_rows.column("id").to_pylist()
    best = ids[int(np.argmax(score))]
    assert best in chosen
    inside = score[[i in chosen for i in ids]]
    outside = score[[i not in chosen for i in ids]]
    assert inside.mean() > outside.mean() + 0.05
    # with hot noise the choice is near random: the score gap shrinks
    hot = SelectConfig(
        budget_tokens=4000, score=f"heuristics.{SCORE}", tokenizer=TOKENIZER, temperature=50
    )
    select(annotated_sample, tmp_path / "hot", hot)
    hot_ids = set(_read(tmp_path / "hot").column("id").to_pylist())
    hot_inside = score[[i in hot_ids for i in ids]]
    assert hot_inside.mean() < inside.mean()


def test_mixture_quotas_and_realised_mixture(annotated_sample, tmp_path):
    rows = read_annotations(annotated_sample)
    domains = rows.column("domain").to_pylist()
    tokens = rows.column("n_tokens").to_numpy()
    held = {d: int(tokens[[x == d for x in domains]].sum()) for d in set(domains)}
    want = {"code": 0.5, "recipe": 0.3, "quote": 0.2}
    mixture = Mixture(groups=[Group(d, w, held[d], 6) for d, w in want.items()], group_by="domain")
    mixture.write(tmp_path / "mix.json")
    budget = min(held["quote"] * 4, 6000)  # quote can give at most its tokens
    cfg = SelectConfig(
        budget_tokens=budget,
        score="-heuristics.rps_doc_mean_word_length",
        mixture=str(tmp_path / "mix.json"),
        tokenizer=TOKENIZER,
    )
    m = select(annotated_sample, tmp_path / "sel", cfg)
    realised = Mixture.read(tmp_path / "sel" / "mixture.json")
    by = {g.name: g for g in realised.groups}
    assert set(by) >= set(want)
    assert all(by[d].tokens_selected == 0 for d in by if d not in want)
    table = _read(tmp_path / "sel")
    assert set(table.column("domain").to_pylist()) <= set(want)
    for d in want:
        got = table.filter(pa.compute.equal(table.column("domain"), d))
        assert int(pa.compute.sum(got.column("n_tokens")).as_py() or 0) == by[d].tokens_selected
        info = next(g for g in m["groups"] if g["name"] == d)
        assert info["tokens_selected"] <= info["quota_tokens"]
        assert by[d].paths == [f"group={d}"]
    assert sum(g.tokens_selected for g in realised.groups) == m["counts"]["tokens_selected"]
    assert m["config"]["mixture"] == str(tmp_path / "mix.json")


def test_short_group_repeats_only_when_allowed(annotated_sample, tmp_path):
    rows = read_annotations(annotated_sample)
    held = int(pa.compute.sum(rows.column("n_tokens")).as_py())
    base = dict(score=f"heuristics.{SCORE}", tokenizer=TOKENIZER, group_by="domain")
    once = select(annotated_sample, tmp_path / "a", SelectConfig(budget_tokens=2 * held, **base))
    assert once["counts"]["tokens_selected"] == held and once["counts"]["docs_repeated"] == 0
    twice = select(
        annotated_sample,
        tmp_path / "b",
        SelectConfig(budget_tokens=2 * held, max_epochs=2.0, **base),
    )
    assert twice["counts"]["tokens_selected"] == 2 * held
    copies = _read(tmp_path / "b").column("select.copy").to_numpy()
    assert (copies == 1).sum() == (copies == 0).sum() == rows.num_rows


def test_errors_name_the_flag(annotated_sample, tmp_path):
    with pytest.raises(ConfigError, match="--budget-tokens"):
        SelectConfig(budget_tokens=-5, score="x")
    with pytest.raises(ConfigError, match="exactly one of --score"):
        SelectConfig(budget_tokens=5)
    with pytest.raises(ConfigError, match="no column"):
        select(annotated_sample, tmp_path / "s", SelectConfig(budget_tokens=9, score="nope"))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("mine")
    cfg = SelectConfig(budget_tokens=900, score=f"heuristics.{SCORE}", tokenizer=TOKENIZER)
    with pytest.raises(AssayError, match="not a finished selection"):
        select(annotated_sample, tmp_path / "busy", cfg)
    select(annotated_sample, tmp_path / "ok", cfg)
    with pytest.raises(AssayError, match="--overwrite"):
        select(annotated_sample, tmp_path / "ok", cfg)
    again = select(annotated_sample, tmp_path / "ok", cfg, overwrite=True)
    assert json.loads((tmp_path / "ok" / "manifest.json").read_text())["kind"] == "selection"
    assert again["counts"]["tokens_selected"] <= 900


def test_a_killed_run_leaves_no_half_artifact(annotated_sample, tmp_path):
    """Output is staged beside OUT and renamed at the end; a stale staging folder of a
    killed run is replaced, a foreign one is refused."""
    cfg = SelectConfig(budget_tokens=900, score=f"heuristics.{SCORE}", tokenizer=TOKENIZER)
    stale = tmp_path / ".sel.staging"
    stale.mkdir()
    (stale / ".assay-staging").touch()
    (stale / "group=junk").mkdir()
    select(annotated_sample, tmp_path / "sel", cfg)
    assert not stale.exists() and (tmp_path / "sel" / "manifest.json").is_file()
    assert not (tmp_path / "sel" / ".assay-staging").exists()
    foreign = tmp_path / ".other.staging"
    foreign.mkdir()
    with pytest.raises(AssayError, match="not written by assay"):
        select(annotated_sample, tmp_path / "other", cfg)
