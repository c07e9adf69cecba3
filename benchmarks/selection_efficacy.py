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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from efficacy_common import (
    PRESETS,
    REPO,
    domain_shares,
    proxy_fields,
    reach_fraction,
    read_pool,
    train_arms,
    with_dsir,
    write_curves_svg,
)

TARGET_RANDOM = "random"  # --target-where value: a uniform slice of the whole pool
TARGET_DOCS = 264  # held-out target documents: 64 dev (selection reads) + 200 eval


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
    from selector.bpe import train_bpe
    from selector.proxy_lm import ProxyConfig

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
    search_proxy = {**PRESETS["micro"], "tokens": 30_000}
    recipe = {
        "corpus": [str(work / "pool.jsonl")],
        "out": str(out / "pipeline"),
        "split": {"skip": True, "target_path": str(work / "dev.jsonl")},
        "annotate": {"raters": list(raters), "options": {"perplexity": {"max_tokens": 32}}},
        "cluster": {"topics": topics},
        # trust: proxies by the 4-per-group rule (32 for 8 topics); climb: the pre-trust
        # search as these figures were first measured (12 proxies, 2:1:1)
        "mix": {"method": mix_method, "proxy": search_proxy}
        | ({"proxies": 12, "rounds": "2:1:1", "verify": 1} if mix_method == "climb" else {}),
        "influence": {"probes": 96, "reference_docs": 32, "proxy": search_proxy},
        "select": {"budget_tokens": budget_tokens},
        "export": {"formats": ["jsonl"], "mixture_formats": ["megatron"]},
    }
    (out / "recipe.yaml").write_text(json.dumps(recipe, indent=2))  # JSON is YAML
    t0 = time.perf_counter()
    state = run_pipeline(load_recipe(out / "recipe.yaml"), say=say)
    t_pipeline = time.perf_counter() - t0

    # every arm reads the same pipeline run (row order = pool.jsonl order)
    cols = read_pool(out / "pipeline")
    cols = with_dsir(cols, work / "dev.jsonl", work / "pool.jsonl")
    texts = cols.texts
    target_ids = {str(d["id"]) for d in evals}
    assert not target_ids & set(map(str, cols.ids)), "an eval document leaked into the pool"
    eval_domains = [d.get("domain") for d in evals]
    target_mix = None  # the eval half's domains by characters, when both sides have them
    if cols.domain is not None and None not in eval_domains:
        target_mix = domain_shares(eval_domains, [len(d["text"]) for d in evals])

    # one BPE for every proxy (trained on the pool), so losses compare across arms
    bpe = train_bpe(texts, out / "bpe", vocab_size=4096)
    cfg = proxy_fields(preset, budget_tokens)
    eval_every = max(1, ProxyConfig(**cfg).steps // 8)
    results = train_arms(
        cols, [d["text"] for d in evals], bpe, budget_tokens=budget_tokens, seeds=seeds,
        preset=preset, target_mix=target_mix, say=say,
    )  # fmt: skip
    base = results["random"]
    final_tokens = results["random"]["curve_tokens"][-1]
    ratio = reach_fraction(results, "assay")
    reach = None if ratio is None else ratio * final_tokens
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
