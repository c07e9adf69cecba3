"""The output steps of ``assay pipeline``: ``select`` (token budget, the mixture's quotas),
``export`` (the selection and the mixture in trainers' formats) and the final summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from assay import manifest as mf
from assay.pipeline_context import FOLDERS, Context, require


def step_select(ctx: Context) -> dict[str, Any]:
    """``assay select`` over the influence-scored pool (or the annotations without it)."""
    from selector.select import SelectConfig, select

    cfg = ctx.recipe.select
    annotated = ctx.artifact("influence") or require(ctx, "annotate", "select")
    mix = ctx.artifact("mix")
    clusters = ctx.artifact("cluster")
    dedup = _dedup(ctx) if cfg.dedup else None
    config = SelectConfig(
        budget_tokens=cfg.budget_tokens,
        score=cfg.score,
        mixture=str(mix / "mixture.json") if mix else None,
        clusters=str(clusters) if clusters else None,
        where=cfg.where,
        dedup=str(dedup) if dedup else None,
        temperature=cfg.temperature,
        max_epochs=cfg.max_epochs,
        seed=ctx.recipe.seed,
        tokenizer=ctx.recipe.annotate.tokenizer,
    )
    out = ctx.out / FOLDERS["select"]
    m = select(annotated, out, config, overwrite=True)
    c = m["counts"]
    left_out = []
    if cfg.where:
        left_out.append(f"{c['where_excluded']:,} failing {cfg.where!r}")
    if dedup:
        left_out.append(f"{c['duplicates_excluded']:,} near-duplicates")
    ctx.say(
        f"selected {c['docs_selected']:,} documents, {c['tokens_selected']:,} of "
        f"{c['budget_tokens']:,} tokens"
        + (f" (left out: {', '.join(left_out)})" if left_out else "")
    )
    return {"artifact": out, "summary": c}


def _dedup(ctx: Context) -> Path:
    """``assay dedup`` of the annotations into ``OUT/dedup`` (reused when it is current)."""
    from assay.errors import ManifestMismatchError
    from clustering.dedup import DedupConfig, dedup_corpus

    cfg = ctx.recipe.select
    annotated = require(ctx, "annotate", "select")
    out = ctx.out / "dedup"
    settings = DedupConfig(cfg.dedup_threshold, cfg.dedup_num_perm, cfg.dedup_ngram)
    try:
        m = dedup_corpus(annotated, out, settings)
    except ManifestMismatchError:
        ctx.say(f"{out} holds a dedup of other annotations or settings; starting over")
        m = dedup_corpus(annotated, out, settings, overwrite=True)
    c = m["counts"]
    ctx.say(
        f"dedup: {c['docs_in_duplicate_clusters']:,} of {c['rows']:,} documents in "
        f"{c['duplicate_clusters']:,} near-duplicate clusters (Jaccard >= "
        f"{settings.threshold}): {out}"
    )
    return out


def step_export(ctx: Context) -> dict[str, Any]:
    """The selection in each of ``export.formats``, the mixture in each trainer's syntax."""
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
            options: dict[str, Any] = {}
            template = None
            if fmt == "olmo-core" and "olmo-core" in cfg.formats:
                # absolute paths to the token files exported above (export/olmo-core/data/...)
                options["root"] = str((out / "olmo-core").resolve())
            if fmt in ("megatron", "nemo") and "megatron" in cfg.formats:
                # the prefixes exported above (export/megatron/<group>_text_document)
                template = str((out / "megatron").resolve() / "{group}_text_document")
            m = export_mixture(
                mixture,
                fmt,
                folder,
                path_template=template,
                budget_tokens=ctx.recipe.select.budget_tokens,
                options=options,
            )
            if options:
                _say_missing_sources(ctx, folder)
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


def _say_missing_sources(ctx: Context, folder: Path) -> None:
    """Name the OLMo-core sources whose paths match no exported token file."""
    import glob

    import yaml

    doc = yaml.safe_load((folder / "source_mixture.yaml").read_text())
    missing = [
        s["source_name"] for s in doc["sources"] if not any(glob.glob(p) for p in s["paths"])
    ]
    if missing:
        ctx.say(
            f"warning: OLMo-core sources with no selected documents (no token files): "
            f"{', '.join(missing)}"
        )


