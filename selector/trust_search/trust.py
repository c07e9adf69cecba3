"""The trust region around the prior, and how a proposal is chosen inside it.

- **Region.** ``KL(w || prior) <= radius``. The radius is ``max_kl * skill``, where
  ``skill`` is the chosen surrogate's out-of-sample R^2 (``selector.surrogates.choose``):
  a fit that predicts unseen runs no better than their mean cannot move the mixture at
  all, a perfect one may move it up to ``max_kl`` nats from the prior. KL is convex, so
  every point between the prior and a point of the region is in the region too.
- **Proposal.** Among candidates in the region (Dirichlet draws around the prior and
  around the best runs, refined from several starts), the one with the lowest upper
  confidence bound ``mean + kappa * std``; then a line search from the prior toward it
  on the same bound, so that where the surrogate is unsure the step shrinks toward the
  prior (``lambda`` = how far it went, recorded in mixture.json).
- **Exploration** (later rounds): the lowest lower bound ``mean - kappa * std`` inside the
  widest region (``max_kl``), spread out by a minimum Hellinger distance, so runs go
  where the surrogate is unsure *and* hopeful.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from selector.sampling import clean, dirichlet_rows, within_caps
from selector.trust_search.design import clip_rows, hellinger, strengths


def near(
    centers: np.ndarray,
    n: int,
    rng: np.random.Generator,
    *,
    concentration: float,
    active: np.ndarray,
    caps: np.ndarray | None,
    min_weight: float,
) -> np.ndarray:
    """``n`` draws from ``Dirichlet(center * concentration + 0.02)`` over the active groups;
    a draw over a cap is clipped to the caps (not rejected: near a cap most would be)."""
    centers = np.atleast_2d(centers)
    c = centers[rng.integers(len(centers), size=n)]
    w = clean(dirichlet_rows((c * concentration + 0.02) * active[None, :], rng), min_weight)
    w = w[np.isfinite(w).all(axis=1)]
    bad = ~within_caps(w, caps)
    if bad.any():
        w[bad] = clip_rows(w[bad], caps)
    return w


def kl_to_prior(W: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """``KL(w || prior)`` per row (nats); ``inf`` where ``w`` uses a group the prior zeroes."""
    W = np.atleast_2d(np.asarray(W, np.float64))
    p = np.asarray(prior, np.float64)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(W > 0, W * np.log(W / p), 0.0)
    return terms.sum(axis=1)


def candidate_pool(
    prior: np.ndarray,
    centers: np.ndarray,
    n: int,
    rng: np.random.Generator,
    *,
    caps: np.ndarray | None,
    min_weight: float,
) -> np.ndarray:
    """Half Dirichlet draws around the prior (every concentration band), half near centers."""
    k_active = int((prior > 0).sum())
    s = rng.choice(strengths(k_active, 6), size=(n // 2, 1))
    wide = clean(dirichlet_rows(prior[None, :] * s, rng), min_weight)
    wide = wide[within_caps(wide, caps)]
    rows = [prior[None, :], wide]
    if len(centers):
        active = (prior > 0).astype(np.float64)
        rows.append(
            near(centers, n // 2, rng, concentration=100.0, active=active, caps=caps,
                 min_weight=min_weight)
        )  # fmt: skip
    return np.concatenate(rows)


def score(model: Any, W: np.ndarray, kappa: float) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) of the surrogate at the rows of ``W``."""
    mean = np.asarray(model.predict(W), np.float64)
    std = np.asarray(model.predict_std(W), np.float64) if kappa else np.zeros(len(W))
    return mean, std


