"""``assay mix search`` end to end on real demo text: built-in micro proxies, a proxy
command, offline runs, and the CLI (search + export)."""

from __future__ import annotations

import csv
import json
import random
import sys
from pathlib import Path

import pytest

from assay.errors import AssayError, ConfigError
from selector.mixture import Mixture
from selector.proxy_lm import ProxyConfig
from selector.search import SearchConfig, run_search

DOMAINS = ("encyclopedic", "code", "legal", "recipe", "dialogue")
MICRO = dict(hidden=32, layers=1, heads=2, seq_len=128, batch_size=4, tokens=8_192, seed=0)

# A user's own "trainer" for --proxy-cmd: a character bigram LM fitted on the mixture's
# groups (token-weighted), scored on the target. Real text, real measurement, no torch.
SCRIPT = r"""
import json, math, sys, collections
mixture_json, out, pool, target = sys.argv[1:5]
mix = json.load(open(mixture_json))
docs = collections.defaultdict(list)
for line in open(pool):
    r = json.loads(line)
    docs[r["domain"]].append(r["text"][:1000])
tgt = [json.loads(l)["text"] for l in open(target)]
def model(texts):
    c, n = collections.Counter(), collections.Counter()
    for t in texts:
        for a, b in zip(t, t[1:]):
            c[a, b] += 1; n[a] += 1
    return c, n
models = {g["name"]: model(docs[g["name"]]) for g in mix["groups"]}
w = {g["name"]: g["weight"] for g in mix["groups"]}
nats = count = 0
for t in tgt:
    for a, b in zip(t[:1000], t[1:1000]):
        p = sum(w[g] * (c[a, b] + 0.01) / (n[a] + 0.01 * 256) for g, (c, n) in models.items())
        nats -= math.log(p); count += 1
print("progress line that is not JSON")
print(json.dumps({"wiki-val": {"loss": nats / count}}))
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, demo_records) -> tuple[Path, Path]:
    """A small pool (5 domains x 40 docs, shortest first) and 20 held-out wiki docs."""
    rng = random.Random(0)
    by: dict[str, list[dict]] = {d: [] for d in DOMAINS}
    for r in demo_records:
        if r["domain"] in by and len(r["text"]) < 6000:
            by[r["domain"]].append(r)
    root = tmp_path_factory.mktemp("mix")
    val = rng.sample(by["encyclopedic"], 20)
    by["encyclopedic"] = [r for r in by["encyclopedic"] if r not in val]
    pool = [r for d in DOMAINS for r in rng.sample(by[d], 40)]
    pool += val  # the target docs are in the pool too: the search must leave them out
    (root / "pool.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pool))
    (root / "wiki-val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in val))
    return root / "pool.jsonl", root / "wiki-val.jsonl"


def _runs(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_climb_search_builtin_proxies(corpus, tmp_path):
    import torch

    torch.set_num_threads(1)
    pool, val = corpus
    cfg = SearchConfig(
        group_by="domain", method="climb", proxies=14, n_candidates=4000, top_k=32, verify=1
    )
    out = tmp_path / "mixture.json"
    mix = run_search(pool, [str(val)], out, cfg, ProxyConfig(**MICRO), say=lambda m: None)

    again = Mixture.read(out)  # a valid mixture.json
    assert again.weights == pytest.approx(mix.weights)
    assert sum(again.weights.values()) == pytest.approx(1.0)
    assert set(again.weights) == set(DOMAINS)
    m = again.method
    assert m["name"] == "climb" and m["rounds"] == [8, 4, 2] and m["proxy_runs"] == 14
    assert len(m["per_round"]) == 3 and "heldout_spearman" in m["per_round"][1]
    assert again.provenance["target_docs_excluded"] == 20
    # the predictor beats a constant predictor on runs it did not see (5-fold CV)
    last = m["per_round"][-1]
    assert last["cv_mae"] < last["cv_mae_constant"]
    assert last["cv_spearman"] > 0.3
    # the target's own domain gets more than its size share (the prior)
    assert again.weights["encyclopedic"] > m["prior"]["encyclopedic"]

    work = tmp_path / "mixture.search"
    rows = _runs(work / "runs.csv")
    assert len(rows) == 14 + 2  # every proxy, the verification run, the guard's rerun
    assert [r["round"] for r in rows[-5:]] == ["1", "2", "2", "final", "guard"]
    # the guard retrains the best searched mixture at the verification seed and keeps
    # whichever of the two measured lower
    searched = [r for r in rows if r["round"] not in ("final", "guard")]
    best = min(searched, key=lambda r: float(r["objective"]))
    final, guard = rows[-2], rows[-1]
    assert [guard[f"w:{d}"] for d in DOMAINS] == [best[f"w:{d}"] for d in DOMAINS]
    assert guard["seed"] == final["seed"]
    g = m["guard"]
    assert g["predicted_optimum"] == pytest.approx(float(final["objective"]))
    assert g["best_measured_rerun"] == pytest.approx(float(guard["objective"]))
    kept = guard if g["chosen"] == "best_measured" else final
    assert g["chosen"] == (
        "best_measured"
        if float(guard["objective"]) < float(final["objective"])
        else "predicted_optimum"
    )
    for d in DOMAINS:
        assert again.weights.get(d, 0.0) == pytest.approx(float(kept[f"w:{d}"]), abs=1e-5)
    for r in rows:
        w = [float(r[f"w:{d}"]) for d in DOMAINS]
        assert sum(w) == pytest.approx(1.0, abs=1e-4)
        assert float(r["wiki-val:loss"]) > 0 and r["objective"] == r["wiki-val:loss"]
    assert all(r["predicted"] for r in rows if r["round"] in ("1", "2"))
    svg = (work / "predicted.svg").read_text()
    assert svg.startswith("<svg") and svg.count("<circle") == 14
    assert (work / "tokenizer" / "tokenizer.json").exists()

    # offline: refit the runs just written, no proxy trained
    off = run_search(
        pool,
        [str(val)],
        tmp_path / "offline.json",
        SearchConfig(
            group_by="domain", method="regmix", proxies=0, verify=0, n_candidates=4000, top_k=32
        ),
        ProxyConfig(**MICRO),
        runs_csv=str(work / "runs.csv"),
        say=lambda m: None,
    )
    assert off.method["proxy_runs"] == 16  # every measured row of runs.csv
    offline_rows = _runs(tmp_path / "offline.search" / "runs.csv")
    assert {r["source"] for r in offline_rows} == {"offline"}


def test_regmix_search_with_a_proxy_command(corpus, tmp_path):
    pool, val = corpus
    script = tmp_path / "bigram_proxy.py"
    script.write_text(SCRIPT)
    cmd = f"{sys.executable} {script} {{mixture_json}} {{out}} {pool} {val}"
    cfg = SearchConfig(
        group_by="domain", method="regmix", proxies=12, n_candidates=4000, top_k=32, verify=1
    )
    mix = run_search(
        pool,
        [str(val)],
        tmp_path / "m.json",
        cfg,
        ProxyConfig(**MICRO),
        proxy_cmd=cmd,
        say=lambda m: None,
    )
    assert mix.method["proxy"]["command"] == cmd
    rep = mix.method["per_round"][0]
    assert rep["cv_mae"] < rep["cv_mae_constant"] and rep["cv_spearman"] > 0.5
    # a character bigram of the target domain is best fitted by the target domain itself
    assert max(mix.weights, key=mix.weights.get) == "encyclopedic"
    run0 = tmp_path / "m.search" / "runs" / "run-0000"
    sent = json.loads((run0 / "mixture.json").read_text())
    assert sent["kind"] == "mixture" and sent["method"]["tokens"] == MICRO["tokens"]
    assert len(_runs(tmp_path / "m.search" / "runs.csv")) == 14  # 12 + verify + guard

    # --resume after a crash: finished runs are replayed, not retrained; same answer
    (tmp_path / "m.search" / "runs" / "run-0003").rename(tmp_path / "kept")
    again = run_search(pool, [str(val)], tmp_path / "m.json", cfg, ProxyConfig(**MICRO),
                       proxy_cmd=cmd, resume=True, say=lambda m: None)  # fmt: skip
    rows = _runs(tmp_path / "m.search" / "runs.csv")
    assert {r["source"] for r in rows} == {"cached"} and len(rows) == 14
    assert not (tmp_path / "m.search" / "runs" / "run-0003").exists()  # not run again
    assert again.weights == pytest.approx(mix.weights)
    with pytest.raises(AssayError, match="other settings"):
        run_search(pool, [str(val)], tmp_path / "m.json", cfg,
                   ProxyConfig(**{**MICRO, "tokens": 4096}), proxy_cmd=cmd, resume=True,
                   say=lambda m: None)  # fmt: skip


FLAT = r"""
import json, random, sys
mixture_json, out, seed = sys.argv[1:4]
print(json.dumps({"wiki-val": {"loss": 5.0 + random.Random(int(seed)).gauss(0, 0.02)}}))
"""


def test_trust_search_with_a_proxy_command(corpus, tmp_path):
    """The default search: proxies by the rule, every decision recorded in mixture.json."""
    pool, val = corpus
    script = tmp_path / "bigram_proxy.py"
    script.write_text(SCRIPT)
    cmd = f"{sys.executable} {script} {{mixture_json}} {{out}} {pool} {val}"
    said: list[str] = []
    mix = run_search(pool, [str(val)], tmp_path / "m.json", SearchConfig(group_by="domain"),
                     ProxyConfig(**MICRO), proxy_cmd=cmd, say=said.append)  # fmt: skip
    m = Mixture.read(tmp_path / "m.json").method
    assert m["name"] == "trust" and m["proxy_runs"] == 20  # 4 per group x 5 domains
    assert m["proxies_rule"].startswith("4 per group x 5 groups")
    assert m["rounds"] == [10, 5, 5]
    p = m["predictor"]
    assert set(p["cv"]) == {"loglinear", "gp", "lightgbm", "constant"}
    assert p["chosen"] in p["cv"] and p["cv"][p["chosen"]]["rmse"] <= p["cv"]["constant"]["rmse"]
    assert 0 < p["skill"] <= 1
    prop, region = m["proposal"], m["trust_region"]
    assert prop["kl_to_prior"] <= region["radius_kl"] + 1e-9
    assert region["radius_kl"] == pytest.approx(region["max_kl"] * p["skill"], rel=1e-4)
    assert prop["predicted_std"] >= 0 and 0 <= prop["step"] <= 1
    v = m["verification"]
    assert v["seeds"] == 3 and len(v["proposal"]) == len(v["prior"]) == 3
    # a character bigram of the target is best fitted by more of the target's own domain
    assert v["chosen"] == "proposal" and v["difference"] < -v["noise"]
    assert mix.weights["encyclopedic"] > m["prior"]["encyclopedic"]
    rows = _runs(tmp_path / "m.search" / "runs.csv")
    assert [r["round"] for r in rows].count("verify-prior") == 3 and len(rows) == 26
    assert any("verification: the proposal beats the prior" in s for s in said)


def test_trust_search_returns_the_prior_when_nothing_helps(corpus, tmp_path):
    """A proxy whose loss ignores the mixture (seed noise only): the prior comes back."""
    pool, val = corpus
    script = tmp_path / "flat.py"
    script.write_text(FLAT)
    said: list[str] = []
    mix = run_search(
        pool, [str(val)], tmp_path / "m.json", SearchConfig(group_by="domain", proxies=6),
        ProxyConfig(**MICRO), proxy_cmd=f"{sys.executable} {script} {{mixture_json}} {{out}} "
        "{seed}", say=said.append,
    )  # fmt: skip
    m = mix.method
    assert m["verification"]["chosen"] == "prior"
    assert mix.weights == pytest.approx({k: v for k, v in m["prior"].items() if v > 0}, abs=1e-6)
    assert any("warning: 6 proxy runs for 5 groups" in s for s in said)  # under 2 per group
    assert any("prior" in s for s in said if "verification" in s or "keeps the prior" in s)


def test_proxy_command_failures_are_clear(corpus, tmp_path):
    pool, val = corpus
    cfg = SearchConfig(group_by="domain", method="regmix", proxies=5, verify=0)
    bad = tmp_path / "bad.py"
    bad.write_text("import sys; print('boom', file=sys.stderr); sys.exit(3)")
    with pytest.raises(AssayError, match="exited with 3: boom"):
        run_search(
            pool,
            [str(val)],
            tmp_path / "x.json",
            cfg,
            ProxyConfig(**MICRO),
            proxy_cmd=f"{sys.executable} {bad} {{mixture_json}}",
            say=lambda m: None,
        )
    with pytest.raises(ConfigError, match="unknown fields"):
        run_search(
            pool,
            [str(val)],
            tmp_path / "x.json",
            cfg,
            ProxyConfig(**MICRO),
            proxy_cmd="train.sh {mixture} {out}",
            say=lambda m: None,
        )
    with pytest.raises(ConfigError, match="--group-by"):
        run_search(
            pool,
            [str(val)],
            tmp_path / "x.json",
            SearchConfig(group_by="nope", proxies=5),
            ProxyConfig(**MICRO),
            say=lambda m: None,
        )


@pytest.mark.slow
def test_groups_from_a_real_clusters_folder(annotated_sample, tmp_path):
    """annotated -> MiniLM embeddings -> FAISS clusters -> groups by cluster.topic."""
    from clustering.config import ClusterConfig
    from clustering.embed import Embedder, embed_corpus
    from clustering.run import cluster_corpus
    from selector.proxy_data import load_groups

    ann = load_groups(annotated_sample, "domain")
    assert ann.n_tokens is not None and all(n > 0 for n in ann.n_tokens)
    assert len(set(ann.groups)) == 10 and ann.provenance["kind"] == "annotations"

    emb = tmp_path / "emb"
    embed_corpus(annotated_sample, emb, Embedder("all-minilm-l6-v2", max_tokens=64))
    clusters = tmp_path / "clusters"
    cfg = ClusterConfig(k=6, topics=3, map_method="pca", terms_docs=20)
    cluster_corpus(annotated_sample, emb, clusters, cfg)
    docs = load_groups(clusters, "cluster.topic")
    assert docs.provenance["kind"] == "clusters" and len(set(docs.groups)) == 3
    assert sorted(docs.ids) == sorted(ann.ids)  # every document, once, with its text
    assert sum(docs.n_tokens) == sum(ann.n_tokens)
    by_id = dict(zip(ann.ids, ann.texts, strict=True))
    assert all(by_id[i] == t for i, t in zip(docs.ids, docs.texts, strict=True))
    with pytest.raises(ConfigError, match="--group-by"):
        load_groups(clusters, "no-such-column")


def test_cli_search_and_export(corpus, tmp_path):
    from typer.testing import CliRunner

    from assay.cli import app

    pool, val = corpus
    out = tmp_path / "mix.json"
    res = CliRunner().invoke(app, [
        "mix", "search", str(pool), "--target", str(val), "-o", str(out),
        "--group-by", "domain", "--method", "regmix", "--proxies", "6", "--verify", "0",
        "--candidates", "2000", "--top-k", "16", "--proxy-hidden", "32", "--proxy-layers", "1",
        "--proxy-heads", "2", "--proxy-seq-len", "128", "--proxy-tokens", "2048",
        "--proxy-batch-size", "4", "--budget-tokens", "100000", "--max-epochs", "4",
    ])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "regmix: 6 proxy runs" in res.output
    mix = Mixture.read(out)
    assert mix.budget_tokens == 100_000
    for fmt in ("megatron", "olmo-core", "hf"):
        res = CliRunner().invoke(
            app, ["mix", "export", str(out), "--format", fmt, "-o", str(tmp_path / fmt)]
        )
        assert res.exit_code == 0, res.output
        assert "epochs" in res.output
    bad = CliRunner().invoke(app, ["mix", "export", str(out), "--format", "x", "-o", "y"])
    assert bad.exit_code == 2 and "--format must be one of" in bad.output


@pytest.mark.slow
def test_trust_search_verifies_on_held_out_target_documents(corpus, tmp_path):
    """Built-in proxies: the rounds fit on one half of the target, the verification reads
    only the other half, and runs.csv records both halves for every run."""
    import torch

    torch.set_num_threads(1)
    pool, val = corpus
    cfg = SearchConfig(group_by="domain", proxies=10, n_candidates=2000)
    said: list[str] = []
    mix = run_search(pool, [str(val)], tmp_path / "m.json", cfg, ProxyConfig(**MICRO),
                     say=said.append)  # fmt: skip
    m = mix.method
    assert m["holdout"] == {"share": 0.5, "docs": {"wiki-val": {"search": 10, "holdout": 10}}}
    assert any("10 searched + 10 held out for the verification" in s for s in said)
    rows = _runs(tmp_path / "m.search" / "runs.csv")
    for r in rows:
        assert float(r["wiki-val:loss"]) > 0 and float(r["wiki-val.holdout:loss"]) > 0
    verify = [r for r in rows if r["round"].startswith("verify")]
    searched = [r for r in rows if not r["round"].startswith("verify")]
    assert len(searched) == 10
    assert all(r["objective"] == r["wiki-val:loss"] for r in searched)
    v = m["verification"]
    if verify:  # the proposal moved: both mixtures were retrained and scored on the holdout
        assert len(verify) == 6 and all(r["objective"] == r["wiki-val.holdout:loss"]
                                        for r in verify)  # fmt: skip
        assert v["targets"] == ["wiki-val.holdout"] and v["on"] == "held-out target documents"
        assert v["proposal"] == pytest.approx(
            [float(r["objective"]) for r in verify if r["round"] == "verify-proposal"], abs=1e-5
        )
    else:
        assert v["chosen"] == "prior"


def test_target_split_is_disjoint_seeded_and_skips_small_targets():
    from selector.trust_search.holdout import split_targets

    texts = [f"document {i}" for i in range(21)]
    tsets = {"big": (texts, [str(i) for i in range(21)]), "small": (texts[:5], list("abcde"))}
    search, held, report = split_targets(tsets, 0.5, seed=3)
    assert report == {"big": {"search": 11, "holdout": 10}, "small": {"search": 5, "holdout": 0}}
    assert set(held) == {"big.holdout"} and search["small"] == tsets["small"]
    ids_s, ids_h = set(search["big"][1]), set(held["big.holdout"][1])
    assert not ids_s & ids_h and ids_s | ids_h == set(tsets["big"][1])
    assert split_targets(tsets, 0.5, seed=3)[1] == held  # a resumed search splits alike
    assert split_targets(tsets, 0.5, seed=4)[1] != held
    assert split_targets(tsets, 0.0, seed=3)[1] == {}
    with pytest.raises(ConfigError, match="holdout"):
        split_targets(tsets, 1.0, seed=3)
    with pytest.raises(ConfigError, match="clashes"):
        split_targets({"a": tsets["big"], "a.holdout": tsets["big"]}, 0.5, seed=0)
