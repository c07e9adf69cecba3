"""The headline: does data chosen by assay train a better model for the same tokens?

Fresh proxy LMs (same size, same seeds: common random numbers) are trained on equal token
budgets chosen six ways from one pool, and scored on a target set that no arm saw:

- ``random``: documents drawn uniformly until the budget (a new draw per seed);
- ``proportional``: quotas proportional to each ``cluster.topic`` group's tokens, random
  documents inside each group (stratified);
- ``quality``: the top ``assay-mini-v1.quality`` documents (the default rater, top-k);
- ``mixture`` (ablation): the mix step's ``mixture.json`` quotas as the select step sets
  them (pruned clusters left out), random documents inside each group;
- ``influence`` (ablation): global top-k of ``-influence.score`` (negative: the document
  lowered the reference loss), no quotas, no pruning;
- ``dsir``: DSIR (Xie et al. 2023, ``raters.dsir``): global top-k of the hashed uni+bigram
  importance weight toward the *dev* half, relative to the pool: the cheap target-aware
  baseline;
- ``assay``: the full pipeline (annotate -> embed -> cluster -> trust-region mixture
  search -> MATES influence -> select) with the target's *dev* half as its target.

The ablations read the ``assay`` arm's pipeline run (no second run); every arm but
``assay`` chooses through ``selector.gumbel.choose`` at temperature 0.

Target (without ``--target``): 264 pool documents held out by ``--target-where``:
``COLUMN=VALUE`` (default ``domain=encyclopedic``, a domain target) or ``random``, a
uniform slice of the whole pool (every domain: a general target, where quality can
matter). 64 are the *dev* half (the pipeline reads it), 200 the *eval* half (only the
final losses read it).

Reported: target loss vs tokens seen per arm (plot), final loss (mean ± std over seeds),
a bigram model on the same documents (tiny proxies mostly measure token statistics, so
the bigram shows whether the proxy ranks arms differently), the total-variation distance
between each arm's and the target's domains (if the pool has ``domain``), and the tokens
``assay`` needs to reach ``random``'s final loss (goal: <= 60%).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/selection_efficacy.py \\
        --pool data/demo [--target VAL.jsonl | --target-where domain=encyclopedic|random] \\
        [--budget-tokens 60000] [--seeds 3] [--preset micro|small] [--pool-docs N]

also as ``assay bench efficacy --pool ... --target ...``. Baseline: ``random``, same run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from html import escape
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from selector.bigram import bigram_nats  # noqa: E402 - the repo is on the path now

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PRESETS = {  # proxy sizes (ENVIRONMENT.md: 0.13M x 31k ~5 s, 1M x 125k ~27 s per run)
    "micro": {"hidden": 64, "layers": 2, "heads": 4, "seq_len": 256},
    "small": {"hidden": 128, "layers": 4, "heads": 4, "seq_len": 256},
}
ARMS = ("random", "proportional", "quality", "dsir", "mixture", "influence", "assay")
STOCHASTIC = ("random", "proportional", "mixture")  # a new random draw per seed
TARGET_RANDOM = "random"  # --target-where value: a uniform slice of the whole pool
TARGET_DOCS = 264  # held-out target documents: 64 dev (selection reads) + 200 eval
COLORS = {"random": "#7f7f7f", "proportional": "#1f77b4", "quality": "#ff7f0e",
          "dsir": "#8c564b", "mixture": "#2ca02c", "influence": "#9467bd",
          "assay": "#d62728"}  # fmt: skip


def tokens_to_reach(curve_x: np.ndarray, curve_y: np.ndarray, level: float) -> float | None:
    """First tokens-seen where a loss curve gets to ``level`` (linear interpolation)."""
    if curve_y[0] <= level:
        return float(curve_x[0])
    for i in range(1, len(curve_y)):
        if curve_y[i] <= level:
            x0, x1, y0, y1 = curve_x[i - 1], curve_x[i], curve_y[i - 1], curve_y[i]
            return float(x0 + (x1 - x0) * (y0 - level) / (y0 - y1))
    return None


def write_curves_svg(path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray]], ref: float,
                     title: str) -> str:  # fmt: skip
    """Mean target loss vs tokens seen, one line per arm; dashed: arm (a)'s final loss."""
    W, H, P = 560, 360, 56
    xs = np.concatenate([c[0] for c in curves.values()])
    ys = np.concatenate([c[1] for c in curves.values()])
    x0, x1 = 0.0, float(xs.max())
    lo, hi = float(ys.min()), float(ys.max())
    lo, hi = lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)

    def sx(x: float) -> float:
        return P + (W - 2 * P) * (x - x0) / max(x1 - x0, 1e-9)

    def sy(y: float) -> float:
        return H - P - (H - 2 * P) * (y - lo) / max(hi - lo, 1e-9)

    parts = [
        f'<rect x="{P}" y="{P}" width="{W - 2 * P}" height="{H - 2 * P}" fill="none" '
        'stroke="#999"/>',
        f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="13">{escape(title)}</text>',
        f'<text x="{W / 2}" y="{H - 12}" text-anchor="middle" font-size="12">tokens seen</text>',
        f'<text x="14" y="{H / 2}" font-size="12" transform="rotate(-90 14 {H / 2})" '
        'text-anchor="middle">target loss (nats/token)</text>',
    ]
    for i in range(5):
        y = lo + (hi - lo) * i / 4
        x = x0 + (x1 - x0) * i / 4
        parts.append(f'<text x="{P - 4}" y="{sy(y) + 4:.1f}" font-size="10" '
                     f'text-anchor="end">{y:.2f}</text>')  # fmt: skip
        parts.append(f'<text x="{sx(x):.1f}" y="{H - P + 14}" font-size="10" '
                     f'text-anchor="middle">{x / 1000:.0f}k</text>')  # fmt: skip
    parts.append(
        f'<line x1="{P}" x2="{W - P}" y1="{sy(ref):.1f}" y2="{sy(ref):.1f}" stroke="#7f7f7f" '
        'stroke-dasharray="4 3"/>'
    )
    for k, (arm, (cx, cy)) in enumerate(curves.items()):
        pts = " ".join(f"{sx(a):.1f},{sy(b):.1f}" for a, b in zip(cx, cy, strict=True))
        color = COLORS.get(arm, "#000")
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>')
        parts.append(f'<text x="{W - P - 110}" y="{P + 16 + 15 * k}" font-size="11" '
                     f'fill="{color}">{escape(arm)}</text>')  # fmt: skip
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'font-family="sans-serif"><title>{escape(title)}</title>' + "".join(parts) + "</svg>\n"
    )
    path.write_text(svg)
    return str(path)


