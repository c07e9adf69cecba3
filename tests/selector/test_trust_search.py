"""The trust-region search's parts on synthetic data with known answers: the law fits,
the surrogates' uncertainty and CV choice, round 0, the trust region, the shrink toward
the prior, the verification rule, the budget rule, and the loop end to end."""

from __future__ import annotations

import numpy as np
import pytest

from assay.errors import ConfigError
from selector.sampling import epoch_caps, size_prior
from selector.surrogates import make_surrogate
from selector.surrogates.choose import choose_surrogate
from selector.surrogates.laws import LogLinearLaw, loglinear_value
from selector.trust_search.budget import budget_warning, default_proxies, zeroed_groups
from selector.trust_search.design import clip_rows, clip_to_caps, hellinger, space_filling
from selector.trust_search.loop import split_rounds, trust_search
from selector.trust_search.trust import kl_to_prior, propose
from selector.trust_search.verify import verify_against_prior

T = np.array([-2.0, 1.5, 0.5, -0.5, 2.0, 0.0])


def _data(n: int, seed: int = 0, noise: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.dirichlet(np.ones(len(T)), n)
    return X, loglinear_value(X, 3.0, -1.0, T) + rng.normal(0, noise, n)


def test_loglinear_law_recovers_known_parameters():
    X, y = _data(40)
    law = LogLinearLaw(ridge=0.0).fit(X, y)
    assert law.c_ == pytest.approx(3.0, abs=1e-6)
    # b and a common shift of t are one model on the simplex: compare centred t
    assert law.t_ - law.t_.mean() == pytest.approx(T - T.mean(), abs=1e-4)
    Xt, yt = _data(100, seed=1)
    assert np.abs(law.predict(Xt) - yt).max() < 1e-6
    # with noise, c and the amplitude trade off inside the data's range, but predictions
    # and the best group hold
    Xn, yn = _data(60, noise=0.01)
    noisy = LogLinearLaw().fit(Xn, yn)
    assert np.argmin(noisy.t_) == 0
    assert np.sqrt(np.mean((noisy.predict(Xt) - yt) ** 2)) < 0.01


def test_uncertainty_grows_away_from_the_runs():
    X, y = _data(30, noise=0.005)
    near, far = X[:5], np.eye(len(T))  # corners: no run lies near them
    for kind in ("gp", "loglinear"):
        model = make_surrogate(kind, seed=0).fit(X, y)
        assert model.predict_std(far).mean() > model.predict_std(near).mean(), kind


def test_cv_picks_the_law_for_law_data_and_the_constant_for_noise():
    X, y = _data(30, noise=0.002)
    law = choose_surrogate(X, y, ["loglinear", "gp", "lightgbm"], seed=0)
    assert law.chosen == "loglinear" and law.skill > 0.95, law.cv
    assert law.cv["loglinear"]["rmse"] < law.cv["lightgbm"]["rmse"]
    noise = np.random.default_rng(3).normal(5.0, 0.02, 30)
    flat = choose_surrogate(X, noise, ["loglinear", "gp", "lightgbm"], seed=0)
    assert flat.skill < 0.2  # nothing to learn: the trust region stays (nearly) shut


def test_round_zero_covers_the_simplex_with_prior_and_uniform():
    tokens = np.array([50.0, 5.0, 20.0, 1.0, 10.0, 0.0, 14.0])
    prior = size_prior(tokens, 0.5)
    caps = epoch_caps(tokens, 60.0, 1.0)
    X = space_filling(prior, 12, np.random.default_rng(0), caps=caps)
    assert len(X) == 12 and np.allclose(X.sum(axis=1), 1)
    prior = clip_to_caps(prior, caps)  # as trust_search does before round 0
    X = space_filling(prior, 12, np.random.default_rng(0), caps=caps)
    assert np.allclose(X[0], prior)
    assert (caps + 1e-9 >= X).all() and (X[:, 5] == 0).all()  # caps hold, zeroed stays 0
    assert np.allclose(X[1], clip_to_caps(prior > 0, caps))  # uniform over active groups
    d = hellinger(X, X)[np.triu_indices(12, 1)]
    assert d.min() > 0.01  # no two runs on top of each other
    kl = kl_to_prior(X, prior)
    assert kl.min() < 0.05 and kl.max() > 0.5  # from near-prior to sparse


def test_clip_to_caps_keeps_the_shape_under_the_caps():
    caps = np.array([0.2, 0.5, 0.5, 1.0])
    w = clip_to_caps(np.array([0.7, 0.1, 0.1, 0.1]), caps)
    assert w.sum() == pytest.approx(1) and w[0] == pytest.approx(0.2)
    assert w[1:] == pytest.approx([0.8 / 3] * 3)  # the excess shared by weight
    rows = clip_rows(np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.2, 0.3, 0.4]]), caps)
    assert rows[0] == pytest.approx(w) and rows[1] == pytest.approx([0.1, 0.2, 0.3, 0.4])


