"""``assay select learn-weights``: Meta-rater's score-weight learning over annotation columns.

1. Draw ``samples`` weight vectors ~ Dirichlet(alpha) over the columns (each column
   min-max normalised over the pool; ``-col`` means lower is better).
2. Per vector: score = normalised columns @ weights; keep the top ``100 - percentile``
   percent of documents; train a fresh proxy LM (:func:`selector.proxy_lm.train_proxy`,
   the same seed and token budget for every subset: common random numbers) and record its
   loss on the target texts.
3. Fit LightGBM from weights to loss on the first ``1 - val_fraction`` of the runs, report
   Spearman on the rest (held out), then refit on every run.
4. Predict ``search_samples`` Dirichlet candidates; the weights are the mean of the
   ``topk`` with the lowest predicted loss (RegMix's recipe, which Meta-rater reuses).
5. Optionally (``verify``) train one more proxy on the chosen weights' subset.

The result is a :class:`selector.scores.ScoreWeights` file that ``assay select --weights``
reads. The whole pool is held in memory: pass an annotated folder of the size you can
afford to train proxies on (Meta-rater used 15% subsets of a sample as well).
"""

from __future__ import annotations

import fnmatch
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assay import manifest as mf
from assay.errors import AssayError, ConfigError
from selector.scores import ScoreWeights

INSTALL_HINT = "pip install 'assay[select]' (learn-weights needs lightgbm)"


@dataclass(frozen=True)
class LearnConfig:
    """Settings of the weight search (the CLI flags)."""

    samples: int = 32
    """Weight vectors tried, one proxy run each (``--samples``; Meta-rater: 256)."""
    alpha: float = 1.0
    """Dirichlet concentration of the sampled weights (``--alpha``)."""
    percentile: float = 85.0
    """Documents above this score percentile form a subset (``--percentile``; top 15%)."""
    val_fraction: float = 0.2
    """Runs held out to report the predictor's Spearman (``--val-fraction``)."""
    search_samples: int = 100_000
    """Dirichlet candidates scored by the predictor (``--search-samples``)."""
    topk: int = 128
    """Best predicted candidates averaged into the result (``--topk``)."""
    seed: int = 0
    """Seeds the weight draws and the search (proxies use ``proxy.seed``)."""
    verify: bool = True
    """Train one more proxy on the chosen weights' subset and report its loss."""
    proxy: dict[str, Any] = field(default_factory=dict)
    """ProxyConfig fields (``--proxy-tokens`` etc.)."""

    def __post_init__(self) -> None:
        if self.samples < 5:
            raise ConfigError(
                f"--samples must be >= 5 (a predictor needs runs), got {self.samples}"
            )
        if not self.alpha > 0:
            raise ConfigError(f"--alpha must be > 0, got {self.alpha}")
        if not 0 < self.percentile < 100:
            raise ConfigError(f"--percentile must be in (0, 100), got {self.percentile}")
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"--val-fraction must be in (0, 1), got {self.val_fraction}")
        if self.search_samples < self.topk or self.topk < 1:
            raise ConfigError(
                f"--topk ({self.topk}) must be >= 1 and <= --search-samples ({self.search_samples})"
            )


def resolve_columns(patterns: Sequence[str], available: Sequence[str]) -> list[tuple[str, int]]:
    """``[-]pattern`` (fnmatch) -> (column, sign); numeric columns only, in given order."""
    out: list[tuple[str, int]] = []
    for p in patterns:
        sign, pat = (-1, p[1:]) if p.startswith("-") else (1, p)
        hits = [c for c in available if fnmatch.fnmatchcase(c, pat)]
        if not hits:
            raise ConfigError(
                f"--column {p!r} matches no numeric column",
                hint="numeric columns: " + ", ".join(available),
            )
        out += [(c, sign) for c in hits if c not in {x for x, _ in out}]
    if len(out) < 2:
        raise ConfigError(f"learn-weights needs >= 2 columns, got {[c for c, _ in out]}")
    return out


def normalise(x: np.ndarray, sign: int) -> tuple[np.ndarray, float, float]:
    """Min-max to [0, 1] (1 = best); returns (values, center, scale) such that
    ``(x - center) / scale`` gives the values, NaN -> 0 (the worst)."""
    lo, hi = float(np.nanmin(x)), float(np.nanmax(x))
    span = (hi - lo) or 1.0
    center, scale = (lo, span) if sign > 0 else (hi, -span)
    return np.nan_to_num((x - center) / scale, nan=0.0), center, scale


def top_subset(scores: np.ndarray, percentile: float) -> np.ndarray:
    """Rows at or above the percentile, best first (ties broken by row order)."""
    k = max(1, round(len(scores) * (100 - percentile) / 100))
    return np.argsort(-scores, kind="stable")[:k]


def fit_predictor(w: np.ndarray, loss: np.ndarray, seed: int) -> Any:
    try:
        import lightgbm as lgb
    except ImportError as e:  # pragma: no cover - depends on the extra
        raise AssayError(f"learn-weights needs lightgbm ({e})", hint=INSTALL_HINT) from e
    # RegMix/Meta-rater: gbdt, 1,000 rounds at lr 0.01. Tens of runs, not thousands:
    # small leaves so that the trees can split at all.
    model = lgb.LGBMRegressor(
        n_estimators=1000,
        learning_rate=0.01,
        num_leaves=7,
        max_depth=4,
        min_child_samples=2,
        min_data_in_bin=1,
        random_state=seed,
        verbose=-1,
        n_jobs=1,
    )
    return model.fit(w, loss)