@dataclass
class Proposal:
    weights: np.ndarray
    mean: float
    """Surrogate's predicted objective at the proposal."""
    std: float
    """Surrogate's uncertainty there."""
    prior_mean: float
    prior_std: float
    kl: float
    """KL(proposal || prior), nats."""
    radius: float
    step: float
    """Fraction of the way from the prior to the best candidate that was kept (0 = prior)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "predicted": round(self.mean, 6),
            "predicted_std": round(self.std, 6),
            "prior_predicted": round(self.prior_mean, 6),
            "prior_predicted_std": round(self.prior_std, 6),
            "kl_to_prior": round(self.kl, 6),
            "radius_kl": round(self.radius, 6),
            "step": round(self.step, 4),
        }


def propose(
    model: Any,
    prior: np.ndarray,
    radius: float,
    X: np.ndarray,
    y: np.ndarray,
    rng: np.random.Generator,
    *,
    caps: np.ndarray | None,
    min_weight: float,
    kappa: float = 1.0,
    n_candidates: int = 5000,
    restarts: int = 4,
) -> Proposal:
    """The lowest ``mean + kappa * std`` in the region, then shrunk toward the prior."""
    pm, ps = score(model, prior[None, :], kappa)
    best_w, best_ucb = prior, float(pm[0] + kappa * ps[0])
    active = (prior > 0).astype(np.float64)
    if radius > 0:
        centers = X[np.argsort(y, kind="stable")[:8]]
        pool = candidate_pool(prior, centers, n_candidates, rng, caps=caps, min_weight=min_weight)
        pool = pool[kl_to_prior(pool, prior) <= radius]
        if len(pool):
            m, s = score(model, pool, kappa)
            ucb = m + kappa * s
            starts = pool[np.argsort(ucb, kind="stable")[:restarts]]
            for w0 in starts:  # local refinement from several starts
                m0, s0 = score(model, w0[None, :], kappa)
                w, u = w0, float(m0[0] + kappa * s0[0])
                for conc in (300.0, 1000.0, 3000.0):
                    local = near(w, 128, rng, concentration=conc, active=active, caps=caps,
                                 min_weight=min_weight)  # fmt: skip
                    local = local[kl_to_prior(local, prior) <= radius]
                    if not len(local):
                        continue
                    nm, ns = score(model, local, kappa)
                    j = int(np.argmin(nm + kappa * ns))
                    if nm[j] + kappa * ns[j] < u:
                        w, u = local[j], float(nm[j] + kappa * ns[j])
                if u < best_ucb:
                    best_w, best_ucb = w, u
    if best_w is prior:  # nothing in the region beats the prior's bound
        return Proposal(prior, float(pm[0]), float(ps[0]), float(pm[0]), float(ps[0]), 0.0,
                        float(radius), 0.0)  # fmt: skip
    lam = np.linspace(0.0, 1.0, 21)
    line = prior[None, :] + lam[:, None] * (best_w - prior)[None, :]
    lm, ls = score(model, line, kappa)
    j = int(np.argmin(lm + kappa * ls - 1e-9 * lam))  # ties: the larger step
    w = line[j] / line[j].sum()
    return Proposal(
        weights=w,
        mean=float(lm[j]),
        std=float(ls[j]),
        prior_mean=float(pm[0]),
        prior_std=float(ps[0]),
        kl=float(kl_to_prior(w, prior)[0]),
        radius=float(radius),
        step=float(lam[j]),
    )


def explore_batch(
    model: Any,
    prior: np.ndarray,
    n: int,
    X: np.ndarray,
    y: np.ndarray,
    rng: np.random.Generator,
    *,
    max_kl: float,
    caps: np.ndarray | None,
    min_weight: float,
    kappa: float = 1.0,
    n_candidates: int = 5000,
    min_distance: float = 0.05,
) -> np.ndarray:
    """``n`` new mixtures by lowest ``mean - kappa * std``, each >= ``min_distance`` apart
    (Hellinger) from one another and from every run already measured."""
    centers = X[np.argsort(y, kind="stable")[:8]]
    pool = candidate_pool(prior, centers, n_candidates, rng, caps=caps, min_weight=min_weight)
    pool = pool[kl_to_prior(pool, prior) <= max_kl]
    if not len(pool):
        return np.zeros((0, len(prior)))
    m, s = score(model, pool, kappa)
    order = np.argsort(m - kappa * s, kind="stable")
    d = hellinger(pool, X).min(axis=1)
    picked: list[int] = []
    for i in order:
        if d[i] < min_distance:
            continue
        picked.append(int(i))
        if len(picked) == n:
            break
        d = np.minimum(d, hellinger(pool, pool[i : i + 1])[:, 0])
    if len(picked) < n:  # too crowded: fill with the farthest remaining candidates
        rest = np.setdiff1d(np.arange(len(pool)), picked)
        far = rest[np.argsort(-hellinger(pool[rest], X).min(axis=1))][: n - len(picked)]
        picked += far.tolist()
    return pool[picked]
