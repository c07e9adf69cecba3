"""``assay select``, ``assay learn-weights``, ``assay influence probe|train|predict`` and
``assay export``: thin typed commands over ``selector``.

``learn-weights`` is a top-level command rather than ``select learn-weights``: ``select``
takes the annotated folder as its first argument, and a Click group cannot tell a folder
name from a subcommand name (``assay select learn-weights`` vs ``assay select out/ann``).
"""

from __future__ import annotations

from pathlib import Path

import typer

from assay.cli_common import fail as _fail
from assay.errors import AssayError, ConfigError

influence_app = typer.Typer(
    no_args_is_help=True,
    help="MATES-style influence: probe a checkpoint, train the influence model, predict.",
)


def _records(inputs: list[str], where: str | None = None, limit: int | None = None) -> list[dict]:
    """Documents of corpus inputs; an annotated folder is read through its shards."""
    from assay import manifest as mf
    from assay.corpus import read_documents

    paths: list[str] = []
    for given in inputs:
        p = Path(given)
        if p.is_dir() and (p / mf.MANIFEST).exists():
            manifest = mf.read_manifest(p)
            shards = manifest.get("shards") or []
            if manifest.get("kind") not in ("annotations", "selection") or not shards:
                raise ConfigError(f"{p} is a {manifest.get('kind')!r} folder, not a corpus")
            names = shards if isinstance(shards[0], str) else []
            if manifest["kind"] == "selection":
                names = [f for g in manifest["groups"] for f in g["files"]]
            paths += [str(p / n) for n in names]
        else:
            paths.append(given)
    column, value = None, None
    if where:
        column, sep, value = where.partition("=")
        if not sep:
            raise ConfigError(f"--*-where must look like COLUMN=VALUE, got {where!r}")
    out = []
    for r in read_documents(paths):
        if column is not None and str(r.get(column)) != value:
            continue
        out.append(r)
        if limit is not None and len(out) >= limit:
            break
    if not out:
        raise AssayError(f"no documents in {inputs}" + (f" with {where}" if where else ""))
    return out


def select(
    annotated: Path = typer.Argument(..., help="Annotated corpus folder (assay annotate -o)"),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder (group=*/ shards)"),
    budget_tokens: int = typer.Option(..., help="Tokens to select in all (target tokenizer)"),
    score: str | None = typer.Option(
        None, help='Expression over columns, e.g. "-perplexity.nll + zscore(`a-b.q`)"'
    ),
    weights: Path | None = typer.Option(None, help="Score weights from assay learn-weights"),
    mixture: Path | None = typer.Option(None, help="mixture.json: target weight per group"),
    group_by: str | None = typer.Option(
        None, help="Group column (default: the mixture's group_by; none: one group)"
    ),
    clusters: Path | None = typer.Option(None, help="Clusters folder (cluster, cluster.topic)"),
    keep_pruned: bool = typer.Option(False, help="Also select from pruned clusters"),
    where: str | None = typer.Option(
        None, help="Keep only rows where this holds, e.g. \"lang == 'en' and dedup.size == 1\""
    ),
    dedup: Path | None = typer.Option(
        None, help="Folder from assay dedup: keep the best-scored document per duplicate cluster"
    ),
    temperature: float = typer.Option(
        0.0, help="Gumbel noise in score standard deviations; 0 = deterministic top"
    ),
    max_epochs: float = typer.Option(1.0, help="Repeat a short group up to this many times"),
    seed: int = typer.Option(0, help="Seed of the Gumbel noise"),
    tokenizer: str = typer.Option("smollm2-135m", help="Target tokenizer of the budget"),
    shard_size: int = typer.Option(5000, help="Rows per output shard"),
    overwrite: bool = typer.Option(False, help="Replace an earlier selection in OUT"),
) -> None:
    """Select the best documents per group under a token budget (Gumbel top-k)."""
    try:
        from selector.select import SelectConfig
        from selector.select import select as run

        cfg = SelectConfig(
            budget_tokens=budget_tokens,
            score=score,
            weights=str(weights) if weights else None,
            mixture=str(mixture) if mixture else None,
            group_by=group_by,
            clusters=str(clusters) if clusters else None,
            keep_pruned=keep_pruned,
            where=where,
            dedup=str(dedup) if dedup else None,
            temperature=temperature,
            max_epochs=max_epochs,
            seed=seed,
            tokenizer=tokenizer,
            shard_size=shard_size,
        )
        m = run(annotated, out, cfg, overwrite=overwrite)
    except AssayError as e:
        _fail(e)
        return
    c = m["counts"]
    typer.echo(
        f"selected {c['docs_selected']:,} documents, {c['tokens_selected']:,} of "
        f"{c['budget_tokens']:,} tokens ({c['docs_repeated']:,} repeats) in "
        f"{sum(1 for g in m['groups'] if g['files'])} groups: {out}"
    )
    if where or dedup:
        typer.echo(
            f"  left out: {c['where_excluded']:,} rows failing --where, "
            f"{c['duplicates_excluded']:,} near-duplicates"
        )
    for g in m["groups"]:
        if g["short"]:
            typer.echo(f"  group {g['name']}: short, {g['tokens_selected']:,} tokens")


