"""``assay pipeline RECIPE.yaml``: the whole mission from one YAML recipe.

Steps, in order (:data:`STEPS`): ``split`` (hold a target slice out of the corpus) ->
``annotate`` -> ``embed`` -> ``cluster`` -> ``mix`` (mixture search for the target) ->
``influence`` (proxy, probe, influence model, scores for the pool) -> ``select`` (token
budget) -> ``export`` (JSONL / Megatron + the mixture files). The step bodies live in
:mod:`assay.pipeline_steps`; this module holds the recipe (typed dataclasses) and the
runner.

Resume: ``OUT/pipeline.json`` records, per finished step, a fingerprint (its recipe
section + the sha256 of every upstream artifact's manifest) and the sha256 of the
manifest it wrote. A step whose fingerprint and manifest still match is not rerun; a
changed recipe section or a rewritten upstream artifact reruns it and everything after
it. ``skip: true`` leaves a step out (later steps use what is there: without clusters
the mixture groups by an annotation column, without influence the score must not use
it). Example::

    recipe = load_recipe("configs/pipelines/demo.yaml")
    state = run_pipeline(recipe)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assay import manifest as mf
from assay.errors import AssayError, ConfigError

STEPS = ("split", "annotate", "embed", "cluster", "mix", "influence", "select", "export")
STATE = "pipeline.json"
# Recipe field types checked on load (a YAML typo gives a message, not a TypeError later).
SCALARS: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "str": (str,),
}


@dataclass
class SplitStep:
    """Which documents are the target (validation) set; they never enter the pool."""

    skip: bool = False
    """Use ``target_path`` as the target and the whole corpus as the pool."""
    where: str = "domain=encyclopedic"
    """``COLUMN=VALUE``: the target is drawn from these corpus documents."""
    docs: int = 200
    """Target documents held out (seeded sample of the ``where`` documents)."""
    target_path: str | None = None
    """A separate validation corpus instead of a held-out slice (with ``skip: true``)."""
    pool_docs: int | None = None
    """Keep a seeded sample of N pool documents (tests, quick looks); null = all."""


@dataclass
class AnnotateStep:
    """``assay annotate`` over the pool."""

    skip: bool = False
    """Use an existing annotated folder at ``OUT/annotated``."""
    raters: list[str] = field(default_factory=lambda: ["heuristics", "perplexity"])
    """Rater names (``assay raters``) or ``NAME=MODEL_DIR``."""
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per-rater options, e.g. ``{perplexity: {max_tokens: 32}}``."""
    tokenizer: str = "smollm2-135m"
    """Tokenizer of the ``n_tokens`` column (and of the selection budget)."""
    shard_size: int = 500
    """Documents per shard (unit of resume)."""
    dtype: str = "auto"
    """``auto`` = bfloat16 on AMX / AVX512-BF16 CPUs, else the model default."""


@dataclass
class EmbedStep:
    """``assay embed`` (MiniLM)."""

    skip: bool = False
    """No embeddings (then ``cluster`` is skipped too)."""
    max_tokens: int = 128
    """Tokens MiniLM reads per document (256 is its default; 128 halves the time)."""


@dataclass
class ClusterStep:
    """``assay cluster``: FAISS k-means, CLIMB prune + merge, report."""

    skip: bool = False
    k: int | None = None
    """Clusters; null = a power of two near docs/100 (8..1000)."""
    prune: list[str] | None = None
    """Prune rules (``COLUMN>VALUE``); null = ``perplexity.nll>4.6`` when that column exists."""
    seed: int = 0


@dataclass
class MixStep:
    """``assay mix search`` for the target with micro proxies."""

    skip: bool = False
    group_by: str = "cluster.topic"
    """Groups of the mixture (``cluster``, ``cluster.topic``, or an annotation column)."""
    method: str = "climb"
    proxies: int = 12
    rounds: str = "2:1:1"
    candidates: int = 5000
    top_k: int = 64
    predictor: str = "lightgbm"
    max_epochs: float = 15.0
    verify: int = 1
    proxy: dict[str, Any] = field(default_factory=lambda: {"tokens": 30_000})
    """``selector.proxy_lm.ProxyConfig`` fields (hidden, layers, tokens, seq_len, ...)."""


@dataclass
class InfluenceStep:
    """MATES: train a proxy, probe it, fit the influence model, score the pool."""

    skip: bool = False
    proxy: dict[str, Any] = field(default_factory=lambda: {"tokens": 30_000})
    """The stage-1 proxy being probed (``ProxyConfig`` fields)."""
    probes: int = 96
    """Pool documents probed (one optimizer step each)."""
    reference_docs: int = 32
    """Target documents whose loss change defines influence."""
    lr: float = 0.3
    max_tokens: int = 128
    """Tokens of each probed document and of each reference document."""
    method: str = "head"
    """Influence model: ``head`` (frozen MiniLM + ridge, cheap) or ``full``."""


@dataclass
class SelectStep:
    """``assay select`` to a token budget with the mixture's quotas."""

    skip: bool = False
    budget_tokens: int = 200_000
    """Tokens to select (annotation tokenizer)."""
    score: str = "zscore(`assay-mini-v1.quality`) - zscore(influence.score)"
    """Score expression; a column of a skipped step is an error."""
    temperature: float = 0.0
    max_epochs: float = 1.0


