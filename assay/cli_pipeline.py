"""``assay pipeline RECIPE.yaml``, ``assay bench efficacy`` and ``assay bench
efficacy-suite``: thin typed commands.

Registered in ``assay.cli`` (``app.command("pipeline")`` and ``app.add_typer(bench_app,
name="bench")``); the steps and the benchmark import their heavy modules when they run.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import typer

from assay.cli_common import fail as _fail
from assay.errors import AssayError

bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks you can run on your own data.")
REPO = Path(__file__).resolve().parents[1]


def pipeline(
    recipe: Path = typer.Argument(..., help="Pipeline recipe (configs/pipelines/*.yaml)"),
    out: Path | None = typer.Option(None, "-o", "--out", help="Output folder (default: recipe's)"),
    start: str | None = typer.Option(
        None, "--from", help="Rerun this step and every later one (split ... export)"
    ),
    only: str | None = typer.Option(None, "--only", help="Run just this step"),
) -> None:
    """Run the whole path from one recipe; finished steps are reused (resumable)."""
    try:
        from assay.pipeline import load_recipe, run_pipeline

        if start is not None and only is not None:
            from assay.errors import ConfigError

            raise ConfigError("give --from or --only, not both")
        config = load_recipe(recipe, out=str(out) if out else None)
        run_pipeline(config, start=start, only=only, say=typer.echo)
    except AssayError as e:
        _fail(e)


def _benchmark_module(name: str = "selection_efficacy"):
    """A script of ``benchmarks/`` as a module (they ship with the source tree only)."""
    import sys

    path = REPO / "benchmarks" / f"{name}.py"
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path):
        return sys.modules[name]  # imported already, e.g. by a sibling benchmark
    if not path.exists():
        raise AssayError(
            f"{path} not found: the benchmark ships with the source tree",
            hint="run from a checkout of assay (git clone), not an installed wheel",
        )
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = module  # dataclasses and pickling (worker processes) look it up
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@bench_app.command("efficacy")
def efficacy(
    pool: list[str] = typer.Option(["data/demo"], help="Pool corpus (files/folders; repeatable)"),
    target: str | None = typer.Option(
        None, help="Target validation corpus (default: a held-out slice, --target-where)"
    ),
    target_where: str = typer.Option(
        "domain=encyclopedic",
        help="Without --target: hold out pool docs with COLUMN=VALUE, or 'random' (a uniform "
        "slice of the whole pool)",
    ),
    budget_tokens: int = typer.Option(60_000, help="Training tokens of every arm (proxy BPE)"),
    seeds: int = typer.Option(3, help="Proxy seeds per arm (>= 3 for a spread)"),
    out: Path = typer.Option(Path("out/bench/efficacy"), "-o", "--out", help="Results folder"),
    preset: str = typer.Option("micro", help="micro (0.1M params) | small (1M params)"),
    pool_docs: int | None = typer.Option(None, help="Sample N pool documents (quick runs)"),
) -> None:
    """Random vs proportional vs quality top-k vs assay's pipeline, equal token budgets."""
    try:
        bench = _benchmark_module()
        result = bench.run_efficacy(
            pool=pool, target=target, target_where=target_where, budget_tokens=budget_tokens,
            seeds=seeds, out=out, preset=preset, pool_docs=pool_docs, say=typer.echo,
        )  # fmt: skip
    except AssayError as e:
        _fail(e)
        return
    typer.echo(f"plot: {result['plot']}; results: {result['json']}")


@bench_app.command("efficacy-suite")
def efficacy_suite(
    pool: list[str] = typer.Option(["data/demo"], help="Corpus with a domain column"),
    out: Path = typer.Option(Path("out/bench/suite"), "-o", "--out", help="Results folder"),
    per_domain: int = typer.Option(260, help="Corpus documents sampled per domain"),
    target_docs: int = typer.Option(140, help="Documents held out per target (dev + eval)"),
    budget_tokens: int = typer.Option(60_000, help="Training tokens of every arm (proxy BPE)"),
    seeds: int = typer.Option(3, help="Proxy seeds per arm, common across arms"),
    workers: int = typer.Option(2, help="Targets run at once (one CPU thread each)"),
    only: list[str] | None = typer.Option(None, help="Run just these targets (repeatable)"),
) -> None:
    """Every arm on many targets (each domain, a general and a quality-sensitive one):
    win rate vs random, loss rate, median tokens-to-random, and a heatmap."""
    try:
        bench = _benchmark_module("efficacy_suite")
        result = bench.run_suite(
            pool, out, per_domain=per_domain, target_docs=target_docs,
            budget_tokens=budget_tokens, seeds=seeds, workers=workers, only=only or None,
            say=typer.echo,
        )  # fmt: skip
    except AssayError as e:
        _fail(e)
        return
    typer.echo(f"heatmap: {result['plot']}; table: {Path(out) / 'table.md'}; "
               f"results: {result['json']}")  # fmt: skip
