"""Running a recipe's steps in order, and resuming: what ``assay pipeline`` does.

``OUT/pipeline.json`` records, per finished step, a fingerprint (its recipe section + the
sha256 of every upstream artifact's manifest) and the sha256 of the manifest it wrote. A
step whose fingerprint and manifest still match is not rerun; a changed recipe section or
a rewritten upstream artifact reruns it and everything after it. ``skip: true`` leaves a
step out (later steps use what is there).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from assay import manifest as mf
from assay import pipeline_steps as steps
from assay.errors import ConfigError
from assay.pipeline_context import FOLDERS, Context
from assay.pipeline_recipe import STEPS, Recipe

STATE = "pipeline.json"


def fingerprint(section: Any, upstream: dict[str, str]) -> str:
    """sha256 of a step's recipe section and its inputs' manifest hashes."""
    body = json.dumps(
        {"config": dataclasses.asdict(section) if dataclasses.is_dataclass(section) else section,
         "upstream": upstream},
        sort_keys=True,
        default=str,
    )  # fmt: skip
    return hashlib.sha256(body.encode()).hexdigest()


def _manifest_sha(path: Path) -> str | None:
    """sha256 of an artifact's manifest (a folder's manifest.json, or the file itself)."""
    path = path / mf.MANIFEST if path.is_dir() else path
    return mf.sha256_of(path) if path.exists() else None


def run_pipeline(
    recipe: Recipe,
    *,
    start: str | None = None,
    only: str | None = None,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the recipe's steps; returns the state written to ``OUT/pipeline.json``.

    ``start``: rerun this step and every later one even if done; ``only``: run just this
    step (earlier artifacts must exist). Both take a name of :data:`STEPS`.
    """
    for flag, value in (("--from", start), ("--only", only)):
        if value is not None and value not in STEPS:
            raise ConfigError(f"{flag} must be one of {', '.join(STEPS)}, got {value!r}")
    ctx = Context(recipe, say)
    ctx.out.mkdir(parents=True, exist_ok=True)
    state_path = ctx.out / STATE
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    done: dict[str, Any] = state.get("steps", {})
    started = time.perf_counter()
    forced = False
    manifests: dict[str, Path] = {}  # step -> the file whose hash links later steps to it
    for i, name in enumerate(STEPS):
        section = getattr(recipe, name)
        forced = forced or name in (start, only)
        upstream = {s: _manifest_sha(p) or "" for s, p in manifests.items()}
        common = {"corpus": recipe.corpus, "seed": recipe.seed, "threads": recipe.threads}
        fp = fingerprint({"step": dataclasses.asdict(section), **common}, upstream)
        prev = done.get(name)
        header = f"[{i + 1}/{len(STEPS)} {name}]"
        if section.skip:
            existing = ctx.out / FOLDERS[name]
            if name == "annotate" and (existing / mf.MANIFEST).exists():
                # annotating is the long step: a skipped one reuses what is there
                ctx.artifacts[name] = manifests[name] = existing
                say(f"{header} skipped (skip: true); using {existing}")
            else:
                say(f"{header} skipped (skip: true)")
            done.pop(name, None)
            continue
        if only is not None and name != only:
            if prev and Path(prev["artifact"]).exists():
                ctx.artifacts[name] = Path(prev["artifact"])
                manifests[name] = Path(prev["manifest"])
            continue
        if (
            not forced
            and prev
            and prev.get("fingerprint") == fp
            and _manifest_sha(Path(prev["manifest"])) == prev.get("manifest_sha256")
        ):
            say(f"{header} done earlier, reused: {prev['artifact']}")
            ctx.artifacts[name] = Path(prev["artifact"])
            manifests[name] = Path(prev["manifest"])
            continue
        forced = True  # everything after a rerun step reruns too: its inputs changed
        say(f"{header} running")
        t0 = time.perf_counter()
        result = steps.STEP_FUNCTIONS[name](ctx)
        seconds = round(time.perf_counter() - t0, 1)
        ctx.artifacts[name] = Path(result["artifact"])
        manifests[name] = Path(result.get("manifest") or Path(result["artifact"]) / mf.MANIFEST)
        done[name] = {
            "artifact": str(result["artifact"]),
            "manifest": str(manifests[name]),
            "manifest_sha256": _manifest_sha(manifests[name]),
            "fingerprint": fp,
            "upstream": upstream,
            "seconds": seconds,
            "summary": result.get("summary", {}),
        }
        say(f"{header} finished in {seconds:,.1f} s: {result['artifact']}")
        state = {"recipe": dataclasses.asdict(recipe), "steps": done}
        mf.write_json_atomic(state_path, state)  # a crash later keeps what finished
    state = {
        "recipe": dataclasses.asdict(recipe),
        "steps": done,
        "seconds": round(time.perf_counter() - started, 1),
    }
    mf.write_json_atomic(state_path, state)
    if only is None:
        steps.print_final_summary(ctx, state, say)
    return state
