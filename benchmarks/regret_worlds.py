"""Worlds with a known answer for ``benchmarks/mixture_regret.py``.

A world is a loss over the capped simplex (``true(X)``), a per-run noise, a prior and the
true best. Simulated families (``k`` groups with log-normal token counts, the size prior
``share ** 0.5``, caps from reading each group at most once in a budget of 30% of the
pool, as the pipeline's select step does):

- ``loglinear``: ``c + exp(b + t.w)`` (the Data Mixing Laws form the search can fit);
- ``interactions``: the same plus ``w' A w`` in the exponent (pairs that help together);
- ``one-group``: only one group matters, with diminishing returns ``a exp(-8 w_j)``;
- ``flat``: a law whose whole range is a fifth of the noise: nothing to find.

``TableWorld`` is the real table (``mixture_regret_table.py``): runs return the recorded
loss of the nearest unused row, and the truth is a reference surrogate fitted on every
row (its CV error is printed beside the figures).
"""

from __future__ import annotations

import csv
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from selector.sampling import epoch_caps, sample_mixtures, size_prior
from selector.trust_search.design import clip_to_caps, hellinger

FAMILIES = ("loglinear", "interactions", "one-group", "flat")


@dataclass
class World:
    name: str
    prior: np.ndarray
    caps: np.ndarray
    noise: float
    fn: Any = field(repr=False)
    best: float = float("nan")
    best_w: np.ndarray | None = None

    def true(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.fn(np.atleast_2d(X)), np.float64)

    def measure(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        X = np.atleast_2d(X)
        return self.true(X) + rng.normal(0.0, self.noise, len(X))


def _lp_best(t: np.ndarray, caps: np.ndarray) -> np.ndarray:
    """argmin of t.w over the capped simplex: fill the most negative t up to its cap."""
    w = np.zeros(len(t))
    left = 1.0
    for j in np.argsort(t):
        w[j] = min(caps[j], left)
        left -= w[j]
        if left <= 1e-12:
            break
    return w


def _numeric_best(
    fn: Any, caps: np.ndarray, prior: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    from scipy.optimize import minimize

    k = len(caps)
    cands = sample_mixtures(prior, 256, rng, caps=caps, min_weight=0.0, dedupe_tol=1e-6)
    starts = cands[np.argsort(fn(cands))[:12]]
    best, best_v = starts[0], float(fn(starts[:1])[0])
    cons = [{"type": "eq", "fun": lambda w: w.sum() - 1.0}]
    for w0 in starts:
        res = minimize(
            lambda w: float(fn(w[None, :])[0]), w0, method="SLSQP",
            bounds=[(0.0, float(c)) for c in caps], constraints=cons, options={"maxiter": 200},
        )  # fmt: skip
        w = clip_to_caps(np.clip(res.x, 0, None), caps)
        v = float(fn(w[None, :])[0])
        if v < best_v:
            best, best_v = w, v
    assert len(best) == k
    return best


def simulated(family: str, k: int, noise: float, rng: np.random.Generator) -> World:
    """A world of ``family``; redrawn until prior - best >= 3 noise (except ``flat``), so
    that normalised regret is defined and there is something to find."""
    for _ in range(50):
        w = _simulated(family, k, noise, rng)
        if family == "flat" or w.true(w.prior)[0] - w.best >= 3 * noise:
            return w
    return w


def _simulated(family: str, k: int, noise: float, rng: np.random.Generator) -> World:
    tokens = rng.lognormal(0.0, 1.5, k) * 1e5
    caps = epoch_caps(tokens, 0.3 * tokens.sum(), 1.0)
    prior = clip_to_caps(size_prior(tokens, 0.5), caps)  # a mixture the caps allow
    if family in ("loglinear", "flat", "interactions"):
        t = rng.normal(0.0, 2.0, k)
        A = np.zeros((k, k))
        if family == "interactions":
            A = rng.normal(0.0, 4.0, (k, k))
            A = (A + A.T) / 2
            np.fill_diagonal(A, 0.0)
        b = np.log(0.5) - float(t @ prior + prior @ A @ prior)

        def fn(X: np.ndarray) -> np.ndarray:
            return 3.0 + np.exp(b + X @ t + np.einsum("ni,ij,nj->n", X, A, X))

        if family == "flat":
            base = fn
            scale = (
                0.2
                * noise
                / max(float(np.ptp(base(sample_mixtures(prior, 256, rng, caps=caps)))), 1e-12)
            )

            def fn(X: np.ndarray) -> np.ndarray:
                return 3.0 + scale * (base(X) - 3.0)

        best_w = (
            _lp_best(t, caps) if family != "interactions" else _numeric_best(fn, caps, prior, rng)
        )
    elif family == "one-group":
        j = int(rng.integers(k))

        def fn(X: np.ndarray) -> np.ndarray:
            return 3.0 + 0.5 * np.exp(-8.0 * X[:, j])

        rest = prior * (1 - caps[j]) / (1 - prior[j])
        best_w = clip_to_caps(np.where(np.arange(k) == j, caps[j], rest), caps)
    else:
        raise ValueError(f"family must be one of {FAMILIES}")
    w = World(f"{family}-{k}", prior, caps, noise, fn)
    w.best_w = best_w
    w.best = float(min(w.true(best_w)[0], w.true(prior)[0]))
    return w


def seed_noise(
    rows: list[dict[str, str]], targets: list[str], groups: list[str]
) -> dict[str, float]:
    """Pooled std over mixtures run at several seeds (each target): the proxies' noise."""
    by: dict[tuple, list[dict[str, str]]] = {}
    for r in rows:
        by.setdefault(tuple(r[f"w:{g}"] for g in groups), []).append(r)
    out = {}
    for t in targets:
        dev, dof = 0.0, 0
        for rs in by.values():
            if len(rs) > 1:
                v = np.array([float(r[f"loss:{t}"]) for r in rs])
                dev += float(((v - v.mean()) ** 2).sum())
                dof += len(v) - 1
        out[t] = float(np.sqrt(dev / dof)) if dof else float("nan")
    return out


@dataclass
class TableWorld(World):
    """A recorded table: measuring a mixture returns the nearest unused row's loss."""

    X_rows: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    y_rows: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ref_cv: dict[str, Any] = field(default_factory=dict)
    used: set[int] = field(default_factory=set)

    def reset(self) -> None:
        self.used = set()

    def snap(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows, ys = [], []
        for w in np.atleast_2d(X):
            d = hellinger(w[None, :], self.X_rows)[0]
            d[list(self.used)] = np.inf
            i = int(np.argmin(d))
            self.used.add(i)
            rows.append(self.X_rows[i])
            ys.append(self.y_rows[i])
        return np.asarray(rows), np.asarray(ys)


def load_table(path: Path) -> tuple[list[dict[str, str]], dict[str, Any]]:
    with path.open() as f:
        rows = list(csv.DictReader(f))
    return rows, json.loads(path.with_suffix(".json").read_text())


@functools.lru_cache(maxsize=8)
def _reference(path: Path, target: str, seed: int) -> Any:
    """The reference surrogate of one target, fitted once per process (every trial of a
    table cell shares it)."""
    from selector.surrogates.choose import choose_surrogate

    rows, side = load_table(path)
    groups = side["groups"]
    X = np.array([[float(r[f"w:{g}"]) for g in groups] for r in rows])
    y = np.array([float(r[f"loss:{target}"]) for r in rows])
    return choose_surrogate(X, y, ["loglinear", "gp", "lightgbm"], seed=seed)


def table_world(path: Path, target: str, seed: int = 0) -> TableWorld:
    rows, side = load_table(path)
    groups = side["groups"]
    X = np.array([[float(r[f"w:{g}"]) for g in groups] for r in rows])
    y = np.array([float(r[f"loss:{target}"]) for r in rows])
    caps = np.array([side["caps"][g] for g in groups])
    prior = clip_to_caps(np.array([side["prior"][g] for g in groups]), caps)
    noise = seed_noise(rows, [target], groups)[target]
    ref = _reference(path, target, seed)
    w = TableWorld(
        f"table-{target}", prior, caps, noise, ref.model.predict, X_rows=X, y_rows=y,
        ref_cv=ref.to_dict(),
    )  # fmt: skip
    fx = w.true(X)
    w.best_w = X[int(np.argmin(fx))]
    w.best = float(fx.min())
    return w