def learn_weights(
    texts: Sequence[str],
    features: Mapping[str, np.ndarray],
    signs: Mapping[str, int],
    targets: Mapping[str, Sequence[str]],
    cfg: LearnConfig,
    *,
    tokenizer_dir: str | os.PathLike | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> ScoreWeights:
    """Run the search (see the module docstring) over documents ``texts`` with numeric
    ``features`` (column -> values); returns the weights with a report in ``info``."""
    from raters.metrics import spearman
    from selector.proxy_lm import ProxyConfig, train_proxy

    t0 = time.perf_counter()
    proxy_cfg = ProxyConfig(**cfg.proxy)
    columns = list(features)
    norm, center, scale = [], {}, {}
    for c in columns:
        v, center[c], scale[c] = normalise(np.asarray(features[c], dtype=np.float64), signs[c])
        norm.append(v)
    x = np.stack(norm, axis=1)
    rng = np.random.default_rng(cfg.seed)
    w = rng.dirichlet(np.full(len(columns), cfg.alpha), size=cfg.samples)
    losses = np.zeros(cfg.samples)
    target_names = sorted(targets)

    def proxy_loss(weights: np.ndarray) -> float:
        keep = top_subset(x @ weights, cfg.percentile)
        result = train_proxy(
            [texts[i] for i in keep], targets, proxy_cfg, tokenizer_dir=tokenizer_dir
        )
        return float(np.mean([result.metrics[t]["loss"] for t in target_names]))

    for k in range(cfg.samples):
        losses[k] = proxy_loss(w[k])
        log(f"run {k + 1}/{cfg.samples}: loss {losses[k]:.4f}")
    n_val = max(3, round(cfg.val_fraction * cfg.samples))
    split = cfg.samples - n_val
    held = fit_predictor(w[:split], losses[:split], cfg.seed)
    val_rho = float(spearman(losses[split:], held.predict(w[split:])))
    predictor = fit_predictor(w, losses, cfg.seed)
    candidates = rng.dirichlet(np.full(len(columns), cfg.alpha), size=cfg.search_samples)
    predicted = predictor.predict(candidates)
    best = np.argsort(predicted, kind="stable")[: cfg.topk]
    chosen = candidates[best].mean(axis=0)
    report: dict[str, Any] = {
        "method": {
            "name": "meta-rater",
            "config": asdict(cfg),
            "proxy": proxy_cfg.to_dict(),
            "targets": {t: len(targets[t]) for t in target_names},
            "documents": len(texts),
            "subset_docs": len(top_subset(x[:, 0], cfg.percentile)),
        },
        "predictor": {
            "model": "lightgbm",
            "held_out_spearman": val_rho,
            "held_out_runs": n_val,
            "predicted_loss_of_result": float(predictor.predict(chosen[None, :])[0]),
        },
        "runs": [
            {"weights": dict(zip(columns, wk.round(6).tolist(), strict=True)), "loss": float(lk)}
            for wk, lk in zip(w, losses, strict=True)
        ],
        "signs": dict(signs),
    }
    if cfg.verify:
        verified = proxy_loss(chosen)
        report["verify"] = {
            "loss": verified,
            "sampled_best": float(losses.min()),
            "sampled_mean": float(losses.mean()),
            "sampled_std": float(losses.std()),
        }
        log(f"chosen weights: loss {verified:.4f} (sampled best {losses.min():.4f})")
    report["seconds"] = round(time.perf_counter() - t0, 2)
    weights = dict(zip(columns, chosen.tolist(), strict=True))
    return ScoreWeights(weights, center, scale, report)


def learn_weights_from_folder(
    annotated: str | os.PathLike,
    columns: Sequence[str],
    targets: Mapping[str, Sequence[str]],
    cfg: LearnConfig,
    out: str | os.PathLike,
    *,
    tokenizer_dir: str | os.PathLike | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> ScoreWeights:
    """Read an annotated folder, learn weights over ``columns``, write them to ``out``."""
    import tempfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    from selector.select_read import read_columns

    annotated = Path(annotated)
    manifest = mf.read_manifest(annotated, kind="annotations")
    shards = list(manifest["shards"])
    schema = pq.read_schema(annotated / shards[0])
    numeric = [
        f.name
        for f in schema
        if (pa.types.is_integer(f.type) or pa.types.is_floating(f.type))
        and not f.name.endswith("n_tokens")
    ]
    chosen = resolve_columns(columns, numeric)
    text = manifest.get("config", {}).get("text_field", "text")
    cols = read_columns(annotated, shards, [c for c, _ in chosen] + [text])
    texts = cols.pop(text).tolist()
    with tempfile.TemporaryDirectory(prefix="assay-bpe-") as tmp:
        tok = tokenizer_dir
        if tok is None:  # one BPE for every proxy: the runs differ only in their data
            from selector.bpe import train_bpe

            tok = train_bpe(texts, tmp, vocab_size=4096)
        weights = learn_weights(
            texts,
            {c: cols[c] for c, _ in chosen},
            dict(chosen),
            targets,
            cfg,
            tokenizer_dir=tok,
            log=log,
        )
    weights.info["inputs"] = {
        "annotated": str(annotated.resolve()),
        "annotated_manifest_sha256": mf.sha256_of(annotated / mf.MANIFEST),
        "tokenizer": str(tokenizer_dir) if tokenizer_dir else "4k BPE trained on the pool",
    }
    weights.write(out)
    return weights


__all__ = ["LearnConfig", "learn_weights", "learn_weights_from_folder", "resolve_columns"]
