"""What the efficacy benchmarks share: the arms, how each chooses its rows from one
pipeline run, the proxy training of every arm at common seeds, and the plots.

Used by ``benchmarks/selection_efficacy.py`` (one target) and
``benchmarks/efficacy_suite.py`` (many targets); not a script itself.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from html import escape
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from selector.bigram import bigram_nats  # noqa: E402 - the repo is on the path now

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PRESETS = {  # proxy sizes (2-core CPU: 0.13M x 31k tokens ~5 s, 1M x 125k ~27 s per run)
    "micro": {"hidden": 64, "layers": 2, "heads": 4, "seq_len": 256},
    "small": {"hidden": 128, "layers": 4, "heads": 4, "seq_len": 256},
    # >= 15M parameters (Olmix: proxies this size rank mixtures like 1B models, rho > 0.89;
    # 1M ones only 0.73): a GPU preset (benchmarks/gpu_efficacy.py)
    "gpu15m": {
        "hidden": 384,
        "layers": 8,
        "heads": 6,
        "seq_len": 512,
        "batch_size": 32,
        "lr": 3e-3,
        "dtype": "bfloat16",
        "device": "cuda",
    },
}
ARMS = ("random", "proportional", "quality", "dsir", "mixture", "influence", "assay")
# from the same pipeline run (suite --arms); assay-influence: the default score without
# its influence term (quality + dsir under the quotas)
EXTRA_ARMS = ("assay+dsir", "mixture+dsir", "assay-influence")
STOCHASTIC = ("random", "proportional", "mixture")  # a new random draw per seed
COLORS = {"random": "#7f7f7f", "proportional": "#1f77b4", "quality": "#ff7f0e",
          "dsir": "#8c564b", "mixture": "#2ca02c", "influence": "#9467bd",
          "assay": "#d62728"}  # fmt: skip


def tokens_to_reach(curve_x: np.ndarray, curve_y: np.ndarray, level: float) -> float | None:
    """First tokens-seen where a loss curve gets to ``level`` (linear interpolation)."""
    if curve_y[0] <= level:
        return float(curve_x[0])
    for i in range(1, len(curve_y)):
        if curve_y[i] <= level:
            x0, x1, y0, y1 = curve_x[i - 1], curve_x[i], curve_y[i - 1], curve_y[i]
            return float(x0 + (x1 - x0) * (y0 - level) / (y0 - y1))
    return None


def write_curves_svg(path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray]], ref: float,
                     title: str) -> str:  # fmt: skip
    """Mean target loss vs tokens seen, one line per arm; dashed: arm (a)'s final loss."""
    W, H, P = 560, 360, 56
    xs = np.concatenate([c[0] for c in curves.values()])
    ys = np.concatenate([c[1] for c in curves.values()])
    x0, x1 = 0.0, float(xs.max())
    lo, hi = float(ys.min()), float(ys.max())
    lo, hi = lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)

    def sx(x: float) -> float:
        return P + (W - 2 * P) * (x - x0) / max(x1 - x0, 1e-9)

    def sy(y: float) -> float:
        return H - P - (H - 2 * P) * (y - lo) / max(hi - lo, 1e-9)

    parts = [
        f'<rect x="{P}" y="{P}" width="{W - 2 * P}" height="{H - 2 * P}" fill="none" '
        'stroke="#999"/>',
        f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="13">{escape(title)}</text>',
        f'<text x="{W / 2}" y="{H - 12}" text-anchor="middle" font-size="12">tokens seen</text>',
        f'<text x="14" y="{H / 2}" font-size="12" transform="rotate(-90 14 {H / 2})" '
        'text-anchor="middle">target loss (nats/token)</text>',
    ]
    for i in range(5):
        y = lo + (hi - lo) * i / 4
        x = x0 + (x1 - x0) * i / 4
        parts.append(f'<text x="{P - 4}" y="{sy(y) + 4:.1f}" font-size="10" '
                     f'text-anchor="end">{y:.2f}</text>')  # fmt: skip
        parts.append(f'<text x="{sx(x):.1f}" y="{H - P + 14}" font-size="10" '
                     f'text-anchor="middle">{x / 1000:.0f}k</text>')  # fmt: skip
    parts.append(
        f'<line x1="{P}" x2="{W - P}" y1="{sy(ref):.1f}" y2="{sy(ref):.1f}" stroke="#7f7f7f" '
        'stroke-dasharray="4 3"/>'
    )
    for k, (arm, (cx, cy)) in enumerate(curves.items()):
        pts = " ".join(f"{sx(a):.1f},{sy(b):.1f}" for a, b in zip(cx, cy, strict=True))
        color = COLORS.get(arm, "#000")
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>')
        parts.append(f'<text x="{W - P - 110}" y="{P + 16 + 15 * k}" font-size="11" '
                     f'fill="{color}">{escape(arm)}</text>')  # fmt: skip
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'font-family="sans-serif"><title>{escape(title)}</title>' + "".join(parts) + "</svg>\n"
    )
    path.write_text(svg)
    return str(path)


