"""A Gaussian process over mixture weights: a smooth fit with a real uncertainty.

scikit-learn's ``GaussianProcessRegressor`` with ``C * RBF + White``: the RBF length
scale and the noise level are fitted to the runs by marginal likelihood, the targets are
standardised. Far from every run the posterior returns to the runs' mean with a wide
standard deviation, which is what lets the search shrink a proposal that only the
surrogate's extrapolation supports (ADMIRE-BayesOpt and Olmix's ``gp`` regressor use the
same model class).
"""

from __future__ import annotations

import warnings

import numpy as np

from selector.surrogates.base import _check


class GPSurrogate:
    """Isotropic RBF Gaussian process; ``predict_std`` is the posterior std of the mean."""

    def __init__(self, restarts: int = 1, seed: int = 0, kernel: object = None) -> None:
        self.restarts = restarts
        self.seed = seed
        self.kernel = kernel

    def warm(self) -> GPSurrogate:
        """An unfitted GP with this fit's kernel, not re-optimised (CV folds: a Cholesky
        per fold instead of a marginal-likelihood search)."""
        return GPSurrogate(self.restarts, self.seed, kernel=self.model_.kernel_)

    def fit(self, X: np.ndarray, y: np.ndarray) -> GPSurrogate:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

        X, y = _check(X, y)
        kernel = self.kernel or ConstantKernel(1.0, (1e-2, 1e2)) * RBF(0.3, (0.02, 5.0)) + (
            WhiteKernel(0.1, (1e-5, 1.0))
        )
        self.model_ = GaussianProcessRegressor(
            kernel,
            normalize_y=True,
            n_restarts_optimizer=self.restarts,
            random_state=self.seed,
            optimizer=None if self.kernel is not None else "fmin_l_bfgs_b",
        )
        with warnings.catch_warnings():  # bounds hit on flat or tiny data: still a valid fit
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model_.fit(X, y)
        k = self.model_.kernel_
        self.noise_ = float(k.k2.noise_level) * float(self.model_._y_train_std) ** 2
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.model_.predict(_check(X)[0]), np.float64)

    def predict_std(self, X: np.ndarray) -> np.ndarray:
        _, std = self.model_.predict(_check(X)[0], return_std=True)
        # return_std includes the fitted white noise (a new run's spread); the search wants
        # the uncertainty of the mean loss at w, so that part is taken out
        return np.sqrt(np.maximum(np.asarray(std, np.float64) ** 2 - self.noise_, 0.0))