def held_out(docs: list[dict], where: str, rng: np.random.Generator) -> list[int]:
    """Positions of the ``TARGET_DOCS`` target documents that ``--target-where`` holds out:
    ``random`` (uniform over every document) or ``COLUMN=VALUE`` (uniform over matches).

    Example: ``held_out(docs, "domain=encyclopedic", np.random.default_rng(0))``.
    """
    from assay.errors import ConfigError

    if where == TARGET_RANDOM:
        match = list(range(len(docs)))
    else:
        column, sep, value = where.partition("=")
        if not sep:
            raise ConfigError(
                f"--target-where must be {TARGET_RANDOM} or COLUMN=VALUE, got {where!r}"
            )
        match = [i for i, d in enumerate(docs) if str(d.get(column)) == value]
    if len(match) < 300:
        raise ConfigError(f"--target-where {where} matches {len(match)} docs; need >= 300")
    return [match[i] for i in rng.permutation(len(match))[:TARGET_DOCS]]


def _split(pool: list[str], target: str | None, where: str, pool_docs: int | None, seed: int,
           work: Path) -> tuple[list[dict], list[dict], list[dict]]:  # fmt: skip
    """Pool, dev (selection may read it) and eval (only the final losses read it)."""
    from assay.corpus import read_documents
    from assay.records import doc_id

    rng = np.random.default_rng(seed)
    docs = list(read_documents(pool))
    for d in docs:
        d.setdefault("id", doc_id(d["text"]))
    if target is not None:
        tdocs = list(read_documents([target]))
    else:
        tdocs = [docs[i] for i in held_out(docs, where, rng)]
    held = {str(d.get("id") or doc_id(d["text"])) for d in tdocs}
    docs = [d for d in docs if str(d["id"]) not in held]
    if pool_docs is not None and pool_docs < len(docs):
        docs = [docs[i] for i in sorted(rng.permutation(len(docs))[:pool_docs].tolist())]
    order = rng.permutation(len(tdocs))
    n_dev = min(64, len(tdocs) // 4)
    dev = [tdocs[i] for i in order[:n_dev]]
    evals = [tdocs[i] for i in order[n_dev:]]
    for name, rows in (("pool", docs), ("dev", dev), ("eval", evals)):
        with open(work / f"{name}.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    return docs, dev, evals


class Pool(NamedTuple):
    """What the arms choose from: one pipeline run's pool, row for row. (A NamedTuple,
    not a dataclass: ``assay bench efficacy`` loads this file without ``sys.modules``.)"""

    ids: np.ndarray
    texts: list[str]
    tokens: np.ndarray  # SmolLM2 tokens per document (the budget's unit)
    quality: np.ndarray
    influence: np.ndarray  # influence.score: predicted reference-loss change (< 0 helps)
    topic: np.ndarray  # cluster.topic group number of every row (pruned clusters too)
    topic_share: np.ndarray  # each topic's share of the pool's tokens (proportional)
    mix_group: np.ndarray  # group into mix_weights, as the select step sets it; -1 pruned
    mix_weights: np.ndarray  # the mix step's mixture.json weights (mixture, assay quotas)
    assay_rows: np.ndarray
    domain: np.ndarray | None  # the pool's domain column, if any (composition only)
    dsir: np.ndarray | None = None  # DSIR log importance weight toward the dev half


def read_pool(pipeline: Path) -> Pool:
    """The arms' inputs from a finished pipeline folder: the influence-scored annotations,
    clusters, mix step mixture and selection (no step is run again)."""
    import pyarrow.parquet as pq

    from assay import manifest as mf
    from selector.mixture import Mixture
    from selector.select_read import cluster_columns, read_columns
    from selector.select_targets import target_weights

    scored = pipeline / "influence" / "scored"
    shards = mf.read_manifest(scored, kind="annotations")["shards"]
    names = ["id", "text", "n_tokens", "assay-mini-v1.quality", "influence.score"]
    has_domain = "domain" in pq.read_schema(scored / shards[0]).names
    c = read_columns(scored, shards, names + ["domain"] * has_domain)
    cl = cluster_columns(scored, pipeline / "clusters")
    tokens = c["n_tokens"].astype(np.int64)
    topic_names, topic = np.unique(cl["cluster.topic"].astype(str), return_inverse=True)
    share = np.bincount(topic, weights=tokens, minlength=len(topic_names)) / tokens.sum()
    mixture = Mixture.read(pipeline / "mixture" / "mixture.json")
    assert mixture.group_by in cl, f"mixture grouped by {mixture.group_by}, not a cluster column"
    kept = ~cl["cluster.pruned"].astype(bool)  # the select step leaves pruned clusters out
    targets = [(g.name, g.weight) for g in mixture.groups]
    _, mix_weights, mix_group = target_weights(cl[mixture.group_by], tokens, kept, targets)
    sel = mf.read_manifest(pipeline / "selected", kind="selection")
    files = [pipeline / "selected" / f for g in sel["groups"] for f in g["files"]]
    chosen = [i for f in files for i in pq.read_table(f, columns=["id"])["id"].to_pylist()]
    row_of = {str(i): k for k, i in enumerate(c["id"])}
    return Pool(
        ids=c["id"], texts=list(c["text"]), tokens=tokens, quality=c["assay-mini-v1.quality"],
        influence=c["influence.score"], topic=topic, topic_share=share, mix_group=mix_group,
        mix_weights=mix_weights, domain=c.get("domain"),
        assay_rows=np.array(sorted(row_of[str(i)] for i in chosen), dtype=np.int64),
    )  # fmt: skip


def arm_rows(arm: str, seed: int, pool: Pool, budget: int) -> np.ndarray:
    """Sorted pool rows that ``arm`` trains on under proxy seed ``seed``; the random arms
    share one uniform draw per seed (common random numbers), all choose at T=0."""
    from selector.gumbel import choose

    n = len(pool.tokens)
    one, whole = np.zeros(n, dtype=np.int64), np.ones(1)
    noise = np.random.default_rng(1000 + seed).random(n)
    if arm == "random":
        scores, group, weights = noise, one, whole
    elif arm == "proportional":
        scores, group, weights = noise, pool.topic, pool.topic_share
    elif arm == "quality":
        q = pool.quality
        scores, group, weights = np.where(np.isnan(q), np.nanmin(q) - 1.0, q), one, whole
    elif arm == "mixture":
        scores, group, weights = noise, pool.mix_group, pool.mix_weights
    elif arm == "influence":  # NaN scores are never chosen
        scores, group, weights = -pool.influence, one, whole
    elif arm == "dsir":
        if pool.dsir is None:
            raise ValueError("the dsir arm needs Pool.dsir (run_efficacy computes it)")
        scores, group, weights = pool.dsir, one, whole
    elif arm == "assay":
        return pool.assay_rows
    else:
        raise ValueError(f"unknown arm {arm!r}; arms: {', '.join(ARMS)}")
    return np.sort(choose(scores, pool.tokens, group, weights, budget).rows)


def domain_shares(domains: Sequence[object], weights: Sequence[float]) -> dict[str, float]:
    """Each domain's share of ``weights`` (characters, tokens), largest first.
    Example: ``domain_shares(["a", "b", "a"], [1, 2, 1])`` -> ``{"a": 0.5, "b": 0.5}``."""
    total: dict[str, float] = {}
    for d, w in zip(domains, weights, strict=True):
        total[str(d)] = total.get(str(d), 0.0) + float(w)
    s = sum(total.values())
    return {d: w / s for d, w in sorted(total.items(), key=lambda kv: -kv[1])}


def total_variation(p: dict[str, float], q: dict[str, float]) -> float:
    """Half the L1 distance between two share dicts (0: same mix, 1: disjoint)."""
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))


