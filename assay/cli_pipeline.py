"""``assay pipeline RECIPE.yaml`` and ``assay bench efficacy``: thin typed commands.

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


def _benchmark_module():
    path = REPO / "benchmarks" / "selection_efficacy.py"
    if not path.exists():
        raise AssayError(
            f"{path} not found: the benchmark ships with the source tree",
            hint="run from a checkout of assay (git clone), not an installed wheel",
        )
    spec = importlib.util.spec_from_file_location("selection_efficacy", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
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
