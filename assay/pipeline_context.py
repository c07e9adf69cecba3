"""What the steps of ``assay pipeline`` share: the run context, the output folders, and
the small helpers several steps use (where the pool and the target are, proxy configs)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from assay.errors import AssayError, ConfigError
from assay.pipeline_recipe import Recipe

# step -> its subfolder of OUT
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


class Context:
    """What steps share: the recipe, the output folder, and the artifacts done so far."""

    def __init__(self, recipe: Recipe, say: Callable[[str], None]) -> None:
        self.recipe = recipe
        self.out = Path(recipe.out)
        self.say = say
        self.artifacts: dict[str, Path] = {}
        """Step name -> its artifact folder (only steps that ran or were reused)."""

    def artifact(self, step: str) -> Path | None:
        return self.artifacts.get(step)


def require(ctx: Context, step: str, needed_by: str) -> Path:
    """An earlier step's artifact, or an error saying which step to run."""
    path = ctx.artifact(step)
    if path is None:
        raise AssayError(
            f"step {needed_by} needs the {step} step's output, which is missing",
            hint=f"run it (assay pipeline RECIPE --from {step}) or unset {step}.skip",
        )
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    """``rows`` as one JSON object a line, written atomically."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, path)  # atomic: a killed run never leaves half a file behind


def resolve_dtype(name: str) -> str:
    """``auto`` -> bfloat16 on AMX / AVX512-BF16 CPUs, else the model default."""
    if name != "auto":
        return name
    from assay.demo import cpu_has_bf16

    return "bfloat16" if cpu_has_bf16() else "auto"


def pool_inputs(ctx: Context) -> list[str]:
    """The pool: the split step's ``pool.jsonl``, or the whole corpus without a split."""
    split = ctx.artifact("split")
    return [str(split / "pool.jsonl")] if split else list(ctx.recipe.corpus)


def target_file(ctx: Context) -> str:
    """The target corpus: the held-out slice, or ``split.target_path``."""
    split = ctx.artifact("split")
    if split is not None:
        return str(split / "target.jsonl")
    if ctx.recipe.split.target_path:
        return ctx.recipe.split.target_path
    raise ConfigError("no target: unset split.skip or give split.target_path")


def proxy_config(fields: dict[str, Any], ctx: Context) -> Any:
    """A ``selector.proxy_lm.ProxyConfig`` from a recipe's ``proxy`` mapping."""
    from selector.proxy_lm import ProxyConfig

    base = {"seed": ctx.recipe.seed, "threads": ctx.recipe.threads, "device": "cpu"}
    try:
        return ProxyConfig(**{**base, **fields})
    except TypeError as e:
        raise ConfigError(f"proxy: {e}", hint="fields of selector.proxy_lm.ProxyConfig") from None