class Known:
    """A surrogate with a known mean (lower toward group 0) and a chosen uncertainty."""

    def __init__(self, std_far: float) -> None:
        self.std_far = std_far

    def predict(self, X: np.ndarray) -> np.ndarray:
        return 5.0 - np.atleast_2d(X)[:, 0]

    def predict_std(self, X: np.ndarray) -> np.ndarray:
        X = np.atleast_2d(X)
        return self.std_far * np.abs(X[:, 0] - 0.25) * 4  # 0 at the prior's share of group 0


def test_proposal_stays_in_the_trust_region_and_shrinks_with_uncertainty():
    prior = np.full(4, 0.25)
    X, y = prior[None, :], np.array([4.75])
    rng = np.random.default_rng(0)
    sure = propose(Known(0.0), prior, 0.3, X, y, rng, caps=None, min_weight=1e-4)
    assert sure.kl <= 0.3 + 1e-9 and sure.weights[0] > 0.5 and sure.step == 1.0
    wide = propose(Known(0.0), prior, 1.0, X, y, rng, caps=None, min_weight=1e-4)
    assert wide.weights[0] > sure.weights[0]  # a wider region moves further
    unsure = propose(Known(2.0), prior, 0.3, X, y, rng, caps=None, min_weight=1e-4)
    assert unsure.step < 0.5 and unsure.weights[0] < sure.weights[0]
    shut = propose(Known(0.0), prior, 0.0, X, y, rng, caps=None, min_weight=1e-4)
    assert shut.weights == pytest.approx(prior) and shut.step == 0.0 and shut.kl == 0.0


def test_verification_keeps_the_proposal_only_beyond_the_noise():
    win = verify_against_prior([6.90, 6.91, 6.92], [7.00, 7.01, 7.02])
    assert win["chosen"] == "proposal" and win["difference"] == pytest.approx(-0.1)
    assert win["noise"] == pytest.approx(np.sqrt(2 * 0.0001 / 3), abs=1e-6)
    tie = verify_against_prior([6.98, 7.02, 7.00], [7.00, 7.04, 6.99])
    assert tie["chosen"] == "prior"
    with pytest.raises(ValueError, match=">= 2 seeds"):
        verify_against_prior([1.0], [1.0])


def test_budget_rule_and_warning():
    assert default_proxies(16) == 64 and default_proxies(1) == 8
    assert budget_warning(32, 16, "cluster.topic") is None
    msg = budget_warning(12, 16, "cluster.topic")
    assert "--proxies 64" in msg and "--topics" in msg and "'cluster.topic'" in msg
    assert zeroed_groups(np.array([1e6, 10.0, 5e5]), 1e-3).tolist() == [False, True, False]
    assert split_rounds(32) == [16, 8, 8] and split_rounds(8) == [4, 2, 2]
    with pytest.raises(ConfigError, match=">= 5 proxy runs"):
        split_rounds(4)


def _world(k: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    tokens = rng.lognormal(0, 1.2, k) * 1e5
    return size_prior(tokens, 0.5), epoch_caps(tokens, 0.3 * tokens.sum(), 1.0), tokens


def test_trust_search_finds_most_of_a_known_gain():
    prior, caps, _ = _world(8, 0)
    t = np.random.default_rng(1).normal(0, 2, 8)
    rng = np.random.default_rng(2)

    def run(X, r, p):
        return loglinear_value(X, 3.0, -1.0, t) + rng.normal(0, 0.02, len(X))

    res = trust_search(run, prior, 32, rng, caps=caps)
    best = np.zeros(8)  # argmin of t.w on the capped simplex: fill the best groups
    left = 1.0
    for j in np.argsort(t):
        best[j] = min(caps[j], left)
        left -= best[j]
    f = lambda w: loglinear_value(w, 3.0, -1.0, t)[0]  # noqa: E731
    regret = (f(res.weights) - f(best)) / (f(prior) - f(best))
    assert regret < 0.3
    assert (res.weights <= caps + 1e-9).all() and res.weights.sum() == pytest.approx(1)
    assert res.proposal.kl <= res.proposal.radius + 1e-9
    assert len(res.y) == 32 and [r["round"] for r in res.round_reports] == [0, 1, 2, 3]
    assert res.round_reports[1]["heldout_spearman"] is not None  # predicted before it ran
    assert res.round_reports[-1]["runs"] == 0 and "proposal" in res.round_reports[-1]


def test_trust_search_stays_at_the_prior_on_noise():
    prior, caps, _ = _world(6, 4)
    rng = np.random.default_rng(5)
    res = trust_search(lambda X, r, p: rng.normal(5.0, 0.02, len(X)), prior, 16, rng, caps=caps)
    assert res.proposal.kl < 0.05  # the fit cannot beat the mean: no real move
