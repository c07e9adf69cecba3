"""The ``assay pipeline`` recipe: one typed dataclass per step, validated on load.

A recipe is a YAML file (``configs/pipelines/*.yaml``); :func:`load_recipe` turns it into
a :class:`Recipe`, refusing unknown keys (the message lists the allowed ones) and values
of the wrong type, then checks the combinations (:meth:`Recipe.validate`). Example::

    recipe = load_recipe("configs/pipelines/demo.yaml", out="out/try")
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assay.errors import ConfigError

# assay select / dedup flags -> their keys in the recipe's select section (for messages)
FILTER_KEYS = {
    "--where": "where",
    "--threshold": "dedup_threshold",
    "--num-perm": "dedup_num_perm",
    "--ngram": "dedup_ngram",
}
STEPS = ("split", "annotate", "embed", "cluster", "mix", "influence", "select", "export")
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
    use: str | None = None
    """A finished annotated folder to use instead of annotating (``assay annotate`` or
    ``assay annotate --ray`` output, or a ``clustering.subset`` copy without held-out
    documents); ``raters`` is then not read."""
    add: list[str] = field(default_factory=list)
    """With ``use``: raters whose columns are added to a copy of that folder in
    ``OUT/annotated``, shard for shard (e.g. ``[dsir]``, which depends on the target,
    beside annotations shared by several targets)."""
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
    use: str | None = None
    """A finished embeddings folder of the annotated folder to use instead of embedding
    (checked row for row against it)."""
    max_tokens: int = 128
    """Tokens MiniLM reads per document (256 is its default; 128 halves the time)."""
    normalize: bool = False
    """Store unit vectors. ``false`` stores the raw mean-pooled states: cosine k-means
    normalises rows itself, and the influence head (``method: head``, same
    ``max_tokens``) reads them as its features instead of embedding the pool again."""
    dtype: str = "auto"
    """``auto`` = bfloat16 on AMX / AVX512-BF16 CPUs, else float32 | float32 | bfloat16."""


@dataclass
class ClusterStep:
    """``assay cluster``: FAISS k-means, CLIMB prune + merge, report."""

    skip: bool = False
    k: int | None = None
    """Clusters; null = a power of two near docs/100 (8..1000)."""
    prune: list[str] | None = None
    """Prune rules (``COLUMN>VALUE``); null = ``perplexity.nll>4.6`` when that column exists."""
    topics: int = 16
    """Topics the kept clusters are merged into (CLIMB: 16): the groups of
    ``mix.group_by: cluster.topic``. Fewer topics need fewer proxy runs (4 per group)."""
    seed: int = 0


@dataclass
class MixStep:
    """``assay mix search`` for the target with micro proxies (``selector.search``)."""

    skip: bool = False
    group_by: str = "cluster.topic"
    """Groups of the mixture (``cluster``, ``cluster.topic``, or an annotation column)."""
    method: str = "trust"
    """``trust`` (trust region around the prior, verified against it), ``climb``, ``regmix``."""
    proxies: int | None = None
    """Proxy runs, verification aside; null = 4 per group (at least 8)."""
    rounds: str = "2:1:1"
    """climb only: split of the proxies over rounds."""
    candidates: int = 5000
    top_k: int = 64
    """climb / regmix: best predicted mixtures averaged."""
    predictor: str = "lightgbm"
    """climb / regmix: ``lightgbm`` or ``linear``."""
    predictors: str = "loglinear,gp,lightgbm"
    """trust: surrogates cross-validated against each other; the best predicts."""
    trust_kl: float = 2.0
    """trust: trust-region radius (KL to the prior, nats) at CV skill 1."""
    kappa: float = 1.0
    """trust: standard deviations in the confidence bounds."""
    min_group_share: float = 1e-3
    """Groups under this share of the pool's tokens get weight 0."""
    max_epochs: float = 15.0
    verify: int = 3
    """trust: seeds of the final proposal-vs-prior check (>= 2, or 0 to skip); climb /
    regmix: seeds trained on the found mixture."""
    holdout: float = 0.5
    """trust: share of the target documents the search never fits on; the verification
    reads only those (0 = verify on the searched documents)."""
    guard: bool = True
    """climb / regmix: keep the best measured mixture instead when it beats the predicted
    optimum at the verification seeds (``selector.search.SearchConfig.guard``)."""
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
    """Influence model: ``head`` (frozen MiniLM + ridge, cheap; reads the embed step's
    vectors when ``embed.normalize`` is false and ``embed.max_tokens`` equals
    ``max_tokens``) or ``full`` (fine-tuned MiniLM: encodes the pool again)."""


