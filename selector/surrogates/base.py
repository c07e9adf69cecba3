"""The surrogate registry, and the small estimators that need no module of their own.

``make_surrogate("gp", seed=0)`` builds an unfitted estimator; an unknown name lists the
valid ones. Heavy backends (scikit-learn, lightgbm, scipy) are imported in ``fit``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from assay.errors import AssayError, ConfigError

INSTALL_HINT = "pip install 'assay[select]'"


def _check(X: np.ndarray, y: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    X = np.atleast_2d(np.asarray(X, np.float64))
    if y is None:
        return X, None
    y = np.asarray(y, np.float64).ravel()
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} rows, y {len(y)}")
    if not np.isfinite(y).all():
        raise AssayError("a proxy run's objective is not finite; drop or rerun it")
    return X, y


class Constant:
    """Predicts the runs' mean everywhere; its std is the runs' spread."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, X: np.ndarray, y: np.ndarray) -> Constant:
        _, y = _check(X, y)
        self.mean_ = float(y.mean())
        self.std_ = float(y.std(ddof=1)) if len(y) > 1 else 0.0
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.full(len(np.atleast_2d(X)), self.mean_)

    def predict_std(self, X: np.ndarray) -> np.ndarray:
        return np.full(len(np.atleast_2d(X)), self.std_)


class Ridge:
    """Linear in the weights, ridge penalty chosen by scikit-learn's efficient LOO."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, X: np.ndarray, y: np.ndarray) -> Ridge:
        from sklearn.linear_model import RidgeCV

        X, y = _check(X, y)
        self.model_ = RidgeCV(alphas=np.logspace(-4, 2, 13)).fit(X, y)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.model_.predict(_check(X)[0]), np.float64)


class Bootstrap:
    """Mean from a fit on all runs; std from ``n`` refits on resampled runs.

    A cheap, model-agnostic uncertainty: where the runs pin a prediction down, the refits
    agree; where a prediction rests on one or two runs (or on extrapolation), they do not.
    """

    def __init__(self, factory: Callable[[int], Any], n: int = 16, seed: int = 0) -> None:
        self.factory = factory
        self.n = n
        self.seed = seed

    def fit(self, X: np.ndarray, y: np.ndarray) -> Bootstrap:
        X, y = _check(X, y)
        self.full_ = self.factory(self.seed).fit(X, y)
        warm = getattr(self.full_, "warm", None)  # refits start from the full fit
        rng = np.random.default_rng(self.seed)
        self.members_ = []
        for b in range(self.n):
            idx = rng.integers(len(X), size=len(X))
            if len(np.unique(idx)) < 4:
                continue
            member = warm() if warm else self.factory(self.seed + 1 + b)
            self.members_.append(member.fit(X[idx], y[idx]))
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.full_.predict(X)

    def predict_std(self, X: np.ndarray) -> np.ndarray:
        if len(self.members_) < 2:
            return np.zeros(len(np.atleast_2d(X)))
        return np.stack([m.predict(X) for m in self.members_]).std(axis=0, ddof=1)


class LightGBM:
    """RegMix's regressor (``selector.regmix.MixturePredictor``) as a surrogate."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, X: np.ndarray, y: np.ndarray) -> LightGBM:
        from selector.regmix import MixturePredictor

        X, y = _check(X, y)
        self.model_ = MixturePredictor("lightgbm", self.seed).fit(X, y)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.model_.predict(_check(X)[0])


def _loglinear(seed: int) -> Any:
    from selector.surrogates.laws import LogLinearLaw

    return LogLinearLaw(seed=seed)


def _gp(seed: int, restarts: int = 0) -> Any:
    from selector.surrogates.gp import GPSurrogate

    return GPSurrogate(restarts=restarts, seed=seed)


def _with_std(factory: Callable[[int], Any], n: int) -> Callable[[int], Any]:
    return lambda seed: Bootstrap(factory, n=n, seed=seed)


# name -> (factory of a plain fit for CV, factory of the fit with uncertainty)
KINDS: dict[str, tuple[Callable[[int], Any], Callable[[int], Any]]] = {
    "loglinear": (_loglinear, _with_std(_loglinear, 12)),
    "gp": (_gp, _gp),
    "lightgbm": (LightGBM, _with_std(LightGBM, 6)),
    "linear": (Ridge, _with_std(Ridge, 16)),
    "constant": (Constant, Constant),
}


def make_surrogate(kind: str, seed: int = 0, *, with_std: bool = True) -> Any:
    """An unfitted surrogate; ``with_std=False`` gives the plain fit (for CV)."""
    if kind not in KINDS:
        raise ConfigError(f"--predictor must be one of {sorted(KINDS)}, got {kind!r}")
    return KINDS[kind][1 if with_std else 0](seed)