def learn_weights(
    annotated: Path = typer.Argument(..., help="Annotated folder (the pool subsets come from)"),
    out: Path = typer.Option(..., "-o", "--out", help="Weights file to write (JSON)"),
    column: list[str] = typer.Option(
        ..., "--column", "-c", help="Score column or fnmatch pattern; '-col' = lower is better"
    ),
    target: list[str] = typer.Option(
        ..., help="NAME=PATH: target texts the proxies are scored on (corpus or folder)"
    ),
    target_where: str | None = typer.Option(None, help="Keep target rows with COLUMN=VALUE"),
    target_n: int = typer.Option(200, help="Target documents read at most"),
    samples: int = typer.Option(32, help="Weight vectors tried (one proxy each)"),
    alpha: float = typer.Option(1.0, help="Dirichlet concentration"),
    percentile: float = typer.Option(85.0, help="Keep documents above this score percentile"),
    search_samples: int = typer.Option(100_000, help="Candidates scored by the predictor"),
    topk: int = typer.Option(128, help="Best candidates averaged"),
    seed: int = typer.Option(0, help="Seed of weight draws and search"),
    verify: bool = typer.Option(True, help="Train one proxy on the result and report it"),
    proxy_tokens: int = typer.Option(125_000, help="Training tokens per proxy"),
    proxy_hidden: int = typer.Option(128, help="Proxy width"),
    proxy_layers: int = typer.Option(4, help="Proxy layers"),
    proxy_heads: int = typer.Option(4, help="Proxy attention heads"),
    proxy_seq_len: int = typer.Option(256, help="Proxy sequence length"),
    proxy_seed: int = typer.Option(0, help="Proxy seed (the same for every run)"),
    threads: int = typer.Option(1, help="CPU threads per proxy"),
) -> None:
    """Learn score weights (Meta-rater): proxies on top subsets, LightGBM, search."""
    try:
        from selector.weights import LearnConfig, learn_weights_from_folder

        targets: dict[str, list[str]] = {}
        for t in target:
            name, sep, path = t.partition("=")
            if not sep or not name:
                raise ConfigError(f"--target must look like NAME=PATH, got {t!r}")
            targets[name] = [r["text"] for r in _records([path], target_where, target_n)]
        proxy = {
            "tokens": proxy_tokens,
            "hidden": proxy_hidden,
            "layers": proxy_layers,
            "heads": proxy_heads,
            "seq_len": proxy_seq_len,
            "seed": proxy_seed,
            "threads": threads,
        }
        cfg = LearnConfig(
            samples=samples,
            alpha=alpha,
            percentile=percentile,
            search_samples=search_samples,
            topk=topk,
            seed=seed,
            verify=verify,
            proxy=proxy,
        )
        w = learn_weights_from_folder(annotated, column, targets, cfg, out, log=typer.echo)
    except AssayError as e:
        _fail(e)
        return
    rho = w.info["predictor"]["held_out_spearman"]
    typer.echo(f"predictor held-out Spearman {rho:.3f}; weights: {out}")
    for c, v in sorted(w.weights.items(), key=lambda kv: -kv[1]):
        typer.echo(f"  {v:.4f}  {'-' if w.info['signs'][c] < 0 else ''}{c}")