@dataclass
class SelectStep:
    """``assay select`` to a token budget with the mixture's quotas."""

    skip: bool = False
    budget_tokens: int = 200_000
    """Tokens to select (annotation tokenizer)."""
    score: str = (
        "zscore(`assay-mini-v1.quality`) - zscore(influence.score) + zscore(`dsir.score`)"
    )
    """Score expression; a column of a skipped step is an error. The default needs the
    ``assay-mini-v1`` and ``dsir`` raters (dsir toward the target: the efficacy suite's
    figures in benchmarks/RESULTS.md) and the influence step."""
    where: str | None = None
    """Row filter (``assay select --where``), e.g. ``"lang == 'en'"`` (needs the ``lang``
    rater); null = every row."""
    dedup: bool = False
    """Find near-duplicate clusters of the annotations (``assay dedup``, into
    ``OUT/dedup``) and keep the best-scored document of each (``select --dedup``)."""
    dedup_threshold: float = 0.8
    """Jaccard similarity of near duplicates (``assay dedup --threshold``)."""
    dedup_num_perm: int = 128
    """MinHash permutations per document (``assay dedup --num-perm``)."""
    dedup_ngram: int = 5
    """Words per shingle (``assay dedup --ngram``)."""
    temperature: float = 0.0
    max_epochs: float = 1.0


@dataclass
class ExportStep:
    """``assay export`` of the selection and ``assay mix export`` of the mixture."""

    skip: bool = False
    formats: list[str] = field(default_factory=lambda: ["jsonl", "megatron", "olmo-core"])
    """Selection formats: jsonl | parquet | hf | megatron | mds | olmo-core (the token files
    the ``olmo-core`` mixture names, which then holds their absolute paths)."""
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
        self._validate_select_filters()
        if self.embed.skip and not self.cluster.skip:
            self.cluster.skip = True  # nothing to cluster without embeddings
        if self.cluster.skip and self.mix.group_by.startswith("cluster") and not self.mix.skip:
            raise ConfigError(
                f"mix.group_by {self.mix.group_by!r} needs the cluster step",
                hint="set mix.group_by to an annotation column such as domain",
            )
        if self.influence.skip and "influence." in self.select.score and not self.select.skip:
            raise ConfigError(
                "select.score uses influence.score but the influence step is skipped",
                hint="drop it from select.score or set influence.skip: false",
            )
        for key, value in (
            ("mix.proxies", 1 if self.mix.proxies is None else self.mix.proxies),
            ("influence.probes", self.influence.probes),
            ("influence.reference_docs", self.influence.reference_docs),
            ("annotate.shard_size", self.annotate.shard_size),
        ):
            if value < 1:
                raise ConfigError(f"{key} must be >= 1, got {value}")

    def _validate_select_filters(self) -> None:
        """select.where parses and the dedup settings are valid, before any step runs."""
        from clustering.dedup import DedupConfig
        from selector.where import parse_where

        cfg = self.select
        try:
            if cfg.where is not None:
                parse_where(cfg.where)
            if cfg.dedup:  # (datasketch is only needed, and imported, when dedup is on)
                DedupConfig(cfg.dedup_threshold, cfg.dedup_num_perm, cfg.dedup_ngram)
        except ConfigError as e:
            message = str(e.args[0])
            for flag, key in FILTER_KEYS.items():
                message = message.replace(flag, f"select.{key}")
            raise ConfigError(message, hint=e.hint) from None


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