class Pool(NamedTuple):
    """What the arms choose from: one pipeline run's pool, row for row. (A NamedTuple,
    not a dataclass: ``assay bench efficacy`` loads this file without ``sys.modules``.)"""

    ids: np.ndarray
    texts: list[str]
    tokens: np.ndarray  # SmolLM2 tokens per document (the budget's unit)
    quality: np.ndarray
    influence: np.ndarray  # influence.score: predicted reference-loss change (< 0 helps)
    topic: np.ndarray  # cluster.topic group number of every row (pruned clusters too)
    topic_share: np.ndarray  # each topic's share of the pool's tokens (proportional)
    mix_group: np.ndarray  # group into mix_weights, as the select step sets it; -1 pruned
    mix_weights: np.ndarray  # the mix step's mixture.json weights (mixture, assay quotas)
    assay_rows: np.ndarray
    domain: np.ndarray | None  # the pool's domain column, if any (composition only)
    dsir: np.ndarray | None = None  # DSIR log importance weight toward the dev half


def read_pool(pipeline: Path) -> Pool:
    """The arms' inputs from a finished pipeline folder: the influence-scored annotations,
    clusters, mix step mixture and selection (no step is run again)."""
    import pyarrow.parquet as pq

    from assay import manifest as mf
    from selector.mixture import Mixture
    from selector.select_read import cluster_columns, read_columns
    from selector.select_targets import target_weights

    scored = pipeline / "influence" / "scored"
    shards = mf.read_manifest(scored, kind="annotations")["shards"]
    names = ["id", "text", "n_tokens", "assay-mini-v1.quality", "influence.score"]
    has_domain = "domain" in pq.read_schema(scored / shards[0]).names
    c = read_columns(scored, shards, names + ["domain"] * has_domain)
    cl = cluster_columns(scored, pipeline / "clusters")
    tokens = c["n_tokens"].astype(np.int64)
    topic_names, topic = np.unique(cl["cluster.topic"].astype(str), return_inverse=True)
    share = np.bincount(topic, weights=tokens, minlength=len(topic_names)) / tokens.sum()
    mixture = Mixture.read(pipeline / "mixture" / "mixture.json")
    assert mixture.group_by in cl, f"mixture grouped by {mixture.group_by}, not a cluster column"
    kept = ~cl["cluster.pruned"].astype(bool)  # the select step leaves pruned clusters out
    targets = [(g.name, g.weight) for g in mixture.groups]
    _, mix_weights, mix_group = target_weights(cl[mixture.group_by], tokens, kept, targets)
    sel = mf.read_manifest(pipeline / "selected", kind="selection")
    files = [pipeline / "selected" / f for g in sel["groups"] for f in g["files"]]
    chosen = [i for f in files for i in pq.read_table(f, columns=["id"])["id"].to_pylist()]
    row_of = {str(i): k for k, i in enumerate(c["id"])}
    return Pool(
        ids=c["id"], texts=list(c["text"]), tokens=tokens, quality=c["assay-mini-v1.quality"],
        influence=c["influence.score"], topic=topic, topic_share=share, mix_group=mix_group,
        mix_weights=mix_weights, domain=c.get("domain"),
        assay_rows=np.array(sorted(row_of[str(i)] for i in chosen), dtype=np.int64),
    )  # fmt: skip


