"""RegMix: regress target loss on mixture weights, then average the best simulated mixtures.

Steps (sail-sg/regmix ``regression_fitting/regression.ipynb``): proxies trained on N
sampled mixtures give (weights, loss) pairs; a LightGBM regressor maps weights to loss;
many Dirichlet(prior) candidates are scored by the regressor and the ``top_k`` lowest are
averaged into the answer. An average of mixtures that respect the epoch caps respects them
too (the caps cut out a convex set), so the answer needs no repair.

This module holds the estimator (scikit-learn style), its cross-validated diagnostics and
the single-shot loop; ``selector.climb`` reuses all three for its iterative search.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from assay.errors import AssayError, ConfigError
from selector.sampling import clean, dirichlet_rows, sample_mixtures, within_caps

PREDICTORS = ("lightgbm", "linear")
INSTALL_HINT = "pip install 'assay[select]' (mixture search needs lightgbm and scikit-learn)"

# A batch of mixtures -> the objective measured for each (lower is better).
RunBatch = Callable[[np.ndarray, int, np.ndarray], np.ndarray]


class MixturePredictor:
    """Weights -> objective regressor: LightGBM (RegMix, CLIMB) or ridge (``linear``).

    LightGBM follows RegMix (gbdt, regression objective, lr 1e-2, up to 1000 trees) with
    settings for the few dozen runs a CPU search affords: shallow trees, leaves of >= 2
    runs (LightGBM's default of 20 would fit a constant to 24 runs), and early stopping on
    a 10% split only when there are >= 50 runs to split.
    """

    def __init__(self, kind: str = "lightgbm", seed: int = 0) -> None:
        self.kind = kind
        self.seed = seed

    def fit(self, X: np.ndarray, y: np.ndarray) -> MixturePredictor:
        if self.kind not in PREDICTORS:
            raise ConfigError(f"--predictor must be one of {PREDICTORS}, got {self.kind!r}")
        X, y = np.asarray(X, np.float64), np.asarray(y, np.float64)
        if len(X) < 4:
            raise AssayError(f"the predictor needs >= 4 proxy runs, got {len(X)}")
        self.mean_ = float(y.mean())
        if self.kind == "linear":
            try:
                from sklearn.linear_model import RidgeCV
            except ImportError as e:  # pragma: no cover
                raise AssayError(f"scikit-learn is missing ({e})", hint=INSTALL_HINT) from None
            self.model_ = RidgeCV(alphas=np.logspace(-4, 2, 13)).fit(X, y)
            return self
        try:
            import lightgbm as lgb
        except ImportError as e:  # pragma: no cover
            raise AssayError(f"lightgbm is missing ({e})", hint=INSTALL_HINT) from None
        params: dict[str, Any] = dict(
            boosting_type="gbdt",
            objective="regression",
            n_estimators=1000,
            learning_rate=1e-2,
            num_leaves=8,
            max_depth=4,
            min_child_samples=max(2, len(X) // 10),
            min_data_in_bin=1,
            random_state=self.seed,
            deterministic=True,
            force_row_wise=True,
            n_jobs=1,
            verbose=-1,
        )
        model = lgb.LGBMRegressor(**params)
        if len(X) >= 50:
            rng = np.random.default_rng(self.seed)
            order = rng.permutation(len(X))
            n_val = max(5, len(X) // 10)
            val, tr = order[:n_val], order[n_val:]
            model.fit(
                X[tr],
                y[tr],
                eval_set=[(X[val], y[val])],
                callbacks=[lgb.early_stopping(3, verbose=False)],
            )
        else:
            model.set_params(n_estimators=300, learning_rate=0.05)
            model.fit(X, y)
        self.model_ = model
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self, "model_"):
            raise RuntimeError("MixturePredictor.predict before fit")
        return np.asarray(self.model_.predict(np.asarray(X, np.float64)), np.float64)


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman rank correlation, or None when it is undefined (constant input, < 3 runs)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


@dataclass
class CVReport:
    """Held-out quality of the predictor by k-fold cross-validation over the runs."""

    spearman: float | None
    mae: float
    """Mean absolute error of held-out predictions."""
    mae_constant: float
    """Same for a constant predictor (the training folds' mean): the bar to beat."""
    predictions: np.ndarray = field(repr=False)


def cross_validate(X: np.ndarray, y: np.ndarray, kind: str, seed: int, folds: int = 5) -> CVReport:
    """k-fold predictions for every run from a predictor that never saw it."""
    X, y = np.asarray(X, np.float64), np.asarray(y, np.float64)
    folds = min(folds, len(X))
    order = np.random.default_rng(seed).permutation(len(X))
    pred = np.empty(len(X))
    const = np.empty(len(X))
    for f in range(folds):
        test = order[f::folds]
        train = np.setdiff1d(order, test)
        pred[test] = MixturePredictor(kind, seed).fit(X[train], y[train]).predict(X[test])
        const[test] = y[train].mean()
    return CVReport(
        spearman=spearman(pred, y),
        mae=float(np.abs(pred - y).mean()),
        mae_constant=float(np.abs(const - y).mean()),
        predictions=pred,
    )


def simulate_optimum(
    predictor: MixturePredictor,
    candidates: np.ndarray,
    top_k: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean of the ``top_k`` lowest-predicted candidates, those rows, their predictions)."""
    if len(candidates) == 0:
        raise AssayError("no candidate mixtures to choose from")
    pred = predictor.predict(candidates)
    top = np.argsort(pred, kind="stable")[: max(1, min(top_k, len(candidates)))]
    return candidates[top].mean(axis=0), candidates[top], pred[top]


def simulation_pool(
    prior: np.ndarray,
    n: int,
    rng: np.random.Generator,
    caps: np.ndarray | None,
    min_weight: float,
    strength: float = 1.0,
) -> np.ndarray:
    """RegMix's simulation: ``Dirichlet(prior * strength)`` draws that respect the caps."""
    rows: list[np.ndarray] = []
    have = 0
    for _ in range(20):
        w = clean(dirichlet_rows(np.repeat(prior[None, :] * strength, n, axis=0), rng), min_weight)
        w = w[within_caps(w, caps)]
        rows.append(w)
        have += len(w)
        if have >= n:
            break
    return np.concatenate(rows)[:n]


@dataclass
class SearchResult:
    """What a search found and how it got there (``selector.search`` writes it out)."""

    weights: np.ndarray
    """The answer: mixture weights over groups (sums to 1)."""
    X: np.ndarray
    """Every proxy run's mixture, ``[runs, groups]``."""
    y: np.ndarray
    """Every proxy run's measured objective."""
    rounds: np.ndarray
    """Round of each run (0-based)."""
    predicted: np.ndarray
    """Prediction for each run made before it was measured (NaN where none existed)."""
    round_reports: list[dict[str, Any]]
    """Per round: runs, held-out Spearman, CV Spearman / MAE vs a constant predictor."""
    predicted_objective: float
    """The predictor's value at the answer."""
    top: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0)))
    """The top-k simulated mixtures that were averaged."""
    cv_predicted: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    """k-fold held-out prediction of every run from all runs (the final predictor's CV)."""


