"""The rounds of the trust-region search.

1. Round 0 (half the proxy budget): the space-filling design of ``design``.
2. Each later round (the rest, in two rounds): fit every surrogate kind, pick one by
   k-fold CV (``selector.surrogates.choose``), run the current proposal (so the answer's
   neighbourhood is measured, not only predicted) plus an exploration batch; the
   predictions for these runs are made before they run, so their Spearman is held-out.
3. The end: refit, pick, propose. ``selector.trust_search.verify`` then checks the
   proposal against the prior at several seeds (``selector.search`` does that, since it
   owns the seeds).

``run_batch(X, round, predicted)`` returns the objective of each row (lower is better),
or ``(X_run, y)`` when the runner could only run nearby mixtures (a recorded table).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from assay.errors import ConfigError
from selector.regmix import spearman
from selector.surrogates.choose import (
    DEFAULT_KINDS,
    ChoiceReport,
    choose_surrogate,
    kfold_predictions,
)
from selector.trust_search.design import clip_to_caps, space_filling
from selector.trust_search.trust import Proposal, explore_batch, propose

RunBatch = Callable[[np.ndarray, int, np.ndarray], Any]


def split_rounds(total: int) -> list[int]:
    """Runs per round: half in round 0 (>= 4), the rest in two rounds (one if < 4 left)."""
    if total < 5:
        raise ConfigError(f"the trust-region search needs >= 5 proxy runs, got {total}")
    first = max(4, math.ceil(total / 2))
    rest = total - first
    if rest == 0:
        return [first]
    if rest < 4:
        return [first, rest]
    return [first, math.ceil(rest / 2), rest // 2]


@dataclass
class TrustResult:
    """What the trust-region search found and how (``selector.search`` writes it out)."""

    weights: np.ndarray
    proposal: Proposal
    choice: ChoiceReport
    X: np.ndarray
    y: np.ndarray
    rounds: np.ndarray
    predicted: np.ndarray
    round_reports: list[dict[str, Any]]
    prior: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """The prior the search used (clipped to the caps): the fall-back answer."""
    cv_predicted: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))

    @property
    def predicted_objective(self) -> float:
        return self.proposal.mean


def _run(
    run_batch: RunBatch, X: np.ndarray, r: int, pred: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    out = run_batch(X, r, pred)
    if isinstance(out, tuple):
        return np.asarray(out[0], np.float64), np.asarray(out[1], np.float64)
    return X, np.asarray(out, np.float64)


def trust_search(
    run_batch: RunBatch,
    prior: np.ndarray,
    n_proxies: int,
    rng: np.random.Generator,
    *,
    caps: np.ndarray | None = None,
    min_weight: float = 2e-4,
    kinds: tuple[str, ...] | list[str] = DEFAULT_KINDS,
    max_kl: float = 2.0,
    kappa: float = 1.0,
    n_candidates: int = 5000,
    folds: int = 5,
    seed: int = 0,
) -> TrustResult:
    """Spend ``n_proxies`` runs over rounds; return the proposal and every diagnostic.

    Args:
        run_batch: trains proxies on the rows of ``X`` (see the module docstring).
        prior: the size prior (zero = a zeroed group, never given weight); clipped to the
            caps first (``TrustResult.prior``), since it may be returned as the answer.
        n_proxies: runs in all, split by ``split_rounds``.
        caps: largest weight per group (token availability).
        kinds: surrogate kinds cross-validated against each other (and the constant).
        max_kl: the trust region's radius (nats of KL to the prior) at CV skill 1.
        kappa: standard deviations in the confidence bounds (0 = trust the mean).
        n_candidates: candidate mixtures scored per proposal.
        folds: k of the k-fold CV.
    """
    if max_kl < 0 or kappa < 0:
        raise ConfigError("--trust-kl and --kappa must be >= 0")
    budgets = split_rounds(n_proxies)
    # the prior is a candidate answer (and the fall-back): it must be a mixture the caps allow
    prior = clip_to_caps(np.asarray(prior, np.float64), caps)
    X = space_filling(prior, budgets[0], rng, caps=caps, min_weight=min_weight)
    X, y = _run(run_batch, X, 0, np.full(len(X), np.nan))
    rounds = np.zeros(len(X), np.int64)
    predicted = np.full(len(X), np.nan)
    reports: list[dict[str, Any]] = [
        {
            "round": 0,
            "runs": len(X),
            "design": "space-filling: prior, uniform, farthest points per concentration band",
            "heldout_spearman": None,
            "cv_spearman": None,  # of the surrogate fitted on these runs (set below)
            "best_measured": float(y.min()),
        }
    ]
    common = dict(caps=caps, min_weight=min_weight, kappa=kappa, n_candidates=n_candidates)
    for r, n_r in enumerate(budgets[1:], start=1):
        choice = choose_surrogate(X, y, kinds, seed=seed, folds=folds)
        if r == 1:
            reports[0]["cv_spearman"] = choice.cv[choice.chosen]["spearman"]
        prop = propose(choice.model, prior, max_kl * choice.skill, X, y, rng, **common)
        batch = explore_batch(choice.model, prior, n_r - 1, X, y, rng, max_kl=max_kl, **common)
        new_X = np.concatenate([prop.weights[None, :], batch])
        new_pred = np.asarray(choice.model.predict(new_X), np.float64)
        new_X, new_y = _run(run_batch, new_X, r, new_pred)
        reports.append(
            {
                "round": r,
                "runs": len(new_X),
                "fit_on": len(X),
                **choice.to_dict(),
                "proposal": prop.to_dict(),
                "heldout_spearman": spearman(new_pred, new_y),
                "best_measured": float(min(y.min(), new_y.min())),
            }
        )
        X, y = np.concatenate([X, new_X]), np.concatenate([y, new_y])
        rounds = np.concatenate([rounds, np.full(len(new_X), r)])
        predicted = np.concatenate([predicted, new_pred])
    choice = choose_surrogate(X, y, kinds, seed=seed, folds=folds)
    prop = propose(choice.model, prior, max_kl * choice.skill, X, y, rng, **common)
    reports.append(
        {
            "round": len(budgets),
            "runs": 0,
            "fit_on": len(X),
            **choice.to_dict(),
            "proposal": prop.to_dict(),
            "heldout_spearman": None,
            "best_measured": float(y.min()),
        }
    )
    cv_pred = kfold_predictions(X, y, choice.chosen, seed, folds)
    return TrustResult(
        weights=prop.weights,
        proposal=prop,
        choice=choice,
        X=X,
        y=y,
        rounds=rounds,
        predicted=predicted,
        round_reports=reports,
        prior=prior,
        cv_predicted=cv_pred,
    )