@dataclass
class ExportStep:
    """``assay export`` of the selection and ``assay mix export`` of the mixture."""

    skip: bool = False
    formats: list[str] = field(default_factory=lambda: ["jsonl", "megatron"])
    """Selection formats: jsonl | parquet | hf | megatron | mds."""
    mixture_formats: list[str] = field(default_factory=lambda: ["megatron", "olmo-core", "hf"])
    """Trainer syntaxes for the searched mixture (megatron, nemo, olmo-core, hf, mds, nanotron)."""


@dataclass
class Recipe:
    """A whole pipeline run; one YAML file (``configs/pipelines/*.yaml``)."""

    corpus: list[str]
    """Input corpus: files, globs or folders."""
    out: str = "out/pipeline"
    """Folder of every artifact (one subfolder per step) and ``pipeline.json``."""
    seed: int = 0
    threads: int = 1
    """CPU threads for proxies, probes and the influence model."""
    split: SplitStep = field(default_factory=SplitStep)
    annotate: AnnotateStep = field(default_factory=AnnotateStep)
    embed: EmbedStep = field(default_factory=EmbedStep)
    cluster: ClusterStep = field(default_factory=ClusterStep)
    mix: MixStep = field(default_factory=MixStep)
    influence: InfluenceStep = field(default_factory=InfluenceStep)
    select: SelectStep = field(default_factory=SelectStep)
    export: ExportStep = field(default_factory=ExportStep)

    def validate(self) -> None:
        if self.split.skip and not self.split.target_path and not self.mix.skip:
            raise ConfigError(
                "split.skip needs split.target_path (the target the mixture is searched for)"
            )
        if not self.split.skip and "=" not in self.split.where:
            raise ConfigError(f"split.where must look like COLUMN=VALUE, got {self.split.where!r}")
        if self.split.docs < 1:
            raise ConfigError(f"split.docs must be >= 1, got {self.split.docs}")
        if self.select.budget_tokens <= 0:
            raise ConfigError(f"select.budget_tokens must be > 0, got {self.select.budget_tokens}")
        if self.embed.skip and not self.cluster.skip:
            self.cluster.skip = True  # nothing to cluster without embeddings
        if self.cluster.skip and self.mix.group_by.startswith("cluster") and not self.mix.skip:
            raise ConfigError(
                f"mix.group_by {self.mix.group_by!r} needs the cluster step",
                hint="set mix.group_by to an annotation column such as domain",
            )
        if self.influence.skip and "influence." in self.select.score:
            raise ConfigError(
                "select.score uses influence.score but the influence step is skipped",
                hint="drop it from select.score or set influence.skip: false",
            )
        for key, value in (
            ("mix.proxies", self.mix.proxies),
            ("influence.probes", self.influence.probes),
            ("influence.reference_docs", self.influence.reference_docs),
            ("annotate.shard_size", self.annotate.shard_size),
        ):
            if value < 1:
                raise ConfigError(f"{key} must be >= 1, got {value}")


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    """A dataclass from a dict; unknown keys are an error that lists the allowed ones."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {unknown}", hint="allowed: " + ", ".join(sorted(fields))
        )
    kwargs = {}
    for name, value in data.items():
        sub = fields[name].type
        nested = {
            "SplitStep": SplitStep,
            "AnnotateStep": AnnotateStep,
            "EmbedStep": EmbedStep,
            "ClusterStep": ClusterStep,
            "MixStep": MixStep,
            "InfluenceStep": InfluenceStep,
            "SelectStep": SelectStep,
            "ExportStep": ExportStep,
        }.get(sub if isinstance(sub, str) else getattr(sub, "__name__", ""))
        kwargs[name] = _build(nested, value or {}, f"{where}.{name}") if nested else value
        want = SCALARS.get(str(sub).replace(" | None", ""))
        if want and not (value is None and "None" in str(sub)):
            ok = isinstance(value, want) and not (isinstance(value, bool) and bool not in want)
            if not ok:
                raise ConfigError(
                    f"{where}.{name} must be {sub}, got {value!r}",
                    hint="fix the value in the recipe",
                )
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"{where}: {e}") from None


def load_recipe(path: str | os.PathLike, **overrides: Any) -> Recipe:
    """Read and validate a recipe; ``overrides`` (e.g. ``out=``) replace top-level keys.

    Relative corpus paths are read from the current folder (run from the repo root).
    """
    import yaml

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"recipe {path} not found", hint="see configs/pipelines/")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from None
    data.update({k: v for k, v in overrides.items() if v is not None})
    if "corpus" not in data:
        raise ConfigError(f"{path}: 'corpus' (input files or folders) is required")
    if isinstance(data["corpus"], str):
        data["corpus"] = [data["corpus"]]
    recipe = _build(Recipe, data, path.name)
    recipe.validate()
    return recipe


def fingerprint(section: Any, upstream: dict[str, str]) -> str:
    """sha256 of a step's recipe section and its inputs' manifest hashes."""
    body = json.dumps(
        {"config": dataclasses.asdict(section) if dataclasses.is_dataclass(section) else section,
         "upstream": upstream},
        sort_keys=True,
        default=str,
    )  # fmt: skip
    return hashlib.sha256(body.encode()).hexdigest()


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
    from assay import pipeline_steps as steps

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
            existing = ctx.out / steps.FOLDERS[name]
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
        result = getattr(steps, f"step_{name}")(ctx)
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


def require(ctx: Context, step: str, needed_by: str) -> Path:
    """An earlier step's artifact, or an error saying which step to run."""
    path = ctx.artifact(step)
    if path is None:
        raise AssayError(
            f"step {needed_by} needs the {step} step's output, which is missing",
            hint=f"run it (assay pipeline RECIPE --from {step}) or unset {step}.skip",
        )
    return path
