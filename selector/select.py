"""``assay select``: the best documents per group, under a token budget, as Parquet shards.

1. read the score columns, the group column and token counts of an annotated folder (the
   group may come from a clusters folder, row-aligned; pruned clusters are left out)
   (:mod:`selector.select_read`);
2. combine the score (``--score`` expression or ``--weights`` file); leave out the rows
   that fail ``--where`` (:mod:`selector.where`) and, with ``--dedup``, all but the
   best-scored document of each near-duplicate cluster; z-score the score over the
   remaining documents so ``--temperature`` is in standard deviations
   (:mod:`selector.select_targets`);
3. per-group token quotas from ``--mixture`` (proportional to what each group holds when
   only ``--group-by`` is given; one group ``all`` otherwise), capped by ``--max-epochs``;
4. within each group: Gumbel keys, best first, taken until the quota
   (:mod:`selector.gumbel`); upsampled only when the group is short and ``--max-epochs``
   allows it;
5. write ``group=<name>/part-NNNNN.parquet`` (input columns + ``select.score``,
   ``select.copy``) into a staged folder (:mod:`selector.select_write`), then the
   realised ``mixture.json`` and ``manifest.json`` (every choice).

This module holds the run's config and wires those steps together; the arithmetic is in
:mod:`selector.gumbel` and :mod:`selector.select_targets`, the file I/O in
:mod:`selector.select_read` and :mod:`selector.select_write`.

Documents whose score is NaN are never chosen; they are counted in the manifest, as are
those left out by ``--where``, by ``--dedup`` and by pruning.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assay import manifest as mf
from assay.errors import AssayError, ConfigError
from selector.gumbel import Choice, choose
from selector.mixture import Group, Mixture
from selector.select_read import cluster_columns, read_columns, shard_offsets, token_counts
from selector.select_targets import one_per_cluster, standardise, target_weights
from selector.select_write import KIND, commit_out, group_dir, prepare_out, write_groups


@dataclass(frozen=True)
class SelectConfig:
    """Settings of one selection run (the CLI flags)."""

    budget_tokens: int
    """Training tokens to select in all (``--budget-tokens``)."""
    score: str | None = None
    """Expression over columns (``--score``); exclusive with ``weights``."""
    weights: str | None = None
    """Score-weights file from ``learn-weights`` (``--weights``)."""
    mixture: str | None = None
    """mixture.json with the target weight of each group (``--mixture``)."""
    group_by: str | None = None
    """Group column (``--group-by``); default: the mixture's ``group_by``."""
    clusters: str | None = None
    """Clusters folder from ``assay cluster`` giving ``cluster``/``cluster.topic``."""
    keep_pruned: bool = False
    """Also select from clusters that ``assay cluster --prune`` dropped."""
    where: str | None = None
    """Row filter (``--where``, :mod:`selector.where`): only rows where it holds are
    selected, e.g. ``"lang == 'en' and heuristics.rps_doc_word_count >= 50"``."""
    dedup: str | None = None
    """Folder from ``assay dedup`` (``--dedup``): each near-duplicate cluster keeps its
    best-scored document, so the budget is not spent twice on one text."""
    temperature: float = 0.0
    """Gumbel noise scale in standard deviations of the score; 0 = deterministic top."""
    max_epochs: float = 1.0
    """A short group may be repeated up to this many times (1 = never repeat)."""
    seed: int = 0
    """Seed of the Gumbel noise."""
    tokenizer: str = "smollm2-135m"
    """Target tokenizer; ``n_tokens`` is used when the annotation used the same one."""
    shard_size: int = 5000
    """Rows per output shard."""

    def __post_init__(self) -> None:
        if self.budget_tokens <= 0:
            raise ConfigError(f"--budget-tokens must be > 0, got {self.budget_tokens}")
        if (self.score is None) == (self.weights is None):
            raise ConfigError(
                "give exactly one of --score EXPR or --weights FILE",
                hint="e.g. --score '-perplexity.nll' or --weights weights.json",
            )
        if not (self.temperature >= 0 and np.isfinite(self.temperature)):
            raise ConfigError(f"--temperature must be >= 0, got {self.temperature}")
        if not (self.max_epochs >= 1 and np.isfinite(self.max_epochs)):
            raise ConfigError(f"--max-epochs must be >= 1, got {self.max_epochs}")
        if self.shard_size <= 0:
            raise ConfigError(f"--shard-size must be > 0, got {self.shard_size}")


