"""Candidate mixtures, sampled as RegMix does (``mixture_config/synthesize_mixture.py``).

Pure numpy functions, weights as ``[n, k]`` arrays whose rows sum to 1:

1. a prior from group sizes, tempered: ``share ** temperature`` renormalised (RegMix 0.5);
2. per candidate a random strength ``s`` from log-spaced values in [0.1, 5] and a draw from
   ``Dirichlet(prior * s)``: small ``s`` gives spiky mixtures, large ``s`` ones near the
   prior, so the candidates cover both corners and the middle of the simplex;
3. weights below ``min_weight`` set to 0 and the rest renormalised;
4. rejection of candidates that would read a group more than ``max_epochs`` times (token
   availability), as RegMix's ``MAXIMUM_USAGE``;
5. de-duplication (L1 distance below ``dedupe_tol``), oversampling, then a random pick.

Example::

    prior = size_prior(tokens, temperature=0.5)
    caps = epoch_caps(tokens, budget_tokens=1e6, max_epochs=4)
    X = sample_mixtures(prior, 64, np.random.default_rng(0), caps=caps)
"""

from __future__ import annotations

import numpy as np

from assay.errors import ConfigError

STRENGTHS = np.exp(np.linspace(np.log(0.1), np.log(5.0), 15))


def size_prior(tokens: np.ndarray, temperature: float = 0.5) -> np.ndarray:
    """Token shares raised to ``temperature`` and renormalised (0 = uniform, 1 = sizes)."""
    tokens = np.asarray(tokens, dtype=np.float64)
    if tokens.ndim != 1 or len(tokens) == 0 or (tokens < 0).any() or tokens.sum() <= 0:
        raise ConfigError("group token counts must be >= 0 and not all 0")
    if temperature < 0:
        raise ConfigError(f"--prior-temperature must be >= 0, got {temperature}")
    share = tokens / tokens.sum()
    prior = np.where(share > 0, share**temperature, 0.0)
    return prior / prior.sum()


def epoch_caps(tokens: np.ndarray, budget_tokens: float, max_epochs: float) -> np.ndarray:
    """Largest weight per group that reads it at most ``max_epochs`` times in the budget."""
    if budget_tokens <= 0:
        raise ConfigError(f"--budget-tokens must be > 0, got {budget_tokens}")
    if max_epochs <= 0:
        raise ConfigError(f"--max-epochs must be > 0, got {max_epochs}")
    caps = np.minimum(np.asarray(tokens, np.float64) * max_epochs / budget_tokens, 1.0)
    if caps.sum() < 1.0 - 1e-9:
        raise ConfigError(
            f"--max-epochs {max_epochs} is infeasible: all groups together hold only "
            f"{caps.sum():.2f}x of --budget-tokens {budget_tokens:,.0f} at that many epochs",
            hint="raise --max-epochs or lower --budget-tokens",
        )
    return caps


def clean(weights: np.ndarray, min_weight: float) -> np.ndarray:
    """Zero weights below ``min_weight`` and renormalise rows (rows left all-zero are NaN)."""
    w = np.where(weights < min_weight, 0.0, weights)
    total = w.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return w / total


def within_caps(weights: np.ndarray, caps: np.ndarray | None, tol: float = 1e-9) -> np.ndarray:
    """Boolean mask of rows that are finite and respect every cap."""
    ok = np.isfinite(weights).all(axis=1)
    if caps is not None:
        ok &= (weights <= caps[None, :] + tol).all(axis=1)
    return ok