@influence_app.command("probe")
def influence_probe(
    inputs: list[str] = typer.Argument(..., help="Documents to probe (corpus or annotated)"),
    model: str = typer.Option(..., help="HF causal LM folder (proxy checkpoint) or named model"),
    reference: list[str] = typer.Option(..., help="Reference set (corpus files or folder)"),
    out: Path = typer.Option(..., "-o", "--out", help="Probe folder (shards + manifest)"),
    reference_where: str | None = typer.Option(None, help="Keep reference rows COLUMN=VALUE"),
    reference_n: int = typer.Option(64, help="Reference documents at most"),
    n: int = typer.Option(500, "-n", "--probes", help="Documents probed (sampled, seeded)"),
    seed: int = typer.Option(0, help="Seed of the document sample"),
    optimizer: str = typer.Option("auto", help="auto | sgd | adamw"),
    lr: float = typer.Option(0.1, help="Probe step learning rate (gradient clipped to norm 1)"),
    max_tokens: int = typer.Option(256, help="Tokens of each document stepped on"),
    ref_tokens: int = typer.Option(256, help="Tokens per reference document"),
    shard_size: int = typer.Option(64, help="Probes per committed shard (resume unit)"),
    probe_batch: int = typer.Option(
        8, "--probe-batch", help="Documents probed at once (torch.func); 1 = one at a time"
    ),
    threads: int = typer.Option(1, help="CPU threads"),
    device: str = typer.Option("cpu", help="cpu | cuda[:N] | auto"),
    overwrite: bool = typer.Option(False, help="Discard an earlier run in OUT"),
) -> None:
    """One optimizer step per sampled document; record the reference-loss change."""
    try:
        from selector.influence_probe import ProbeConfig, probe_corpus, sample_documents

        cfg = ProbeConfig(
            optimizer=optimizer,
            lr=lr,
            max_tokens=max_tokens,
            ref_tokens=ref_tokens,
            shard_size=shard_size,
            batch=probe_batch,
            threads=threads,
            device=device,
        )
        ref_docs = _records(reference, reference_where, reference_n)
        docs = sample_documents(
            _records(inputs), n, seed, exclude={str(r["id"]) for r in ref_docs if "id" in r}
        )
        inputs_info = {"inputs": inputs, "reference": reference, "where": reference_where}
        m = probe_corpus(
            docs,
            [r["text"] for r in ref_docs],
            model,
            out,
            cfg,
            inputs=inputs_info,
            overwrite=overwrite,
            on_progress=lambda done, total: typer.echo(f"probed {done}/{total}"),
        )
    except AssayError as e:
        _fail(e)
        return
    c = m["counts"]
    typer.echo(
        f"probed {c['probes']} documents ({c['negative']} help the reference); "
        f"reference loss {m['models'][0]['reference_loss_before']:.4f}: {out}"
    )


