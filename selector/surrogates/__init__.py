"""Predictors of the target loss from mixture weights, for the mixture search.

Every surrogate is a scikit-learn-style estimator: ``fit(X, y)`` returns ``self``,
``predict(X)`` gives the mean and ``predict_std(X)`` an uncertainty (a standard deviation
in the objective's units). ``selector.surrogates.choose`` fits each candidate by k-fold
cross-validation and keeps the one that predicts unseen runs best.

Kinds (``KINDS``, a plain registry):

- ``loglinear``: the Data Mixing Laws / Olmix form ``L(w) = c + exp(b + t.w)``, with a
  bootstrap ensemble of refits for its uncertainty (``selector.surrogates.laws``);
- ``gp``: a Gaussian process (RBF + white noise, scikit-learn), whose posterior standard
  deviation grows away from the runs it saw (``selector.surrogates.gp``);
- ``lightgbm``: RegMix's / CLIMB's gradient-boosted trees (``selector.regmix``), with a
  bootstrap ensemble for its uncertainty; piecewise constant, so it cannot extrapolate;
- ``linear``: ridge regression on the weights (the simplest law);
- ``constant``: the mean of the runs; the bar every other kind must clear in CV.
"""

from selector.surrogates.base import KINDS, make_surrogate

__all__ = ["KINDS", "make_surrogate"]