def _filter(cfg: SelectConfig) -> Any:
    from selector.where import parse_where

    return parse_where(cfg.where) if cfg.where else None


def _scorer(cfg: SelectConfig) -> Any:
    from selector.scores import ScoreWeights, parse_score

    return parse_score(cfg.score) if cfg.score is not None else ScoreWeights.read(cfg.weights)


def select(
    annotated: str | os.PathLike,
    out: str | os.PathLike,
    cfg: SelectConfig,
    *,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run a selection (see the module docstring); returns the manifest.

    Example::

        select("out/annotated", "out/selected",
               SelectConfig(budget_tokens=1_000_000, score="-perplexity.nll"))
    """
    t0 = time.perf_counter()
    annotated, out = Path(annotated), Path(out)
    manifest = mf.read_manifest(annotated, kind="annotations")
    shards = list(manifest["shards"])
    if not shards:
        raise AssayError(f"{annotated} has no shards")
    scorer = _scorer(cfg)
    where = _filter(cfg)
    mixture = Mixture.read(cfg.mixture) if cfg.mixture else None
    mixture_group_by = mixture.group_by if mixture else None
    group_by = cfg.group_by or mixture_group_by
    if cfg.mixture and cfg.group_by and mixture_group_by and cfg.group_by != mixture_group_by:
        raise ConfigError(
            f"--group-by {cfg.group_by} differs from the mixture's group_by {mixture_group_by}"
        )
    extra: dict[str, np.ndarray] = {}
    if cfg.clusters:
        extra = cluster_columns(annotated, Path(cfg.clusters))
    elif group_by and group_by.startswith("cluster"):
        raise ConfigError(
            f"--group-by {group_by} lives in a clusters folder", hint="pass --clusters DIR"
        )
    if cfg.dedup:
        from clustering.dedup import dedup_columns

        extra.update(dedup_columns(annotated, Path(cfg.dedup)))
    wanted = [*scorer.columns, *(where.columns if where else []), group_by]
    in_annotated = [c for c in dict.fromkeys(wanted) if c and c not in extra]
    cols = read_columns(annotated, shards, in_annotated)
    cols.update(extra)
    offsets = shard_offsets(annotated, shards)
    n = int(offsets[-1])
    tokens, token_source = token_counts(annotated, manifest, shards, cfg.tokenizer)
    raw = scorer({c: cols[c] for c in scorer.columns})
    ok = ~np.isnan(raw)
    unscored = int((~ok).sum())
    pruned = 0
    if "cluster.pruned" in extra and not cfg.keep_pruned:
        drop = extra["cluster.pruned"].astype(bool)
        pruned = int((drop & ok).sum())
        ok &= ~drop
    filtered = duplicates = 0
    if where is not None:
        passes = where({c: cols[c] for c in where.columns})
        filtered = int((ok & ~passes).sum())
        ok &= passes
    if cfg.dedup:
        keep = one_per_cluster(extra["dedup.cluster"], raw, ok)
        duplicates = int((ok & ~keep).sum())
        ok &= keep
    z, mean, sd = standardise(raw, ok)
    values = cols[group_by] if group_by else None
    # The mixture's weights apply to its groups only when rows are grouped at all.
    targets = None
    if mixture is not None and values is not None:
        targets = [(g.name, g.weight) for g in mixture.groups]
    names, weights, group = target_weights(values, tokens, ok, targets)
    t_read = time.perf_counter() - t0
    choice = choose(
        z,
        tokens,
        group,
        weights,
        cfg.budget_tokens,
        temperature=cfg.temperature,
        max_epochs=cfg.max_epochs,
        seed=cfg.seed,
    )
    t_choose = time.perf_counter() - t0 - t_read
    selected = sum(g["tokens_selected"] for g in choice.groups)
    if selected == 0:
        raise AssayError(
            "nothing was selected: no scored document fits the budget",
            hint="raise --budget-tokens, check the score columns for NaN"
            + (f", or loosen --where ({filtered:,} rows failed it)" if where else ""),
        )
    final, out = out, prepare_out(out, overwrite)
    files = write_groups(
        annotated, shards, offsets, choice, group, names, raw, extra, out, cfg.shard_size
    )
    provenance = {
        "annotated": str(annotated.resolve()),
        "annotated_manifest_sha256": mf.sha256_of(annotated / mf.MANIFEST),
    }
    realised = Mixture(
        groups=[
            Group(
                name=name,
                weight=info["tokens_selected"] / selected,
                tokens_available=info["tokens_available"],
                docs_available=info["docs_available"],
                tokens_selected=info["tokens_selected"],
                docs_selected=info["docs_selected"],
                paths=[group_dir(name)] if name in files else [],
            )
            for name, info in zip(names, choice.groups, strict=True)
        ],
        group_by=group_by or "",
        budget_tokens=cfg.budget_tokens,
        method={
            "name": "select",
            "target_weights": dict(zip(names, weights.round(8).tolist(), strict=True)),
            "from_mixture": cfg.mixture,
            "target_method": mixture.method if targets is not None else None,
        },
        provenance=provenance,
    )
    realised.write(out / "mixture.json")
    groups = []
    for name, w, info in zip(names, weights, choice.groups, strict=True):
        epochs = (
            info["tokens_selected"] / info["tokens_available"] if info["tokens_available"] else None
        )
        groups.append(
            {
                "name": name,
                "target_weight": float(w),
                **info,
                "epochs": epochs,
                "files": files.get(name, []),
            }
        )
    result = mf.new_manifest(
        KIND,
        inputs={
            **provenance,
            "clusters": str(Path(cfg.clusters).resolve()) if cfg.clusters else None,
            "dedup": str(Path(cfg.dedup).resolve()) if cfg.dedup else None,
            "mixture": str(Path(cfg.mixture).resolve()) if cfg.mixture else None,
            "weights": str(Path(cfg.weights).resolve()) if cfg.weights else None,
        },
        config=asdict(cfg),
        score={
            "expression": cfg.score,
            "weights": getattr(scorer, "weights", None),
            "columns": scorer.columns,
            "standardised": {"mean": mean, "std": sd},
        },
        tokens={"source": token_source, "tokenizer": cfg.tokenizer},
        seeds={"gumbel": cfg.seed},
        counts={
            "rows": n,
            "unscored": unscored,
            "pruned_excluded": pruned,
            "where_excluded": filtered,
            "duplicates_excluded": duplicates,
            "budget_tokens": cfg.budget_tokens,
            "tokens_selected": selected,
            "tokens_left": cfg.budget_tokens - selected,
            "docs_selected": int(choice.rows.size),
            "docs_repeated": int((choice.copies > 0).sum()),
        },
        group_by=group_by,
        text_field=manifest.get("config", {}).get("text_field", "text"),
        groups=groups,
        timings={
            "read_seconds": round(t_read, 3),
            "choose_seconds": round(t_choose, 3),
            "total_seconds": round(time.perf_counter() - t0, 3),
        },
    )
    mf.write_json_atomic(out / mf.MANIFEST, result)
    commit_out(out, final)
    return result


def read_selection(folder: str | os.PathLike) -> tuple[dict[str, Any], Mixture]:
    """A finished selection's manifest and realised mixture."""
    folder = Path(folder)
    manifest = mf.read_manifest(folder, kind=KIND)
    return manifest, Mixture.read(folder / "mixture.json")


__all__ = ["Choice", "SelectConfig", "choose", "group_dir", "read_selection", "select"]