def round_report(
    r: int,
    X: np.ndarray,
    y: np.ndarray,
    new: np.ndarray,
    pred_new: np.ndarray | None,
    kind: str,
    seed: int,
) -> dict[str, Any]:
    """Diagnostics after round ``r``: held-out on its new runs, and CV over all runs."""
    cv = cross_validate(X, y, kind, seed) if len(X) >= 5 else None
    return {
        "round": r,
        "runs": len(new),
        "total_runs": len(X),
        "heldout_spearman": None if pred_new is None else spearman(pred_new, y[new]),
        "cv_spearman": None if cv is None else cv.spearman,
        "cv_mae": None if cv is None else cv.mae,
        "cv_mae_constant": None if cv is None else cv.mae_constant,
        "best_measured": float(y.min()),
    }


def regmix(
    run_batch: RunBatch,
    prior: np.ndarray,
    n_proxies: int,
    rng: np.random.Generator,
    *,
    caps: np.ndarray | None = None,
    min_weight: float = 2e-4,
    predictor: str = "lightgbm",
    n_simulate: int = 100_000,
    top_k: int = 128,
    seed: int = 0,
    X0: np.ndarray | None = None,
    y0: np.ndarray | None = None,
) -> SearchResult:
    """Single-shot RegMix: ``n_proxies`` runs (plus any given ``X0, y0``), fit, simulate.

    ``run_batch(X, round, predicted)`` trains proxies on the rows of ``X`` and returns
    their objective; with ``n_proxies=0`` and ``X0, y0`` it is a pure fit on offline runs.
    """
    k = len(prior)
    X = np.zeros((0, k)) if X0 is None else np.asarray(X0, np.float64)
    y = np.zeros(0) if y0 is None else np.asarray(y0, np.float64)
    if n_proxies:
        new_X = sample_mixtures(
            prior, n_proxies, rng, caps=caps, min_weight=min_weight, existing=X if len(X) else None
        )
        new_y = run_batch(new_X, 0, np.full(len(new_X), np.nan))
        X, y = np.concatenate([X, new_X]), np.concatenate([y, new_y])
    if len(X) < 5:
        raise ConfigError(
            f"RegMix needs >= 5 proxy runs to fit, has {len(X)}", hint="raise --proxies"
        )
    report = round_report(0, X, y, np.arange(len(X)), None, predictor, seed)
    model = MixturePredictor(predictor, seed).fit(X, y)
    pool = simulation_pool(prior, n_simulate, rng, caps, min_weight)
    best, top, _ = simulate_optimum(model, pool, top_k)
    return SearchResult(
        weights=best / best.sum(),
        X=X,
        y=y,
        rounds=np.zeros(len(X), dtype=np.int64),
        predicted=np.full(len(X), np.nan),
        round_reports=[report],
        predicted_objective=float(model.predict(best[None, :])[0]),
        top=top,
        cv_predicted=cross_validate(X, y, predictor, seed).predictions,
    )