# How to open each export and mixture file, printed beside its path at the end of a run.
OPEN_EXPORT = {
    "jsonl": "one folder per group of part-NNNNN.jsonl (head -n 1 FILE)",
    "parquet": "one folder per group (pyarrow.parquet.read_table / pandas.read_parquet)",
    "hf": "datasets.load_from_disk(FOLDER/GROUP)",
    "megatron": "PREFIX.bin/.idx per group: Megatron-LM --data-args-path BLEND "
    "(assay export-merge joins prefixes)",
    "mds": "streaming.StreamingDataset(local=FOLDER/GROUP)",
    "olmo-core": "token files data/GROUP/*.npy: OLMo-core SourceMixtureList.from_yaml(BLEND)",
}
OPEN_MIXTURE = {
    "data_args.txt": "Megatron-LM --data-args-path FILE",
    "blend.json": "Megatron-LM --per-split-data-args-path FILE",
    "paths.json": "NeMo PreTrainingDataModule(paths=json.load(FILE))",
    "nanoset.yaml": "nanotron data_stages dataset",
    "source_mixture.yaml": "OLMo-core SourceMixtureList.from_yaml(FILE)",
    "interleave.json": "datasets.interleave_datasets(probabilities=...); usage inside",
    "streams.yaml": "LLM Foundry train_loader streams",
}


def group_terms(cluster: Path | None, group_by: str | None, n: int = 4) -> dict[str, str]:
    """Each cluster or topic group's top c-TF-IDF terms from the cluster report
    (``report.json``), as ``"term, term, ..."``; empty for other groupings."""
    import json

    if cluster is None or group_by not in ("cluster", "cluster.topic"):
        return {}
    path = cluster / "report.json"
    if not path.is_file():
        return {}
    report = json.loads(path.read_text())
    key = "topic" if group_by == "cluster.topic" else "cluster"
    rows = report.get("topics" if key == "topic" else "clusters", [])
    out = {}
    for r in rows:
        terms = [t[0] if isinstance(t, (list, tuple)) else str(t) for t in r.get("terms", [])]
        out[str(r[key])] = ", ".join(terms[:n])
    return out


def _say_where_to_look(ctx: Context, say: Any) -> None:
    """The report, the mixture files and the exports, with how to open each."""
    cluster, mix, export = ctx.artifact("cluster"), ctx.artifact("mix"), ctx.artifact("export")
    say("\nWhere to look:")
    if cluster is not None:
        say(f"  cluster report: {(cluster / 'report.html').resolve()}")
        say("    open it in a browser; report.json holds the same for programs")
    if mix is not None:
        say(f"  mixture: {(mix / 'mixture.json').resolve()}  (token shares per group)")
    if export is None:
        return
    for key, info in mf.read_manifest(export)["exports"].items():
        if key.startswith("mixture-"):
            for f in info.get("files", []):
                how = OPEN_MIXTURE.get(Path(f).name, "")
                say(f"  {key}: {Path(f).resolve()}" + (f"\n    {how}" if how else ""))
            continue
        say(f"  export {key}: {Path(info['folder']).resolve()}")
        blends = [str(Path(f).resolve()) for files in info.get("blend", {}).values() for f in files]
        how = OPEN_EXPORT.get(key, "")
        if blends:
            blend = next((f for f in blends if f.endswith(("data_args.txt", ".yaml"))), blends[0])
            how = how.replace("BLEND", blend)
            say(f"    blends: {', '.join(blends)}")
        if how:
            say(f"    {how}")


def print_final_summary(ctx: Context, state: dict[str, Any], say: Any) -> None:
    """What was selected per group (with its topic terms for cluster groups), where each
    artifact is, and how to open the report, the mixture files and the exports."""
    selected = ctx.artifact("select")
    if selected is not None:
        m = mf.read_manifest(selected, kind="selection")
        c = m["counts"]
        terms = group_terms(ctx.artifact("cluster"), m.get("group_by"))
        say(
            f"\nSelected {c['docs_selected']:,} documents / {c['tokens_selected']:,} tokens "
            f"(budget {c['budget_tokens']:,}) by {m['score']['expression']!r}, "
            f"groups = {m.get('group_by') or 'one group'}:"
        )
        head = f"  {'group':32s} {'target w':>9s} {'tokens':>9s} {'docs':>6s} {'epochs':>6s}"
        say(head + ("  top terms" if terms else ""))
        for g in sorted(m["groups"], key=lambda g: -g["tokens_selected"]):
            if not g["tokens_selected"] and not g["target_weight"]:
                continue
            ep = "-" if g["epochs"] is None else f"{g['epochs']:.2f}"
            words = terms.get(str(g["name"]))
            say(
                f"  {str(g['name'])[:32]:32s} {g['target_weight']:9.3f} "
                f"{g['tokens_selected']:9,d} {g['docs_selected']:6,d} {ep:>6s}"
                + (f"  {words}" if words else "")
            )
    say("\nArtifacts:")
    for name, info in state["steps"].items():
        say(f"  {name:10s} {Path(info['artifact']).resolve()}")
    _say_where_to_look(ctx, say)
    say(f"  run record: {(ctx.out / 'pipeline.json').resolve()}")
    if state.get("seconds") is not None:
        say(f"pipeline finished in {state['seconds']:,.0f} s")
