"""``assay select``: the best documents per group, under a token budget, as Parquet shards.

1. read the score columns, the group column and token counts of an annotated folder (the
   group may come from a clusters folder, row-aligned; pruned clusters are left out);
2. combine the score (``--score`` expression or ``--weights`` file), z-score it over the
   scored documents so ``--temperature`` is in standard deviations;
3. per-group token quotas from ``--mixture`` (proportional to what each group holds when
   only ``--group-by`` is given; one group ``all`` otherwise), capped by ``--max-epochs``;
4. within each group: Gumbel keys, best first, taken until the quota
   (:mod:`selector.gumbel`); upsampled only when the group is short and ``--max-epochs``
   allows it;
5. write ``group=<name>/part-NNNNN.parquet`` (input columns + ``select.score``,
   ``select.copy``), the realised ``mixture.json`` and ``manifest.json`` (every choice).

Documents whose score is NaN are never chosen; they are counted in the manifest.
"""

from __future__ import annotations

import os
import shutil
import time
import urllib.parse
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assay import manifest as mf
from assay.errors import AssayError, ConfigError, ManifestMismatchError
from selector.gumbel import Choice, choose, group_index
from selector.mixture import Group, Mixture

KIND = "selection"


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


def _scorer(cfg: SelectConfig) -> Any:
    from selector.scores import ScoreWeights, parse_score

    return parse_score(cfg.score) if cfg.score is not None else ScoreWeights.read(cfg.weights)


def _read_columns(annotated: Path, shards: list[str], names: list[str]) -> dict[str, np.ndarray]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(annotated / shards[0])
    missing = [c for c in names if c not in schema.names]
    if missing:
        raise ConfigError(
            f"{annotated} has no column(s) {missing}",
            hint="columns here: " + ", ".join(schema.names),
        )
    table = pa.concat_tables([pq.read_table(annotated / s, columns=names) for s in shards])
    out = {}
    for c in names:
        col = table.column(c)
        t = col.type
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
            out[c] = col.to_numpy(zero_copy_only=False).astype(np.float64)
        else:
            out[c] = np.asarray(col.to_pylist(), dtype=object)
    return out


def _cluster_columns(annotated: Path, clusters: Path) -> dict[str, np.ndarray]:
    """``cluster``, ``cluster.topic`` and ``cluster.pruned``, after checking alignment."""
    import pyarrow.parquet as pq

    from clustering.aligned import annotation_shards, check_aligned

    manifest = mf.read_manifest(clusters, kind="clusters")
    shards = annotation_shards(annotated)
    check_aligned(shards, manifest["shards"], what="clusters", folder=clusters)
    names = ["cluster", "cluster.topic", "cluster.pruned"]
    parts = [pq.read_table(clusters / s.name, columns=names) for s in shards]
    return {c: np.concatenate([p.column(c).to_numpy() for p in parts]) for c in names}


def _tokens(annotated: Path, manifest: dict, shards: list[str], cfg: SelectConfig) -> tuple:
    """Token counts under the target tokenizer, and where they came from."""
    import pyarrow.parquet as pq

    if manifest.get("tokenizer") == cfg.tokenizer:
        counts = _read_columns(annotated, shards, ["n_tokens"])["n_tokens"]
        return counts.astype(np.int64), f"n_tokens column ({cfg.tokenizer})"
    from raters.tokens import TokenCounter

    counter = TokenCounter(cfg.tokenizer)
    text = manifest.get("config", {}).get("text_field", "text")
    parts = [
        counter(pq.read_table(annotated / s, columns=[text]).column(text).to_pylist())
        for s in shards
    ]
    return np.concatenate(parts).astype(np.int64), f"counted ({cfg.tokenizer})"


