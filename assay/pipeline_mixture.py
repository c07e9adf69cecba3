"""The mixture steps of ``assay pipeline``: ``cluster`` (FAISS k-means, CLIMB prune +
merge) and ``mix`` (mixture search for the target with micro proxies)."""

from __future__ import annotations

from typing import Any

from assay import manifest as mf
from assay.errors import AssayError
from assay.pipeline_context import FOLDERS, Context, proxy_config, require, target_file


def step_cluster(ctx: Context) -> dict[str, Any]:
    """Clusters of the pool's embeddings, with the report (``clusters/report.html``)."""
    import pyarrow.parquet as pq

    from clustering.config import ClusterConfig
    from clustering.demo import DEMO_PRUNE_NLL, suggest_k
    from clustering.run import cluster_corpus

    cfg = ctx.recipe.cluster
    annotated = require(ctx, "annotate", "cluster")
    embeddings = require(ctx, "embed", "cluster")
    am = mf.read_manifest(annotated, kind="annotations")
    prune = cfg.prune
    if prune is None:  # the demo's CLIMB-style rule, when the perplexity rater ran
        names = pq.read_schema(annotated / am["shards"][0]).names
        prune = [f"perplexity.nll>{DEMO_PRUNE_NLL}"] if "perplexity.nll" in names else []
    config = ClusterConfig(
        k=cfg.k or suggest_k(am["counts"]["rows"]), prune=list(prune), seed=cfg.seed,
        topics=cfg.topics,
    )  # fmt: skip
    out = ctx.out / FOLDERS["cluster"]
    result = cluster_corpus(annotated, embeddings, out, config, overwrite=True)
    p = result["prune"]
    ctx.say(
        f"clustered {result['counts']['rows']:,} documents: {config.k} clusters "
        f"({p['clusters_pruned']} pruned by {', '.join(p['rules']) or 'no rule'}), "
        f"{result['counts']['topics']} topics; report: {(out / 'report.html').resolve()}"
    )
    for column, a in result.get("agreement", {}).items():
        ctx.say(f"agreement with {column}: NMI {a['clusters_nmi']:.3f} clusters")
    return {"artifact": out, "summary": {**result["counts"], "pruned": p["clusters_pruned"]}}


def step_mix(ctx: Context) -> dict[str, Any]:
    """``mixture.json`` for the target (a crashed search resumes its proxy runs)."""
    from selector.search import SearchConfig, run_search

    cfg = ctx.recipe.mix
    source = ctx.artifact("cluster") or require(ctx, "annotate", "mix")
    out = ctx.out / FOLDERS["mix"]
    out.mkdir(parents=True, exist_ok=True)
    search = SearchConfig(
        group_by=cfg.group_by, method=cfg.method, proxies=cfg.proxies, rounds=cfg.rounds,
        max_epochs=cfg.max_epochs, predictor=cfg.predictor, n_candidates=cfg.candidates,
        top_k=cfg.top_k, seed=ctx.recipe.seed, verify=cfg.verify, guard=cfg.guard,
        budget_tokens=ctx.recipe.select.budget_tokens, predictors=cfg.predictors,
        trust_kl=cfg.trust_kl, kappa=cfg.kappa, min_group_share=cfg.min_group_share,
        holdout=cfg.holdout,
    )  # fmt: skip
    args = (source, [target_file(ctx)], out / "mixture.json", search, proxy_config(cfg.proxy, ctx))
    annotated = str(ctx.artifact("annotate")) if ctx.artifact("cluster") else None
    try:  # a crashed search reuses its finished proxy runs
        mixture = run_search(*args, annotated=annotated, resume=True, say=ctx.say)
    except AssayError as e:
        if not str(e).startswith("--resume"):
            raise
        ctx.say("the earlier search used other settings; searching afresh")
        mixture = run_search(*args, annotated=annotated, resume=False, say=ctx.say)
    m = mixture.method
    top = sorted(mixture.groups, key=lambda g: -g.weight)[:5]
    ctx.say(
        f"{m['proxy_runs']} proxy runs; predicted target loss {m['predicted_objective']:.4f}, "
        f"verified {m['verified_objective']}{_guard_note(m)}{_verify_note(m)}; top groups: "
        + ", ".join(f"{g.name} {g.weight:.2f}" for g in top)
    )
    kept = (m.get("verification") or {}).get("chosen")
    summary = {
        "proxy_runs": m["proxy_runs"],
        "verified": m["verified_objective"],
        "kept": kept or (m.get("guard") or {}).get("chosen", "predicted_optimum"),
    }
    return {"artifact": out, "manifest": out / "mixture.json", "summary": summary}


def _verify_note(method: dict[str, Any]) -> str:
    v = method.get("verification")
    if not v:
        return ""
    if "difference" not in v:
        return f"; kept the {v['chosen']} ({v.get('reason', '')})"
    return (
        f"; proposal vs prior {v['difference']:+.4f} (noise {v['noise']:.4f}): "
        f"kept the {v['chosen']}"
    )


def _guard_note(method: dict[str, Any]) -> str:
    guard = method.get("guard")
    if not guard:
        return ""
    return (
        f"; best measured mixture rerun {guard['best_measured_rerun']:.4f}, "
        f"kept the {guard['chosen'].replace('_', ' ')}"
    )