def arm_rows(arm: str, seed: int, pool: Pool, budget: int) -> np.ndarray:
    """Sorted pool rows that ``arm`` trains on under proxy seed ``seed``; the random arms
    share one uniform draw per seed (common random numbers), all choose at T=0."""
    from selector.gumbel import choose

    n = len(pool.tokens)
    one, whole = np.zeros(n, dtype=np.int64), np.ones(1)
    noise = np.random.default_rng(1000 + seed).random(n)
    if arm == "random":
        scores, group, weights = noise, one, whole
    elif arm == "proportional":
        scores, group, weights = noise, pool.topic, pool.topic_share
    elif arm == "quality":
        q = pool.quality
        scores, group, weights = np.where(np.isnan(q), np.nanmin(q) - 1.0, q), one, whole
    elif arm == "mixture":
        scores, group, weights = noise, pool.mix_group, pool.mix_weights
    elif arm == "influence":  # NaN scores are never chosen
        scores, group, weights = -pool.influence, one, whole
    elif arm == "dsir":
        if pool.dsir is None:
            raise ValueError("the dsir arm needs Pool.dsir (run_efficacy computes it)")
        scores, group, weights = pool.dsir, one, whole
    elif arm == "assay":
        return pool.assay_rows
    elif arm == "assay+dsir":  # assay's score and quotas, plus zscore(dsir.score)
        if pool.dsir is None:
            raise ValueError("the assay+dsir arm needs Pool.dsir (run_efficacy computes it)")
        scores = _z(pool.quality) - _z(pool.influence) + _z(pool.dsir)
        group, weights = pool.mix_group, pool.mix_weights
    elif arm == "assay-influence":
        if pool.dsir is None:
            raise ValueError("the assay-influence arm needs Pool.dsir (run_efficacy computes it)")
        scores = _z(pool.quality) + _z(pool.dsir)
        group, weights = pool.mix_group, pool.mix_weights
    elif arm == "mixture+dsir":  # the mix step's quotas, DSIR's top-k inside each group
        if pool.dsir is None:
            raise ValueError("the mixture+dsir arm needs Pool.dsir (run_efficacy computes it)")
        scores, group, weights = pool.dsir, pool.mix_group, pool.mix_weights
    else:
        raise ValueError(f"unknown arm {arm!r}; arms: {', '.join(ARMS + EXTRA_ARMS)}")
    return np.sort(choose(scores, pool.tokens, group, weights, budget).rows)


def _z(x: np.ndarray) -> np.ndarray:
    """``zscore`` as the select step computes it (NaN-aware, over the whole pool)."""
    sd = np.nanstd(x)
    return (x - np.nanmean(x)) / (sd if sd > 0 else 1.0)


def domain_shares(domains: Sequence[object], weights: Sequence[float]) -> dict[str, float]:
    """Each domain's share of ``weights`` (characters, tokens), largest first.
    Example: ``domain_shares(["a", "b", "a"], [1, 2, 1])`` -> ``{"a": 0.5, "b": 0.5}``."""
    total: dict[str, float] = {}
    for d, w in zip(domains, weights, strict=True):
        total[str(d)] = total.get(str(d), 0.0) + float(w)
    s = sum(total.values())
    return {d: w / s for d, w in sorted(total.items(), key=lambda kv: -kv[1])}


def total_variation(p: dict[str, float], q: dict[str, float]) -> float:
    """Half the L1 distance between two share dicts (0: same mix, 1: disjoint)."""
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))


def with_dsir(pool: Pool, dev: str | os.PathLike, raw: str | os.PathLike) -> Pool:
    """``pool`` with its DSIR log importance weights toward ``dev`` (relative to ``raw``)."""
    from raters.dsir import DSIRRater

    dsir = DSIRRater(str(dev), str(raw))
    texts = pool.texts
    weights = [dsir.score(texts[i : i + 1000])["score"] for i in range(0, len(texts), 1000)]
    return pool._replace(dsir=np.concatenate(weights).astype(np.float64))