@influence_app.command("train")
def influence_train(
    probes: Path = typer.Argument(..., help="Probe folder (assay influence probe -o)"),
    out: Path = typer.Option(..., "-o", "--out", help="Influence model folder (a rater)"),
    backbone: str = typer.Option("all-minilm-l6-v2", help="Encoder: named model or HF folder"),
    method: str = typer.Option("full", help="full (fine-tune) | head (frozen encoder, ridge)"),
    epochs: int = typer.Option(5, help="Epochs (full)"),
    lr: float = typer.Option(5e-5, help="Learning rate (full)"),
    batch_size: int = typer.Option(16, help="Documents per step (full)"),
    max_tokens: int = typer.Option(256, help="Tokens per window"),
    max_chunks: int = typer.Option(2, help="Windows per document (mean pooled)"),
    val_fraction: float = typer.Option(0.1, help="Held-out share (Spearman, best epoch)"),
    seed: int = typer.Option(0, help="Seed of the split and the head"),
    threads: int = typer.Option(1, help="CPU threads"),
    device: str = typer.Option("cpu", help="cpu | cuda[:N]"),
) -> None:
    """Train the influence model on probes; report held-out Spearman."""
    try:
        from selector.influence_model import InfluenceModel
        from selector.influence_probe import read_probes

        table = read_probes(probes)
        model = InfluenceModel(
            backbone,
            method=method,
            max_tokens=max_tokens,
            max_chunks=max_chunks,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            val_fraction=val_fraction,
            seed=seed,
            threads=threads,
            device=device,
        )
        model.fit(table["text"].to_pylist(), table["influence"].to_numpy())
        model.save(out)
    except AssayError as e:
        _fail(e)
        return
    typer.echo(
        f"influence model: held-out Spearman {model.val_spearman_:.3f} "
        f"({model.n_train_} train / {model.n_val_} held out): {out}"
    )
    typer.echo(f"use it: assay influence predict ANNOTATED -o OUT --model {out}")


@influence_app.command("predict")
def influence_predict(
    annotated: Path = typer.Argument(..., help="Annotated folder to score"),
    out: Path = typer.Option(..., "-o", "--out", help="New annotated folder (+ influence.score)"),
    model: Path = typer.Option(..., help="Influence model folder (assay influence train -o)"),
    shard_size: int = typer.Option(2000, help="Documents per output shard"),
    device: str = typer.Option("auto", help="auto | cpu | cuda[:N]"),
    overwrite: bool = typer.Option(False, help="Discard an earlier run in OUT"),
) -> None:
    """Score a whole annotated corpus with the influence model (the annotate engine)."""
    try:
        from assay import manifest as mf
        from assay.annotate import annotate
        from raters.encoder import load_rater_dir

        source = mf.read_manifest(annotated, kind="annotations")
        rater = load_rater_dir(model, device=device)
        m = annotate(
            [str(annotated / s) for s in source["shards"]],
            out,
            [rater],
            shard_size=shard_size,
            # n_tokens travels with the rows; it was counted with this tokenizer
            tokenizer_name=source.get("tokenizer"),
            overwrite=overwrite,
        )
    except AssayError as e:
        _fail(e)
        return
    typer.echo(f"scored {m['counts']['rows']:,} documents; column {rater.name}.score: {out}")


def export(
    selected: Path = typer.Argument(..., help="Selection folder (assay select -o)"),
    out: Path = typer.Option(..., "-o", "--out", help="Export folder"),
    format: str = typer.Option(
        ..., "--format", "-f", help="jsonl | parquet | hf | megatron | mds | olmo-core"
    ),
    tokenizer: str | None = typer.Option(
        None, help="Megatron / OLMo-core: tokenizer (default: the selection's target tokenizer)"
    ),
    append_eod: bool = typer.Option(
        True, help="Megatron: end-of-document token per document (OLMo-core: always)"
    ),
    max_file_tokens: int | None = typer.Option(
        None, help="OLMo-core: tokens per .npy file at most (default 2**28)"
    ),
    overwrite: bool = typer.Option(False, help="Replace an earlier export in OUT"),
) -> None:
    """Write a selection for a trainer (Megatron .bin/.idx, OLMo-core .npy, HF, JSONL, ...)."""
    try:
        from selector.export.run import export_selection

        m = export_selection(
            selected,
            out,
            format,
            tokenizer=tokenizer,
            append_eod=append_eod,
            max_file_tokens=max_file_tokens,
            overwrite=overwrite,
        )
    except AssayError as e:
        _fail(e)
        return
    typer.echo(
        f"exported {m['counts']['docs']:,} documents in {m['counts']['groups']} groups "
        f"as {format}: {out}"
    )
    for trainer, files in m["blend"].items():
        typer.echo(f"  {trainer} blend: {', '.join(str(out / f) for f in files)}")
