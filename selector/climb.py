"""CLIMB's iterative bootstrapping: a few rounds of proxies, each near the predicted optimum.

The paper (arXiv 2504.13161, section 3) spends a fixed number of proxy runs over rounds in
a 4:2:1 split (64 / 32 / 16). Round 0 samples around the size prior as RegMix does. Every
later round refits the predictor on all runs so far, scores a large pool of unseen
candidates (half from the prior, half drawn near the current best predicted and measured
mixtures), and trains proxies on the best-predicted ones plus a share of random ones for
exploration (the paper's "+ exploration"; without it the predictor only ever sees the
corner it already likes). Each round's new runs are predicted *before* they are measured,
so the Spearman between those predictions and the measurements is truly held-out.

The released CLIMB code has no loop (it is single-shot RegMix over cluster ids); this is
the loop the paper describes, with RegMix's sampler and regressor.
"""

from __future__ import annotations

import numpy as np

from assay.errors import ConfigError
from selector.regmix import (
    MixturePredictor,
    RunBatch,
    SearchResult,
    cross_validate,
    round_report,
    simulate_optimum,
    simulation_pool,
)
from selector.sampling import dedupe, sample_mixtures, sample_near


def split_budget(total: int, ratio: tuple[int, ...] = (4, 2, 1)) -> list[int]:
    """Proxy runs per round: ``total`` split by ``ratio`` (largest remainder), each >= 1."""
    if total < len(ratio):
        raise ConfigError(f"--proxies {total} is fewer than the {len(ratio)} rounds")
    r = np.asarray(ratio, np.float64)
    raw = r / r.sum() * total
    out = np.floor(raw).astype(int)
    out[np.argsort(-(raw - out), kind="stable")[: total - out.sum()]] += 1
    return [max(1, int(v)) for v in out]


def parse_ratio(text: str) -> tuple[int, ...]:
    """``"4:2:1"`` -> (4, 2, 1); the flag ``--rounds``."""
    try:
        parts = tuple(int(p) for p in text.split(":"))
    except ValueError:
        parts = ()
    if not parts or any(p <= 0 for p in parts):
        raise ConfigError(f"--rounds must look like 4:2:1 (positive integers), got {text!r}")
    return parts


def climb(
    run_batch: RunBatch,
    prior: np.ndarray,
    budgets: list[int],
    rng: np.random.Generator,
    *,
    caps: np.ndarray | None = None,
    min_weight: float = 2e-4,
    predictor: str = "lightgbm",
    n_candidates: int = 20_000,
    explore: float = 0.25,
    concentration: float = 50.0,
    top_k: int = 128,
    seed: int = 0,
) -> SearchResult:
    """Run ``len(budgets)`` rounds of proxies; return the averaged best predicted mixture.

    Args:
        run_batch: ``run_batch(X, round, predicted) -> objective`` (lower is better).
        prior: Dirichlet base of round 0 and of half of each later candidate pool.
        budgets: proxy runs per round, e.g. ``split_budget(112)`` = [64, 32, 16].
        rng: the one random generator.
        caps, min_weight: as in ``selector.sampling.sample_mixtures``.
        predictor: ``lightgbm`` or ``linear``.
        n_candidates: unseen mixtures scored by the predictor per round (and at the end).
        explore: share of each later round given to random candidates from the pool.
        concentration: Dirichlet concentration around the current best mixtures.
        top_k: best simulated mixtures averaged into the answer.
    """
    if not 0 <= explore < 1:
        raise ConfigError(f"--explore must be in [0, 1), got {explore}")
    X = sample_mixtures(prior, budgets[0], rng, caps=caps, min_weight=min_weight)
    y = run_batch(X, 0, np.full(len(X), np.nan))
    rounds = np.zeros(len(X), dtype=np.int64)
    predicted = np.full(len(X), np.nan)
    reports = [round_report(0, X, y, np.arange(len(X)), None, predictor, seed)]

    def pool_near_best(model: MixturePredictor) -> np.ndarray:
        half = n_candidates // 2
        wide = simulation_pool(prior, half, rng, caps, min_weight)
        _, top, _ = simulate_optimum(model, wide, 16)
        centers = np.concatenate([top, X[np.argsort(y, kind="stable")[:8]]])
        near = sample_near(
            centers, half, rng, concentration=concentration, caps=caps, min_weight=min_weight
        )
        return np.concatenate([wide, near])

    for r, n_r in enumerate(budgets[1:], start=1):
        model = MixturePredictor(predictor, seed).fit(X, y)
        pool = dedupe(pool_near_best(model), 1e-3, existing=X)
        pred = model.predict(pool)
        n_explore = round(n_r * explore)
        # GBDT predictions are piecewise constant: many candidates tie at the minimum, so
        # ties are broken at random rather than by pool order (which favours the prior half)
        chosen = list(np.lexsort((rng.random(len(pred)), pred))[: n_r - n_explore])
        rest = np.setdiff1d(np.arange(len(pool)), chosen)
        chosen += list(rng.choice(rest, size=min(n_explore, len(rest)), replace=False))
        new_X, new_pred = pool[chosen], pred[chosen]
        new_y = run_batch(new_X, r, new_pred)
        new = np.arange(len(X), len(X) + len(new_X))
        X, y = np.concatenate([X, new_X]), np.concatenate([y, new_y])
        rounds = np.concatenate([rounds, np.full(len(new_X), r)])
        predicted = np.concatenate([predicted, new_pred])
        reports.append(round_report(r, X, y, new, new_pred, predictor, seed))

    model = MixturePredictor(predictor, seed).fit(X, y)
    best, top, _ = simulate_optimum(model, pool_near_best(model), top_k)
    return SearchResult(
        weights=best / best.sum(),
        X=X,
        y=y,
        rounds=rounds,
        predicted=predicted,
        round_reports=reports,
        predicted_objective=float(model.predict(best[None, :])[0]),
        top=top,
        cv_predicted=cross_validate(X, y, predictor, seed).predictions,
    )