def _target_weights(
    cfg: SelectConfig, values: np.ndarray | None, tokens: np.ndarray, ok: np.ndarray
) -> tuple[list[str], np.ndarray, np.ndarray, Mixture | None]:
    """Group names, target weights, each row's group number (-1: not selectable)."""
    if values is None:
        return ["all"], np.ones(1), np.where(ok, 0, -1), None
    names, in_ok = group_index(values[ok])  # groups with no selectable row are left out
    idx = np.full(len(values), -1, dtype=np.int64)
    idx[ok] = in_ok
    if cfg.mixture is None:  # proportional to what each group holds
        held = np.bincount(idx[ok], weights=tokens[ok], minlength=len(names))
        return names, held / held.sum(), idx, None
    mixture = Mixture.read(cfg.mixture)
    known = {n: i for i, n in enumerate(names)}
    extra = [g.name for g in mixture.groups if g.name not in known]
    names = names + extra  # groups the mixture wants but the corpus lacks: 0 available
    weights = np.zeros(len(names))
    for g in mixture.groups:
        weights[known.get(g.name, names.index(g.name))] = g.weight
    return names, weights, idx, mixture


STAGING_MARK = ".assay-staging"


def prepare_out(out: Path, overwrite: bool, kind: str = KIND) -> Path:
    """Check ``out`` and return a fresh staging folder beside it: the artifact is written
    there and renamed into place by :func:`commit_out`, so a killed run leaves no
    half-written artifact in ``out``."""
    if out.exists() and any(out.iterdir()):
        try:
            ours = mf.read_manifest(out).get("kind") == kind
        except AssayError:
            ours = False
        if not ours:
            raise ManifestMismatchError(
                f"output folder {out} exists, is not empty and is not a finished {kind}",
                hint="choose another -o (assay never deletes a folder it did not write)",
            )
        if not overwrite:
            raise ManifestMismatchError(
                f"{out} already holds a {kind}", hint="pass --overwrite to replace it"
            )
    staging = out.parent / f".{out.name}.staging"
    if staging.exists():
        if not (staging / STAGING_MARK).exists():
            raise ManifestMismatchError(f"{staging} exists and was not written by assay")
        shutil.rmtree(staging)  # a killed earlier run of ours
    staging.mkdir(parents=True)
    (staging / STAGING_MARK).touch()
    return staging


def commit_out(staging: Path, out: Path) -> None:
    """Move the finished artifact into place (replacing a checked earlier one)."""
    (staging / STAGING_MARK).unlink()
    if out.exists():
        shutil.rmtree(out)  # empty, or an artifact of ours that prepare_out accepted
    os.replace(staging, out)


def group_dir(name: str) -> str:
    """Folder of a group: ``group=<name>``, percent-quoted so any name is a safe path."""
    return "group=" + urllib.parse.quote(name, safe="-_.")