def run_efficacy(
    pool: list[str],
    target: str | None = None,
    *,
    target_where: str = "domain=encyclopedic",
    budget_tokens: int = 60_000,
    seeds: int = 3,
    out: str | os.PathLike = "out/bench/efficacy",
    preset: str = "micro",
    pool_docs: int | None = None,
    raters: tuple[str, ...] = ("heuristics", "perplexity", "assay-mini-v1"),
    mix_method: str = "trust",
    topics: int = 8,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the arms (``ARMS``); write efficacy.json, efficacy.svg, table.md under ``out``."""
    from assay.errors import ConfigError
    from assay.pipeline import load_recipe, run_pipeline
    from selector.bpe import encode_texts, load_tokenizer, train_bpe
    from selector.proxy_data import join_docs
    from selector.proxy_lm import ProxyConfig, train_proxy

    if preset not in PRESETS:
        raise ConfigError(f"--preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    if seeds < 1 or budget_tokens <= 0:
        raise ConfigError("--seeds must be >= 1 and --budget-tokens > 0")
    t_start = time.perf_counter()
    out = Path(out)
    work = out / "data"
    work.mkdir(parents=True, exist_ok=True)
    pool_rows, dev, evals = _split(pool, target, target_where, pool_docs, 0, work)
    say(f"pool {len(pool_rows):,} docs; target dev {len(dev)} / eval {len(evals)} docs")

    # arm assay: the whole pipeline, with the dev half as its target
    proxy_fields = {**PRESETS["micro"], "tokens": 30_000}
    recipe = {
        "corpus": [str(work / "pool.jsonl")],
        "out": str(out / "pipeline"),
        "split": {"skip": True, "target_path": str(work / "dev.jsonl")},
        "annotate": {"raters": list(raters), "options": {"perplexity": {"max_tokens": 32}}},
        "cluster": {"topics": topics},
        # trust: proxies by the 4-per-group rule (32 for 8 topics); climb: the pre-trust
        # search as these figures were first measured (12 proxies, 2:1:1)
        "mix": {"method": mix_method, "proxy": proxy_fields}
        | ({"proxies": 12, "rounds": "2:1:1", "verify": 1} if mix_method == "climb" else {}),
        "influence": {"probes": 96, "reference_docs": 32, "proxy": proxy_fields},
        "select": {"budget_tokens": budget_tokens},
        "export": {"formats": ["jsonl"], "mixture_formats": ["megatron"]},
    }
    (out / "recipe.yaml").write_text(json.dumps(recipe, indent=2))  # JSON is YAML
    t0 = time.perf_counter()
    state = run_pipeline(load_recipe(out / "recipe.yaml"), say=say)
    t_pipeline = time.perf_counter() - t0

    # every arm reads the same pipeline run (row order = pool.jsonl order)
    cols = read_pool(out / "pipeline")
    texts, tokens = cols.texts, cols.tokens
    from raters.dsir import DSIRRater

    dsir = DSIRRater(str(work / "dev.jsonl"), str(work / "pool.jsonl"))
    weights = [dsir.score(texts[i : i + 1000])["score"] for i in range(0, len(texts), 1000)]
    cols = cols._replace(dsir=np.concatenate(weights).astype(np.float64))
    target_ids = {str(d["id"]) for d in evals}
    assert not target_ids & set(map(str, cols.ids)), "an eval document leaked into the pool"
    eval_domains = [d.get("domain") for d in evals]
    target_mix = None  # the eval half's domains by characters, when both sides have them
    if cols.domain is not None and None not in eval_domains:
        target_mix = domain_shares(eval_domains, [len(d["text"]) for d in evals])

    # one BPE for every proxy (trained on the pool), so losses compare across arms
    bpe = train_bpe(texts, out / "bpe", vocab_size=4096)
    tok = load_tokenizer(bpe)
    eos = int(tok.eos_token_id)
    eval_texts = [d["text"] for d in evals]
    eval_stream = join_docs(encode_texts(tok, eval_texts), eos)
    cfg = {**PRESETS[preset], "tokens": budget_tokens, "batch_size": 8, "threads": 1}
    steps = ProxyConfig(**cfg).steps
    eval_every = max(1, steps // 8)
    results: dict[str, Any] = {}
    for arm in ARMS:
        losses, curves, bigrams, bpe_tokens = [], [], [], []
        for s in range(seeds):
            rows = arm_rows(arm, s, cols, budget_tokens)
            train_texts = [texts[i] for i in rows]
            if s == 0 or arm in STOCHASTIC:
                stream = join_docs(encode_texts(tok, train_texts), eos)
                bigram = bigram_nats(stream, eval_stream, len(tok))
            bigrams.append(bigram)
            bpe_tokens.append(int(stream.size))
            r = train_proxy(
                train_texts, {"target": eval_texts}, ProxyConfig(**cfg, seed=s),
                tokenizer_dir=bpe, eval_every=eval_every,
            )  # fmt: skip
            losses.append(r.metrics["target"]["loss"])
            curves.append([(t, m["target"]) for t, m in r.curve])
            say(f"{arm:12s} seed {s}: loss {losses[-1]:.4f}  bigram {bigram:.4f} "
                f"({r.seconds:.1f} s, {r.epochs:.2f} epochs)")  # fmt: skip
        x = np.array([t for t, _ in curves[0]], dtype=np.float64)
        y = np.array([[v for _, v in c] for c in curves]).mean(axis=0)
        rows = arm_rows(arm, 0, cols, budget_tokens)
        mix = None
        if target_mix is not None:
            mix = domain_shares(cols.domain[rows], [len(texts[i]) for i in rows])
        results[arm] = {
            "loss_mean": float(np.mean(losses)),
            "loss_std": float(np.std(losses, ddof=1)) if seeds > 1 else 0.0,
            "losses": losses,
            "bigram_mean": float(np.mean(bigrams)),
            "docs": len(rows),
            "tokens_selected": int(tokens[rows].sum()),
            "domains_seed0": mix,
            "domain_tv": None if mix is None else total_variation(mix, target_mix),
            "bpe_tokens_selected": int(np.mean(bpe_tokens)),
            "curve_tokens": x.tolist(),
            "curve_loss_mean": y.tolist(),
        }
    base = results["random"]
    reach = tokens_to_reach(
        np.array(results["assay"]["curve_tokens"]),
        np.array(results["assay"]["curve_loss_mean"]),
        base["loss_mean"],
    )
    final_tokens = results["random"]["curve_tokens"][-1]
    ratio = None if reach is None else reach / final_tokens
    plot = write_curves_svg(
        out / "efficacy.svg",
        {a: (np.array(r["curve_tokens"]), np.array(r["curve_loss_mean"]))
         for a, r in results.items()},
        base["loss_mean"],
        f"target loss vs tokens ({preset} proxies, {seeds} seeds, {budget_tokens:,} tokens)",
    )  # fmt: skip
    lines = [
        f"| arm | target loss (mean ± std, {seeds} seeds) | Δ vs random | Δ / random std "
        "| bigram loss | domain TV to target | docs | tokens selected (smollm2) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for arm, r in results.items():
        d = r["loss_mean"] - base["loss_mean"]
        z = d / base["loss_std"] if base["loss_std"] > 0 else float("nan")
        tv = "n/a" if r["domain_tv"] is None else f"{r['domain_tv']:.2f}"
        lines.append(
            f"| {arm} | {r['loss_mean']:.4f} ± {r['loss_std']:.4f} | {d:+.4f} | {z:+.1f} | "
            f"{r['bigram_mean']:.4f} | {tv} | {r['docs']:,} | {r['tokens_selected']:,} |"
        )
    first = results["assay"]["curve_tokens"][0]
    bound = "by its first evaluation, at most " if reach is not None and reach <= first else ""
    reach_text = (
        f"assay reaches random's final loss ({base['loss_mean']:.4f}) {bound}after "
        f"{reach:,.0f} of {final_tokens:,.0f} tokens = {ratio:.0%} (goal <= 60%)"
        if reach is not None
        else f"assay does not reach random's final loss ({base['loss_mean']:.4f}) "
        f"within {final_tokens:,.0f} tokens"
    )
    table_md = "\n".join(lines) + "\n\n" + reach_text
    seconds = time.perf_counter() - t_start
    report = {
        "pool": pool, "target": target, "target_where": None if target else target_where,
        "pool_docs": len(pool_rows), "dev_docs": len(dev), "eval_docs": len(evals),
        "budget_tokens": budget_tokens, "seeds": seeds, "preset": preset,
        "proxy": cfg, "eval_every_steps": eval_every, "target_domains": target_mix,
        "arms": results,
        "tokens_to_reach_random": reach, "ratio_to_random": ratio,
        "pipeline": {k: v["summary"] for k, v in state["steps"].items()},
        "seconds": {"pipeline": round(t_pipeline, 1), "total": round(seconds, 1)},
    }  # fmt: skip
    (out / "efficacy.json").write_text(json.dumps(report, indent=2, default=str))
    (out / "table.md").write_text(table_md + "\n")
    say(f"\n{table_md}\n(pipeline {t_pipeline:.0f} s, total {seconds:.0f} s)")
    return {"table": table_md, "plot": plot, "json": str(out / "efficacy.json"), **report}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pool", nargs="+", default=[str(REPO / "data" / "demo")])
    ap.add_argument("--target", default=None, help="target corpus (default: held-out slice)")
    ap.add_argument(
        "--target-where", default="domain=encyclopedic",
        help=f"without --target: hold out {TARGET_DOCS} pool docs with COLUMN=VALUE, or "
        f"'{TARGET_RANDOM}' for a uniform slice of the whole pool (a general target)",
    )  # fmt: skip
    ap.add_argument("--budget-tokens", type=int, default=60_000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--preset", default="micro", choices=sorted(PRESETS))
    ap.add_argument("--pool-docs", type=int, default=None, help="sample the pool (quick runs)")
    ap.add_argument("--out", default=str(REPO / "out" / "bench" / "efficacy"))
    ap.add_argument("--mix-method", default="trust", choices=["trust", "climb", "regmix"])
    ap.add_argument("--topics", type=int, default=8, help="cluster.topic groups of the mix step")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    run_efficacy(
        args.pool, args.target, target_where=args.target_where, budget_tokens=args.budget_tokens,
        seeds=args.seeds, out=args.out, preset=args.preset, pool_docs=args.pool_docs,
        mix_method=args.mix_method, topics=args.topics,
    )  # fmt: skip


if __name__ == "__main__":
    main()