def proxy_fields(preset: str, budget_tokens: int) -> dict[str, Any]:
    """The ``ProxyConfig`` fields every arm trains with."""
    return {"batch_size": 8, "threads": 1, **PRESETS[preset], "tokens": budget_tokens}


def train_arms(
    pool: Pool,
    eval_texts: list[str],
    bpe: Path,
    *,
    budget_tokens: int,
    seeds: int,
    preset: str,
    target_mix: dict[str, float] | None = None,
    arms: Sequence[str] = ARMS,
    eval_points: int = 8,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train a fresh proxy per arm and seed on the arm's rows, score it on ``eval_texts``
    (``eval_points`` times along the way: the curve), and the bigram model on the same rows;
    ``{arm: {loss_mean, loss_std, losses, bigram_mean, docs, tokens_selected, ...}}``."""
    from selector.bpe import encode_texts, load_tokenizer
    from selector.proxy_data import join_docs
    from selector.proxy_lm import ProxyConfig, train_proxy

    texts, tokens = pool.texts, pool.tokens
    tok = load_tokenizer(bpe)
    eos = int(tok.eos_token_id)
    eval_stream = join_docs(encode_texts(tok, eval_texts), eos)
    cfg = proxy_fields(preset, budget_tokens)
    eval_every = max(1, ProxyConfig(**cfg).steps // eval_points)
    results: dict[str, Any] = {}
    for arm in arms:
        losses, curves, bigrams, bpe_tokens = [], [], [], []
        for s in range(seeds):
            rows = arm_rows(arm, s, pool, budget_tokens)
            train_texts = [texts[i] for i in rows]
            if s == 0 or arm in STOCHASTIC:
                stream = join_docs(encode_texts(tok, train_texts), eos)
                bigram = bigram_nats(stream, eval_stream, len(tok))
            bigrams.append(bigram)
            bpe_tokens.append(int(stream.size))
            r = train_proxy(
                train_texts, {"target": eval_texts}, ProxyConfig(**cfg, seed=s),
                tokenizer_dir=bpe, eval_every=eval_every,
            )  # fmt: skip
            losses.append(r.metrics["target"]["loss"])
            curves.append([(t, m["target"]) for t, m in r.curve])
            say(f"{arm:12s} seed {s}: loss {losses[-1]:.4f}  bigram {bigram:.4f} "
                f"({r.seconds:.1f} s, {r.epochs:.2f} epochs)")  # fmt: skip
        x = np.array([t for t, _ in curves[0]], dtype=np.float64)
        y = np.array([[v for _, v in c] for c in curves]).mean(axis=0)
        rows = arm_rows(arm, 0, pool, budget_tokens)
        mix = None
        if target_mix is not None and pool.domain is not None:
            mix = domain_shares(pool.domain[rows], [len(texts[i]) for i in rows])
        results[arm] = {
            "loss_mean": float(np.mean(losses)),
            "loss_std": float(np.std(losses, ddof=1)) if seeds > 1 else 0.0,
            "losses": losses,
            "bigram_mean": float(np.mean(bigrams)),
            "docs": len(rows),
            "tokens_selected": int(tokens[rows].sum()),
            "domains_seed0": mix,
            "domain_tv": None if mix is None else total_variation(mix, target_mix or {}),
            "bpe_tokens_selected": int(np.mean(bpe_tokens)),
            "curve_tokens": x.tolist(),
            "curve_loss_mean": y.tolist(),
        }
    return results


def reach_fraction(results: dict[str, Any], arm: str = "assay") -> float | None:
    """Tokens ``arm`` needs to reach ``random``'s final loss, over random's final tokens
    (None: it does not get there within the budget)."""
    reach = tokens_to_reach(
        np.array(results[arm]["curve_tokens"]),
        np.array(results[arm]["curve_loss_mean"]),
        results["random"]["loss_mean"],
    )
    return None if reach is None else reach / results["random"]["curve_tokens"][-1]
