"""The data steps of ``assay pipeline``: ``split`` (hold the target out of the corpus),
``annotate`` (raters over the pool) and ``embed`` (MiniLM vectors, row-aligned)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from assay import manifest as mf
from assay.errors import ConfigError, ManifestMismatchError
from assay.pipeline_context import (
    FOLDERS,
    Context,
    pool_inputs,
    require,
    resolve_dtype,
    target_file,
    write_jsonl,
)


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
    write_jsonl(out / "target.jsonl", target)
    write_jsonl(out / "pool.jsonl", pool)
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


def _options(ctx: Context, ref: str) -> dict[str, Any]:
    """A rater's recipe options; ``dsir`` is pointed at the target and the pool by default."""
    name, _, bound = ref.partition("=")
    options = dict(ctx.recipe.annotate.options.get(name, {}))
    if name == "dsir":
        if not bound:
            options.setdefault("target", target_file(ctx))
        options.setdefault("raw", [str(p) for p in pool_inputs(ctx)])
    return options


def _use_annotations(ctx: Context) -> dict[str, Any]:
    """``annotate.use``: a finished annotated folder; the raters of ``annotate.add`` (a
    target-dependent ``dsir``, say, beside shared annotations) add their columns to a copy
    in ``OUT/annotated``, shard for shard (``assay.annotate_more``: embeddings stay
    aligned)."""
    from assay.annotate_more import add_columns
    from raters.registry import build_rater

    cfg = ctx.recipe.annotate
    use = Path(cfg.use)
    m = mf.read_manifest(use, kind="annotations")
    extra = list(cfg.add)
    ctx.say(f"using the finished annotations in {use} ({m['counts']['rows']:,} rows)")
    if not extra:
        return {"artifact": use, "summary": m["counts"]}
    shards = [str(use / s) for s in m["shards"]]
    raters = []
    for ref in extra:
        options = _options(ctx, ref)
        if ref.partition("=")[0] == "dsir" and "raw" not in cfg.options.get("dsir", {}):
            options["raw"] = shards  # the pool these annotations hold
        raters.append(build_rater(ref, dtype=resolve_dtype(cfg.dtype), **options))
    out = ctx.out / FOLDERS["annotate"]
    m = add_columns(use, out, raters)
    ctx.say(f"added {', '.join(r.name for r in raters)} to them: {out}")
    return {"artifact": out, "summary": m["counts"]}


def step_annotate(ctx: Context) -> dict[str, Any]:
    """``assay annotate`` of the pool with the recipe's raters (resumable by shard)."""
    from assay.annotate import annotate, read_annotations
    from assay.progress import progress_printer
    from raters.registry import build_rater
    from raters.tokens import TokenCounter

    cfg = ctx.recipe.annotate
    if cfg.use:
        return _use_annotations(ctx)
    if cfg.add:
        raise ConfigError("annotate.add adds columns to annotate.use's folder; set use too",
                          hint="or list the raters in annotate.raters")  # fmt: skip
    dtype = resolve_dtype(cfg.dtype)
    raters = [build_rater(r, dtype=dtype, **_options(ctx, r)) for r in cfg.raters]
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
    """One float16 ``.npy`` per annotation shard (see :mod:`clustering.embed`)."""
    from assay.progress import progress_printer
    from clustering.embed import Embedder, embed_corpus

    annotated = require(ctx, "annotate", "embed")
    out = ctx.out / FOLDERS["embed"]
    cfg = ctx.recipe.embed
    if cfg.use:
        from clustering.aligned import annotation_shards, check_aligned

        m = mf.read_manifest(cfg.use, kind="embeddings")
        check_aligned(annotation_shards(annotated), m["shards"], what="embeddings",
                      folder=Path(cfg.use))  # fmt: skip
        ctx.say(f"using the finished embeddings in {cfg.use} ({m['counts']['rows']:,} rows)")
        return {"artifact": Path(cfg.use), "summary": m["counts"]}
    embedder = Embedder(
        dtype=resolve_dtype(cfg.dtype), max_tokens=cfg.max_tokens, normalize=cfg.normalize
    )
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
