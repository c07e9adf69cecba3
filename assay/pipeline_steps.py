"""The bodies of ``assay pipeline``'s steps (see :mod:`assay.pipeline` for the runner).

Each ``step_<name>(ctx)`` runs one step with the existing library functions (the same
ones the single commands call), writes into ``OUT/<FOLDERS[name]>`` and returns
``{"artifact": folder, "manifest": file, "summary": {...}}``. Heavy packages are
imported inside the steps.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from assay import manifest as mf
from assay.errors import AssayError, ConfigError, ManifestMismatchError
from assay.pipeline import Context, require

FOLDERS = {
    "split": "split",
    "annotate": "annotated",
    "embed": "embeddings",
    "cluster": "clusters",
    "mix": "mixture",
    "influence": "influence",
    "select": "selected",
    "export": "export",
}


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, path)  # atomic: a killed run never leaves half a file behind


def _dtype(name: str) -> str:
    if name != "auto":
        return name
    from assay.demo import cpu_has_bf16

    return "bfloat16" if cpu_has_bf16() else "auto"


def pool_inputs(ctx: Context) -> list[str]:
    split = ctx.artifact("split")
    return [str(split / "pool.jsonl")] if split else list(ctx.recipe.corpus)


def target_file(ctx: Context) -> str:
    split = ctx.artifact("split")
    if split is not None:
        return str(split / "target.jsonl")
    if ctx.recipe.split.target_path:
        return ctx.recipe.split.target_path
    raise ConfigError("no target: unset split.skip or give split.target_path")


def step_split(ctx: Context) -> dict[str, Any]:
    """Hold ``split.docs`` documents matching ``split.where`` out as the target."""
    from assay.corpus import read_documents

    cfg = ctx.recipe.split
    column, _, value = cfg.where.partition("=")
    docs = list(read_documents(ctx.recipe.corpus))
    match = [i for i, d in enumerate(docs) if str(d.get(column)) == value]
    if len(match) < cfg.docs + 1:
        raise ConfigError(
            f"split.where {cfg.where!r} matches {len(match)} documents; split.docs asks for "
            f"{cfg.docs} and the pool needs at least one more",
            hint="lower split.docs or choose another split.where",
        )
    rng = np.random.default_rng(ctx.recipe.seed)
    held = set(rng.permutation(match)[: cfg.docs].tolist())
    target = [docs[i] for i in sorted(held)]
    pool_rows = [i for i in range(len(docs)) if i not in held]
    if cfg.pool_docs is not None and cfg.pool_docs < len(pool_rows):
        pool_rows = sorted(rng.permutation(pool_rows)[: cfg.pool_docs].tolist())
    pool = [docs[i] for i in pool_rows]
    out = ctx.out / FOLDERS["split"]
    out.mkdir(parents=True, exist_ok=True)
    _write_jsonl(out / "target.jsonl", target)
    _write_jsonl(out / "pool.jsonl", pool)
    manifest = mf.new_manifest(
        "split",
        inputs={"corpus": ctx.recipe.corpus},
        config={"where": cfg.where, "docs": cfg.docs, "pool_docs": cfg.pool_docs},
        seeds={"split": ctx.recipe.seed},
        counts={"corpus": len(docs), "target": len(target), "pool": len(pool)},
        files={"target": "target.jsonl", "pool": "pool.jsonl"},
    )
    mf.write_json_atomic(out / mf.MANIFEST, manifest)
    ctx.say(
        f"target: {len(target)} documents with {cfg.where} held out; "
        f"pool: {len(pool):,} documents ({len(match) - len(target)} with {cfg.where})"
    )
    return {"artifact": out, "summary": manifest["counts"]}


def step_annotate(ctx: Context) -> dict[str, Any]:
    from assay.annotate import annotate, read_annotations
    from assay.progress import progress_printer
    from raters.registry import build_rater
    from raters.tokens import TokenCounter

    cfg = ctx.recipe.annotate
    dtype = _dtype(cfg.dtype)
    raters = [
        build_rater(r, dtype=dtype, **cfg.options.get(r.partition("=")[0], {})) for r in cfg.raters
    ]
    out = ctx.out / FOLDERS["annotate"]
    run = dict(
        shard_size=cfg.shard_size,
        count_tokens=TokenCounter(cfg.tokenizer),
        tokenizer_name=cfg.tokenizer,
    )
    progress = progress_printer("annotate")
    try:
        try:
            m = annotate(pool_inputs(ctx), out, raters, on_progress=progress, **run)
        except ManifestMismatchError:
            # The pipeline owns OUT: annotations of an older recipe are replaced, not mixed.
            ctx.say(f"{out} holds annotations of another recipe; starting over")
            m = annotate(pool_inputs(ctx), out, raters, on_progress=progress, overwrite=True, **run)
    finally:
        progress.close()  # type: ignore[attr-defined]
    table = read_annotations(out)
    if "domain" in table.column_names:
        from assay.demo import domain_summary, print_summary

        print_summary(
            domain_summary(table),
            f"{m['counts']['rows']:,} pool documents, per-domain medians ({dtype})",
        )
    return {"artifact": out, "summary": m["counts"]}


def step_embed(ctx: Context) -> dict[str, Any]:
    from assay.progress import progress_printer
    from clustering.embed import Embedder, embed_corpus

    annotated = require(ctx, "annotate", "embed")
    out = ctx.out / FOLDERS["embed"]
    embedder = Embedder(dtype=_dtype("auto"), max_tokens=ctx.recipe.embed.max_tokens)
    progress = progress_printer("embed")
    try:
        try:
            m = embed_corpus(annotated, out, embedder, on_progress=progress)
        except ManifestMismatchError:
            ctx.say(f"{out} holds embeddings of other annotations; starting over")
            m = embed_corpus(annotated, out, embedder, on_progress=progress, overwrite=True)
    finally:
        progress.close()  # type: ignore[attr-defined]
    return {"artifact": out, "summary": m.get("counts", {})}


def step_cluster(ctx: Context) -> dict[str, Any]:
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
        k=cfg.k or suggest_k(am["counts"]["rows"]), prune=list(prune), seed=cfg.seed
    )
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


def _proxy(fields: dict[str, Any], ctx: Context) -> Any:
    from selector.proxy_lm import ProxyConfig

    base = {"seed": ctx.recipe.seed, "threads": ctx.recipe.threads, "device": "cpu"}
    try:
        return ProxyConfig(**{**base, **fields})
    except TypeError as e:
        raise ConfigError(f"proxy: {e}", hint="fields of selector.proxy_lm.ProxyConfig") from None


def step_mix(ctx: Context) -> dict[str, Any]:
    from selector.search import SearchConfig, run_search

    cfg = ctx.recipe.mix
    source = ctx.artifact("cluster") or require(ctx, "annotate", "mix")
    out = ctx.out / FOLDERS["mix"]
    out.mkdir(parents=True, exist_ok=True)
    search = SearchConfig(
        group_by=cfg.group_by, method=cfg.method, proxies=cfg.proxies, rounds=cfg.rounds,
        max_epochs=cfg.max_epochs, predictor=cfg.predictor, n_candidates=cfg.candidates,
        top_k=cfg.top_k, seed=ctx.recipe.seed, verify=cfg.verify,
        budget_tokens=ctx.recipe.select.budget_tokens,
    )  # fmt: skip
    args = (source, [target_file(ctx)], out / "mixture.json", search, _proxy(cfg.proxy, ctx))
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
        f"verified {m['verified_objective']}; top groups: "
        + ", ".join(f"{g.name} {g.weight:.2f}" for g in top)
    )
    summary = {"proxy_runs": m["proxy_runs"], "verified": m["verified_objective"]}
    return {"artifact": out, "manifest": out / "mixture.json", "summary": summary}


def step_influence(ctx: Context) -> dict[str, Any]:
    """MATES at pipeline scale: a stage-1 proxy, probes, the influence model, pool scores."""
    import pyarrow.parquet as pq

    from assay.annotate import annotate
    from assay.corpus import read_documents
    from raters.encoder import load_rater_dir
    from selector.influence_model import InfluenceModel
    from selector.influence_probe import ProbeConfig, probe_corpus, read_probes, sample_documents
    from selector.proxy_lm import train_proxy

    cfg, seed = ctx.recipe.influence, ctx.recipe.seed
    annotated = require(ctx, "annotate", "influence")
    am = mf.read_manifest(annotated, kind="annotations")
    rows = [
        r
        for s in am["shards"]
        for r in pq.read_table(annotated / s, columns=["id", "text", "n_tokens"]).to_pylist()
    ]
    target = [d["text"] for d in read_documents([target_file(ctx)])]
    if len(target) <= cfg.reference_docs:
        raise ConfigError(
            f"influence.reference_docs ({cfg.reference_docs}) must be below the "
            f"{len(target)} target documents (the rest measure the stage-1 proxy)"
        )
    reference, held = target[: cfg.reference_docs], target[cfg.reference_docs :]
    out = ctx.out / FOLDERS["influence"]
    proxy = _proxy(cfg.proxy, ctx)
    # Stage 1 ("the model being trained"): a random slice of the pool, 1.5x the budget in
    # annotation tokens so the proxy's own BPE (which counts differently) does not run short.
    order = np.random.default_rng(seed).permutation(len(rows))
    take, total = [], 0
    for i in order:
        take.append(rows[i]["text"])
        total += int(rows[i]["n_tokens"] or 0)
        if total >= 1.5 * proxy.tokens:
            break
    mix = ctx.artifact("mix")
    tokenizer = mix / "mixture.search" / "tokenizer" if mix else None
    result = train_proxy(
        take,
        {"target": held},
        proxy,
        tokenizer_dir=tokenizer if tokenizer and tokenizer.exists() else None,
        save_dir=out / "proxy",
    )
    ctx.say(f"stage-1 proxy: target loss {result.metrics['target']['loss']:.4f}")
    docs = sample_documents(rows, cfg.probes, seed)
    probe_cfg = ProbeConfig(
        lr=cfg.lr, max_tokens=cfg.max_tokens, ref_tokens=cfg.max_tokens, threads=ctx.recipe.threads
    )
    pm = probe_corpus(
        docs, reference, out / "proxy", out / "probes", probe_cfg,
        inputs={"pool": str(annotated), "reference": target_file(ctx)}, overwrite=True,
    )  # fmt: skip
    table = read_probes(out / "probes")
    values = table["influence"].to_numpy(zero_copy_only=False).astype(np.float64)
    ok = np.isfinite(values)
    texts = [t for t, k in zip(table["text"].to_pylist(), ok, strict=True) if k]
    model = InfluenceModel(
        method=cfg.method, max_tokens=cfg.max_tokens, max_chunks=1, val_fraction=0.2,
        seed=seed, threads=ctx.recipe.threads,
    )  # fmt: skip
    model.fit(texts, values[ok])
    model.save(out / "model")
    ctx.say(
        f"influence model ({cfg.method}): held-out Spearman {model.val_spearman_:.3f} "
        f"on {model.n_val_} of {int(ok.sum())} probes ({pm['counts']['negative']} help the target)"
    )
    rater = load_rater_dir(out / "model", device="cpu")
    scored = out / "scored"
    m = annotate(
        [str(annotated / s) for s in am["shards"]],
        scored,
        [rater],
        shard_size=ctx.recipe.annotate.shard_size,  # same shards: clusters stay row-aligned
        tokenizer_name=am.get("tokenizer"),
        overwrite=True,
    )
    summary = {
        "stage1_target_loss": result.metrics["target"]["loss"],
        "probes": int(ok.sum()),
        "heldout_spearman": model.val_spearman_,
        "rows": m["counts"]["rows"],
    }
    return {"artifact": scored, "summary": summary}


def step_select(ctx: Context) -> dict[str, Any]:
    from selector.select import SelectConfig, select

    cfg = ctx.recipe.select
    annotated = ctx.artifact("influence") or require(ctx, "annotate", "select")
    mix = ctx.artifact("mix")
    clusters = ctx.artifact("cluster")
    config = SelectConfig(
        budget_tokens=cfg.budget_tokens,
        score=cfg.score,
        mixture=str(mix / "mixture.json") if mix else None,
        clusters=str(clusters) if clusters else None,
        temperature=cfg.temperature,
        max_epochs=cfg.max_epochs,
        seed=ctx.recipe.seed,
        tokenizer=ctx.recipe.annotate.tokenizer,
    )
    out = ctx.out / FOLDERS["select"]
    m = select(annotated, out, config, overwrite=True)
    c = m["counts"]
    ctx.say(
        f"selected {c['docs_selected']:,} documents, {c['tokens_selected']:,} of "
        f"{c['budget_tokens']:,} tokens"
    )
    return {"artifact": out, "summary": c}


def step_export(ctx: Context) -> dict[str, Any]:
    from selector.export.run import export_selection
    from selector.mix_export import export_mixture
    from selector.mixture import Mixture

    cfg = ctx.recipe.export
    selected = require(ctx, "select", "export")
    out = ctx.out / FOLDERS["export"]
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Any] = {}
    for fmt in cfg.formats:
        m = export_selection(selected, out / fmt, fmt, overwrite=True)
        written[fmt] = {
            "folder": str(out / fmt),
            "manifest_sha256": mf.sha256_of(out / fmt / mf.MANIFEST),
            "blend": {k: [str(out / fmt / f) for f in v] for k, v in m.get("blend", {}).items()},
        }
    mix = ctx.artifact("mix")
    if mix is not None:
        mixture = Mixture.read(mix / "mixture.json")
        for fmt in cfg.mixture_formats:
            folder = out / f"mixture-{fmt}"
            m = export_mixture(mixture, fmt, folder, budget_tokens=ctx.recipe.select.budget_tokens)
            written[f"mixture-{fmt}"] = {
                "folder": str(folder),
                "files": [str(folder / f) for f in m["files"]],
            }
    elif cfg.mixture_formats:
        ctx.say("no mixture (mix step skipped): mixture files not written")
    manifest = mf.new_manifest(
        "pipeline-export",
        inputs={
            "selection": str(selected.resolve()),
            "selection_manifest_sha256": mf.sha256_of(selected / mf.MANIFEST),
        },
        exports=written,
    )
    mf.write_json_atomic(out / mf.MANIFEST, manifest)
    return {"artifact": out, "summary": {"exports": sorted(written)}}


def print_final_summary(ctx: Context, state: dict[str, Any], say: Any) -> None:
    """What was selected per group, and where each artifact is."""
    selected = ctx.artifact("select")
    if selected is not None:
        m = mf.read_manifest(selected, kind="selection")
        c = m["counts"]
        say(
            f"\nSelected {c['docs_selected']:,} documents / {c['tokens_selected']:,} tokens "
            f"(budget {c['budget_tokens']:,}) by {m['score']['expression']!r}, "
            f"groups = {m.get('group_by') or 'one group'}:"
        )
        say(f"  {'group':32s} {'target w':>9s} {'tokens':>9s} {'docs':>6s} {'epochs':>6s}")
        for g in sorted(m["groups"], key=lambda g: -g["tokens_selected"]):
            if not g["tokens_selected"] and not g["target_weight"]:
                continue
            ep = "-" if g["epochs"] is None else f"{g['epochs']:.2f}"
            say(
                f"  {str(g['name'])[:32]:32s} {g['target_weight']:9.3f} "
                f"{g['tokens_selected']:9,d} {g['docs_selected']:6,d} {ep:>6s}"
            )
    say("\nArtifacts:")
    for name, info in state["steps"].items():
        say(f"  {name:10s} {Path(info['artifact']).resolve()}")
    export = ctx.artifact("export")
    if export is not None:
        for key, info in mf.read_manifest(export)["exports"].items():
            for trainer, files in info.get("blend", {}).items():
                say(f"  {key} {trainer} blend: {', '.join(files)}")
            if "files" in info:
                say(f"  {key}: {', '.join(info['files'])}")
    cluster = ctx.artifact("cluster")
    if cluster is not None:
        say(f"  cluster report: {(cluster / 'report.html').resolve()}  (open in a browser)")
    say(f"  run record: {(ctx.out / 'pipeline.json').resolve()}")
    if state.get("seconds") is not None:
        say(f"pipeline finished in {state['seconds']:,.0f} s")
