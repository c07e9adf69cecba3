"""Pick the surrogate that predicts unseen proxy runs best (k-fold cross-validation).

Every candidate kind is refitted ``folds`` times, each time without one fold, and scored
on the runs it did not see. The constant predictor (the training folds' mean) is always
scored too: its CV error is what "knowing nothing" costs, and

    skill = 1 - CV MSE(chosen) / CV MSE(constant)

(an out-of-sample R^2, clipped to [0, 1]) is how much the chosen fit knows. The search
widens its trust region with the skill, so a fit that cannot beat the mean leaves the
prior where it is.

Example::

    report = choose_surrogate(X, y, ["loglinear", "gp", "lightgbm"], seed=0)
    report.chosen, report.skill, report.cv["gp"]["rmse"]
    model = report.model              # refitted on every run, with uncertainty
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from assay.errors import AssayError
from selector.regmix import spearman
from selector.surrogates.base import KINDS, make_surrogate

DEFAULT_KINDS = ("loglinear", "gp", "lightgbm")


def kfold_predictions(
    X: np.ndarray, y: np.ndarray, kind: str, seed: int, folds: int = 5
) -> np.ndarray:
    """Held-out prediction of every run by a ``kind`` fit that never saw it.

    Kinds with a ``warm()`` (the law, the GP) are fitted on all runs once and each fold
    starts from that fit: the law's solve is warm-started, the GP keeps the kernel's
    hyperparameters (fitted on all runs, as is usual for GP cross-validation) and refits
    only its posterior. Each fold's prediction still comes from a fit without that fold.
    """
    folds = max(2, min(folds, len(X)))
    proto = make_surrogate(kind, seed, with_std=False)
    make = lambda: make_surrogate(kind, seed, with_std=False)  # noqa: E731
    if hasattr(proto, "warm"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            full = proto.fit(X, y)
        make = full.warm
    order = np.random.default_rng(seed).permutation(len(X))
    pred = np.empty(len(X))
    for f in range(folds):
        test = order[f::folds]
        train = np.setdiff1d(order, test)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tiny folds: fits warn, CV error still counts
            model = make().fit(X[train], y[train])
        pred[test] = model.predict(X[test])
    return pred


@dataclass
class ChoiceReport:
    """The CV table, the chosen kind and its refit on every run."""

    cv: dict[str, dict[str, Any]]
    """Per kind (constant included): ``rmse``, ``mae``, ``spearman`` on held-out runs."""
    chosen: str
    skill: float
    """1 - CV MSE(chosen) / CV MSE(constant), clipped to [0, 1]."""
    model: Any = field(repr=False, default=None)
    """The chosen kind refitted on all runs, with ``predict`` and ``predict_std``."""

    def to_dict(self) -> dict[str, Any]:
        return {"cv": self.cv, "chosen": self.chosen, "skill": round(self.skill, 4)}


def choose_surrogate(
    X: np.ndarray,
    y: np.ndarray,
    kinds: tuple[str, ...] | list[str] = DEFAULT_KINDS,
    *,
    seed: int = 0,
    folds: int = 5,
) -> ChoiceReport:
    """Cross-validate ``kinds`` (and the constant), keep the lowest held-out RMSE."""
    X, y = np.asarray(X, np.float64), np.asarray(y, np.float64)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise AssayError(f"unknown predictor(s) {unknown}; valid: {sorted(KINDS)}")
    if len(X) < 4:
        raise AssayError(f"the predictors need >= 4 proxy runs, got {len(X)}")
    cv: dict[str, dict[str, Any]] = {}
    for kind in dict.fromkeys([*kinds, "constant"]):
        try:
            pred = kfold_predictions(X, y, kind, seed, folds)
        except (AssayError, ValueError, np.linalg.LinAlgError) as e:  # a broken fit is not chosen
            cv[kind] = {"rmse": None, "mae": None, "spearman": None, "error": str(e)[:200]}
            continue
        cv[kind] = {
            "rmse": float(np.sqrt(np.mean((pred - y) ** 2))),
            "mae": float(np.mean(np.abs(pred - y))),
            "spearman": spearman(pred, y),
        }
    scored = {k: v["rmse"] for k, v in cv.items() if v["rmse"] is not None}
    chosen = min(scored, key=lambda k: (scored[k], k == "constant"))
    base = scored["constant"]
    skill = 0.0 if base <= 0 else float(np.clip(1 - (scored[chosen] / base) ** 2, 0.0, 1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = make_surrogate(chosen, seed).fit(X, y)
    return ChoiceReport(cv=cv, chosen=chosen, skill=skill, model=model)
