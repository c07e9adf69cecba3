"""Mixing laws: the target loss as a smooth function of the mixture weights.

Data Mixing Laws (Ye et al. 2024) and Olmix's log-linear regressor fit, per target,

    L(w) = c + exp(b + t . w)

where ``c`` is the loss no mixture goes below, ``t_j < 0`` means group j helps the target
and ``t_j > 0`` that it hurts. Unlike trees, the law is monotone along every direction and
extrapolates past the runs it saw, which is what a search over the simplex needs when it
has a few dozen runs; it cannot express interactions (two groups that only help
together), which cross-validation against the other surrogates then reveals.

The fit is nonlinear least squares (scipy), with ``c`` kept below the lowest run
(``c = min(y) - exp(u)``) and a small ridge penalty on ``t``: the weights sum to 1, so
``b`` and a shift of every ``t_j`` are the same model, and with fewer runs than groups the
penalty picks the smallest ``t`` that fits.

Example::

    law = LogLinearLaw().fit(X, y)
    law.c_, law.b_, law.t_          # fitted parameters
    law.predict(candidates)
"""

from __future__ import annotations

import numpy as np

from selector.surrogates.base import _check


def loglinear_value(X: np.ndarray, c: float, b: float, t: np.ndarray) -> np.ndarray:
    """``c + exp(b + X @ t)`` for each row of ``X`` (pure function, for fits and tests)."""
    return c + np.exp(b + np.atleast_2d(X) @ np.asarray(t, np.float64))


class LogLinearLaw:
    """``L(w) = c + exp(b + t.w)`` fitted by least squares (see the module docstring).

    Args:
        ridge: penalty on ``t`` relative to the spread of the runs; larger = flatter law.
        seed: unused (the fit is deterministic); kept for the registry's signature.
    """

    def __init__(self, ridge: float = 1e-4, seed: int = 0, init: np.ndarray | None = None) -> None:
        self.ridge = ridge
        self.seed = seed
        self.init = init

    def warm(self) -> LogLinearLaw:
        """An unfitted law that starts from this fit (CV folds and bootstrap refits: one
        short solve instead of several cold ones)."""
        return LogLinearLaw(self.ridge, self.seed, init=self.theta_)

    def fit(self, X: np.ndarray, y: np.ndarray) -> LogLinearLaw:
        from scipy.optimize import least_squares

        X, y = _check(X, y)
        k = X.shape[1]
        lo, spread = float(y.min()), float(np.ptp(y)) or float(abs(y.mean())) * 1e-3 or 1e-3
        pen = np.sqrt(self.ridge) * spread

        def unpack(theta: np.ndarray) -> tuple[float, float, np.ndarray]:
            return lo - np.exp(theta[0]), theta[1], theta[2:]

        def residuals(theta: np.ndarray) -> np.ndarray:
            c, b, t = unpack(theta)
            z = np.clip(b + X @ t, -50, 50)
            return np.concatenate([c + np.exp(z) - y, pen * t])

        def jacobian(theta: np.ndarray) -> np.ndarray:
            ez = np.exp(np.clip(theta[1] + X @ theta[2:], -50, 50))
            top = np.hstack([np.full((len(X), 1), -np.exp(theta[0])), ez[:, None], ez[:, None] * X])
            bottom = np.hstack([np.zeros((k, 2)), pen * np.eye(k)])
            return np.vstack([top, bottom])

        best = None
        if self.init is not None:  # warm start: c keeps its gap below the lowest run
            res = least_squares(
                residuals, self.init, jac=jacobian, method="trf", x_scale="jac", max_nfev=30
            )
            self.theta_ = res.x
            self.c_, self.b_, self.t_ = *map(float, unpack(res.x)[:2]), unpack(res.x)[2]
            return self
        for gap in (0.1, 1.0):  # c a little, or a spread, below the lowest run
            u = np.log(gap * spread + 1e-9)
            z = np.log(y - (lo - np.exp(u)))
            A = np.hstack([np.ones((len(X), 1)), X])
            reg = np.diag([0.0] + [1e-3] * k)
            coef = np.linalg.solve(A.T @ A + reg, A.T @ z)
            theta0 = np.concatenate([[u], coef])
            res = least_squares(
                residuals, theta0, jac=jacobian, method="trf", x_scale="jac", max_nfev=60
            )
            if best is None or res.cost < best.cost:
                best = res
        assert best is not None
        self.theta_ = best.x
        c, b, t = unpack(best.x)
        self.c_, self.b_, self.t_ = float(c), float(b), np.asarray(t, np.float64)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self, "t_"):
            raise RuntimeError("LogLinearLaw.predict before fit")
        z = np.clip(self.b_ + _check(X)[0] @ self.t_, -50, 50)
        return self.c_ + np.exp(z)