def _write_groups(
    annotated: Path,
    shards: list[str],
    offsets: np.ndarray,
    choice: Choice,
    group: np.ndarray,
    names: list[str],
    score: np.ndarray,
    extra: dict[str, np.ndarray],
    out: Path,
    shard_size: int,
) -> dict[str, list[str]]:
    """Selected rows, in corpus order, into ``group=<name>/part-NNNNN.parquet``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from assay.shards import write_shard

    order = np.lexsort((choice.copies, choice.rows))
    rows, copies = choice.rows[order], choice.copies[order]
    buffers: dict[int, list[pa.Table]] = {}
    written: dict[int, list[str]] = {}

    def flush(g: int) -> None:
        table = pa.concat_tables(buffers.pop(g), promote_options="permissive")
        folder = out / group_dir(names[g])
        folder.mkdir(exist_ok=True)
        index = len(written.setdefault(g, []))
        path = write_shard(folder, index, table, {"rows": table.num_rows, "group": names[g]})
        written[g].append(f"{folder.name}/{path.name}")

    for s, name in enumerate(shards):
        lo, hi = np.searchsorted(rows, [offsets[s], offsets[s + 1]])
        if lo == hi:
            continue
        table = pq.read_table(annotated / name)
        local = rows[lo:hi] - offsets[s]
        part = table.take(pa.array(local))
        part = part.append_column("select.score", pa.array(score[rows[lo:hi]], pa.float64()))
        part = part.append_column("select.copy", pa.array(copies[lo:hi], pa.int32()))
        for c, values in extra.items():
            if c not in part.column_names:
                part = part.append_column(c, pa.array(values[rows[lo:hi]]))
        g_of = group[rows[lo:hi]]
        for g in np.unique(g_of):
            buffers.setdefault(int(g), []).append(part.filter(pa.array(g_of == g)))
            if sum(t.num_rows for t in buffers[int(g)]) >= shard_size:
                flush(int(g))
    for g in list(buffers):
        flush(g)
    return {names[g]: files for g, files in sorted(written.items())}


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
    mixture_group_by = Mixture.read(cfg.mixture).group_by if cfg.mixture else None
    group_by = cfg.group_by or mixture_group_by
    if cfg.mixture and cfg.group_by and mixture_group_by and cfg.group_by != mixture_group_by:
        raise ConfigError(
            f"--group-by {cfg.group_by} differs from the mixture's group_by {mixture_group_by}"
        )
    extra: dict[str, np.ndarray] = {}
    if cfg.clusters:
        extra = _cluster_columns(annotated, Path(cfg.clusters))
    elif group_by and group_by.startswith("cluster"):
        raise ConfigError(
            f"--group-by {group_by} lives in a clusters folder", hint="pass --clusters DIR"
        )
    score_cols = [c for c in scorer.columns if c not in extra]
    in_annotated = [group_by] if group_by and group_by not in extra else []
    cols = _read_columns(annotated, shards, score_cols + in_annotated)
    cols.update(extra)
    offsets = np.r_[0, np.cumsum([mf_rows(annotated, s) for s in shards])].astype(np.int64)
    n = int(offsets[-1])
    tokens, token_source = _tokens(annotated, manifest, shards, cfg)
    raw = scorer({c: cols[c] for c in scorer.columns})
    ok = ~np.isnan(raw)
    unscored = int((~ok).sum())
    pruned = 0
    if "cluster.pruned" in extra and not cfg.keep_pruned:
        drop = extra["cluster.pruned"].astype(bool)
        pruned = int((drop & ok).sum())
        ok &= ~drop
    z = np.full(n, np.nan)
    sd = float(np.std(raw[ok])) if ok.any() else 0.0
    z[ok] = (raw[ok] - float(np.mean(raw[ok]))) / (sd if sd > 0 else 1.0)
    values = cols[group_by] if group_by else None
    names, weights, group, mixture = _target_weights(cfg, values, tokens, ok)
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
            hint="raise --budget-tokens or check the score columns for NaN",
        )
    final, out = out, prepare_out(out, overwrite)
    files = _write_groups(
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
            "target_method": mixture.method if mixture else None,
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
            "mixture": str(Path(cfg.mixture).resolve()) if cfg.mixture else None,
            "weights": str(Path(cfg.weights).resolve()) if cfg.weights else None,
        },
        config=asdict(cfg),
        score={
            "expression": cfg.score,
            "weights": getattr(scorer, "weights", None),
            "columns": scorer.columns,
            "standardised": {"mean": float(np.mean(raw[ok])) if ok.any() else None, "std": sd},
        },
        tokens={"source": token_source, "tokenizer": cfg.tokenizer},
        seeds={"gumbel": cfg.seed},
        counts={
            "rows": n,
            "unscored": unscored,
            "pruned_excluded": pruned,
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


def mf_rows(annotated: Path, shard: str) -> int:
    import pyarrow.parquet as pq

    return int(pq.read_metadata(annotated / shard).num_rows)


def read_selection(folder: str | os.PathLike) -> tuple[dict[str, Any], Mixture]:
    """A finished selection's manifest and realised mixture."""
    folder = Path(folder)
    manifest = mf.read_manifest(folder, kind=KIND)
    return manifest, Mixture.read(folder / "mixture.json")


__all__ = ["Choice", "SelectConfig", "choose", "group_dir", "read_selection", "select"]