def dirichlet_rows(alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One Dirichlet draw per row of ``alpha`` (``[n, k]``), zero-alpha entries stay 0.

    Gamma draws instead of ``rng.dirichlet`` so that alpha may differ per row and hold
    zeros (a group outside the support), and underflow leaves a NaN row to reject rather
    than an exception.
    """
    g = np.where(alpha > 0, rng.standard_gamma(np.maximum(alpha, 1e-300)), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return g / g.sum(axis=1, keepdims=True)


def dedupe(weights: np.ndarray, tol: float, existing: np.ndarray | None = None) -> np.ndarray:
    """Rows in first-seen order without near-duplicates (as RegMix: round, then dedupe).

    Rows are rounded to a grid of ``tol / k`` per weight and exact duplicates of the
    rounded rows dropped (vectorised, so 10^5 candidates take milliseconds); rows within
    L1 ``tol`` of an ``existing`` row (mixtures already run) are dropped too.
    """
    weights = np.asarray(weights, np.float64).reshape(-1, np.shape(weights)[-1])
    if len(weights) == 0:
        return weights
    grid = np.round(weights / (tol / weights.shape[1])).astype(np.int64)
    _, first = np.unique(grid, axis=0, return_index=True)
    out = weights[np.sort(first)]
    if existing is not None and len(existing):
        existing = np.asarray(existing, np.float64)
        keep = np.ones(len(out), bool)
        for start in range(0, len(out), 4096):  # chunks bound the [n, m, k] temporary
            d = np.abs(out[start : start + 4096, None, :] - existing[None, :, :]).sum(-1)
            keep[start : start + 4096] = d.min(axis=1) >= tol
        out = out[keep]
    return out


def sample_mixtures(
    prior: np.ndarray,
    n: int,
    rng: np.random.Generator,
    *,
    caps: np.ndarray | None = None,
    strengths: np.ndarray = STRENGTHS,
    min_weight: float = 2e-4,
    oversample: int = 20,
    dedupe_tol: float = 1e-3,
    existing: np.ndarray | None = None,
    max_rounds: int = 50,
) -> np.ndarray:
    """``n`` distinct candidate mixtures around ``prior`` (RegMix's sampler, see above).

    Args:
        prior: ``[k]`` Dirichlet base measure (sums to 1).
        n: candidates wanted.
        rng: the random generator (the only source of randomness).
        caps: ``[k]`` largest weight per group (token availability), or None.
        strengths: Dirichlet strengths, one picked at random per candidate.
        min_weight: smaller weights are zeroed (then rows renormalised).
        oversample: draw ``n * oversample`` valid rows, dedupe, then pick ``n`` at random.
        dedupe_tol: rows closer than this in L1 (to each other or ``existing``) are dropped.
        existing: ``[m, k]`` mixtures already run, never proposed again.
    """
    prior = np.asarray(prior, dtype=np.float64)
    if n <= 0:
        return np.zeros((0, len(prior)))
    want = n * max(oversample, 1)
    found = np.zeros((0, len(prior)))
    for _ in range(max_rounds):
        s = rng.choice(strengths, size=(want, 1))
        w = clean(dirichlet_rows(prior[None, :] * s, rng), min_weight)
        w = w[within_caps(w, caps)]
        found = np.concatenate([found, w])
        if len(found) >= want:
            break
    found = dedupe(found, dedupe_tol, existing)
    found = found[rng.permutation(len(found))]
    # The grid dedupe is approximate at cell borders; the picked rows are checked exactly.
    picked: list[np.ndarray] = []
    for row in found:
        if not picked or np.abs(np.asarray(picked) - row).sum(axis=1).min() >= dedupe_tol:
            picked.append(row)
            if len(picked) == n:
                return np.asarray(picked)
    raise ConfigError(
        f"could only sample {len(picked)} distinct mixtures of {n} under the caps",
        hint="raise --max-epochs, lower --min-weight, or ask for fewer proxies",
    )


def sample_near(
    centers: np.ndarray,
    n: int,
    rng: np.random.Generator,
    *,
    concentration: float,
    caps: np.ndarray | None = None,
    min_weight: float = 2e-4,
    max_rounds: int = 50,
) -> np.ndarray:
    """``n`` mixtures drawn from ``Dirichlet(center * concentration + eps)`` around centers.

    CLIMB's later rounds search near the predictor's best mixtures; a higher
    ``concentration`` keeps draws closer. A small floor on alpha lets a group the center
    left at 0 come back, so the search can leave a corner it settled in too early.
    """
    centers = np.atleast_2d(np.asarray(centers, dtype=np.float64))
    k = centers.shape[1]
    found = np.zeros((0, k))
    for _ in range(max_rounds):
        c = centers[rng.integers(len(centers), size=n * 4)]
        w = clean(dirichlet_rows(c * concentration + 0.02, rng), min_weight)
        found = np.concatenate([found, w[within_caps(w, caps)]])
        if len(found) >= n:
            return found[:n]
    raise ConfigError(
        f"could only sample {len(found)} of {n} mixtures near the best under the caps",
        hint="raise --max-epochs",
    )
