"""The ``assay`` command line. Commands are thin; heavy modules are imported inside them."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import typer

from assay.cli_common import fail as _fail
from assay.errors import AssayError, ConfigError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Rate, cluster and select LLM pretraining data.",
)


def _parse_options(pairs: list[str]) -> dict[str, dict[str, Any]]:
    """``-O perplexity.max_tokens=128`` -> {"perplexity": {"max_tokens": 128}}."""
    import yaml

    out: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        rater, dot, option = key.partition(".")
        if not sep or not dot or not option:
            raise ConfigError(f"-O/--option must look like RATER.KEY=VALUE, got {pair!r}")
        out.setdefault(rater, {})[option] = yaml.safe_load(value)
    return out


@app.command()
def annotate(
    inputs: list[str] = typer.Argument(..., help="JSONL(.gz/.zst)/Parquet files, globs, folders"),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder (shards + manifest.json)"),
    rater: list[str] = typer.Option(
        ..., "--rater", "-r", help="Rater name, NAME=MODEL_DIR, or a folder with rater.json"
    ),
    option: list[str] = typer.Option(
        [], "-O", "--option", help="Rater option RATER.KEY=VALUE, e.g. perplexity.max_tokens=128"
    ),
    text_field: str = typer.Option("text", help="Field holding the document text"),
    id_field: str = typer.Option("id", help="Field holding the id (sha1(text) if absent)"),
    shard_size: int = typer.Option(2000, help="Documents per output shard (unit of resume)"),
    on_error: str = typer.Option("raise", help="raise | quarantine (bad records)"),
    tokenizer: str = typer.Option(
        "smollm2-135m", help="Tokenizer for the n_tokens column ('none' to skip)"
    ),
    device: str = typer.Option("auto", help="auto | cpu | cuda[:N]"),
    dtype: str = typer.Option("auto", help="auto (bf16 on GPU, fp32 on CPU) | float32 | bfloat16"),
    backend: str = typer.Option(
        "auto",
        help="auto (vLLM if installed: decoders anywhere, encoders on GPU) | hf | vllm",
    ),
    overwrite: bool = typer.Option(False, help="Discard an earlier run in OUT and start over"),
    engine: str = typer.Option("local", help="local (this process) | ray (Ray Data actors)"),
    address: str | None = typer.Option(
        None, help="Ray cluster: auto | ray://HOST:10001 (default: start a local Ray)"
    ),
    concurrency: int = typer.Option(1, help="Ray: rater actors (each loads the models once)"),
    num_cpus: float = typer.Option(1.0, help="Ray: CPUs per rater actor"),
    num_gpus: float = typer.Option(0.0, help="Ray: GPUs per rater actor (1 = one per GPU)"),
    ray_batch_size: int = typer.Option(256, help="Ray: documents per actor call / read block"),
) -> None:
    """Rate every document; resumable (rerun the same command after a crash).

    ``--engine ray`` runs reading and the raters on a Ray cluster (``--address auto``)
    with the same shards, manifest and resume as the local engine.
    """
    try:
        from assay.annotate import annotate as run
        from assay.progress import progress_printer
        from assay.records import Fields
        from raters.registry import build_rater

        if engine not in ("local", "ray"):
            raise ConfigError(f"--engine must be local or ray, got {engine!r}")
        if engine == "local" and address is not None:
            raise ConfigError("--address needs --engine ray")
        options = _parse_options(option)
        names = [r.partition("=")[0] for r in rater]
        unknown = set(options) - {Path(n).name for n in names} - set(names)
        if unknown:
            raise ConfigError(f"-O names raters not given with --rater: {sorted(unknown)}")
        rater_kwargs = [
            {"device": device, "dtype": dtype, "backend": backend, **options.get(n, {})}
            for n in names
        ]
        counter, ray_engine = None, None
        if tokenizer != "none":
            from raters.tokens import TokenCounter

            counter = TokenCounter(tokenizer)
        if engine == "ray":
            import functools

            from assay.ray_engine import RayConfig, RayEngine

            config = RayConfig(address, concurrency, num_cpus, num_gpus, ray_batch_size)
            # GPU actors should not tokenise for n_tokens: give that a CPU actor stage.
            config.token_actors = 1 if num_gpus > 0 and tokenizer != "none" else 0
            config.validate()
            # Actors build their own raters and tokenizer from these; models never travel.
            ray_engine = RayEngine(
                [
                    functools.partial(build_rater, r, **kw)
                    for r, kw in zip(rater, rater_kwargs, strict=True)
                ],
                token_counter_factory=None
                if counter is None
                else functools.partial(TokenCounter, tokenizer),
                config=config,
            )
            # Described by a Ray task with an actor's resources: no model load here.
            raters = ray_engine.describe_raters()
        else:
            raters = [build_rater(r, **kw) for r, kw in zip(rater, rater_kwargs, strict=True)]
        progress = progress_printer("annotate")
        try:
            manifest = run(
                inputs,
                out,
                raters,
                fields=Fields(text=text_field, id=id_field),
                shard_size=shard_size,
                on_error=on_error,
                count_tokens=counter if ray_engine is None else None,
                tokenizer_name=None if tokenizer == "none" else tokenizer,
                overwrite=overwrite,
                on_progress=progress,
                engine=ray_engine,
            )
        finally:
            progress.close()  # type: ignore[attr-defined]
    except AssayError as e:
        _fail(e)
        return
    counts = manifest["counts"]
    typer.echo(
        f"annotated {counts['rows']:,} documents ({counts['quarantined']} quarantined) "
        f"into {counts['shards']} shards: {out}"
    )


@app.command("raters")
def list_raters() -> None:
    """List built-in raters and presets."""
    import json

    from raters.registry import BUILTIN, HF_CLASSIFIER, RELEASED, presets

    for name in sorted(BUILTIN):
        typer.echo(f"{name:32s} built-in")
    typer.echo(f"{HF_CLASSIFIER + '=DIR':32s} any HF *ForSequenceClassification folder")
    for name in sorted(RELEASED):
        typer.echo(f"{name:32s} released with assay (raters/{RELEASED[name]})")
    for name, path in presets().items():
        spec = json.loads(path.read_text())
        kind = spec.get("kind", "encoder")
        if spec.get("model"):
            typer.echo(f"{name:32s} {kind} preset on {spec['model']} ({path.name})")
        else:
            typer.echo(f"{name:32s} {kind} preset ({path.name}); use {name}=/path/to/model")


@app.command()
def models(
    prepare: bool = typer.Option(False, help="Convert/cache every named model now"),
) -> None:
    """List the named local models (and prepare them: SmolLM2 is converted once)."""
    try:
        from raters.hub import NAMED, resolve_model

        for name in sorted(NAMED):
            if prepare:
                typer.echo(f"{name:20s} {resolve_model(name)}")
            else:
                typer.echo(name)
    except AssayError as e:
        _fail(e)


@app.command()
def demo(
    corpus: Path = typer.Option(Path("data/demo"), help="Demo corpus folder"),
    out: Path = typer.Option(Path("out/demo"), help="Where the demo writes its artifacts"),
    ppl_tokens: int = typer.Option(32, help="Tokens per document the perplexity LM reads"),
) -> None:
    """Run the main job end to end on the bundled demo corpus."""
    try:
        from assay.demo import run_demo

        run_demo(corpus, out, ppl_tokens=ppl_tokens)
    except AssayError as e:
        _fail(e)


def _register_feature_commands() -> None:
    """Commands of the other packages; their modules import heavy code inside functions."""
    from assay import cli_clustering, cli_raters

    app.command("label")(cli_raters.label)
    app.command("train-rater")(cli_raters.train_rater)
    app.command("eval-rater")(cli_raters.eval_rater)
    app.command("embed")(cli_clustering.embed)
    app.command("cluster")(cli_clustering.cluster)
    app.command("dedup")(cli_clustering.dedup)
    from assay import cli_serve

    app.command("serve")(cli_serve.serve)
    from assay.cli_mix import mix_app

    app.add_typer(mix_app, name="mix")
    from assay import cli_select

    app.command("select")(cli_select.select)
    app.command("learn-weights")(cli_select.learn_weights)
    app.add_typer(cli_select.influence_app, name="influence")
    app.command("export")(cli_select.export)
    from assay import cli_export

    app.command("export-merge")(cli_export.export_merge)
    from assay import cli_pipeline

    app.command("pipeline")(cli_pipeline.pipeline)
    app.add_typer(cli_pipeline.bench_app, name="bench")


_register_feature_commands()


def main() -> None:  # pragma: no cover - console entry for `python -m assay`
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:  # a bug of ours: one line for the user, the trace on request
        if os.environ.get("ASSAY_DEBUG"):
            raise
        print(
            f"internal error: {type(e).__name__}: {e}\n"
            "  rerun with ASSAY_DEBUG=1 for the traceback, and please report it",
            file=sys.stderr,
        )
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
