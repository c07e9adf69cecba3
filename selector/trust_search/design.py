"""Round 0 of the trust-region search: cover the simplex on purpose.

A search can only refine the regions its first runs sampled (benchmarks/RESULTS.md: six
RegMix draws never came near the good region, and later rounds only polished the region
they liked). So round 0 is a design, not a draw:

1. the size prior and uniform (over the groups that are not zeroed, clipped to the caps)
   are always run: they are the two mixtures a user would otherwise pick;
2. the remaining runs are spread evenly over Dirichlet concentrations from near-prior
   (``strength`` ~ 30 x groups) down to sparse (0.5), half around the prior and half
   around uniform, as RegMix's sampler does;
3. inside each concentration band the runs are chosen by farthest-point sampling in the
   Hellinger geometry (Euclidean on ``sqrt(w)``) from a large pool, so no two runs sit on
   top of each other and corners are reached.

Pure numpy; ``rng`` is the only randomness.
"""

from __future__ import annotations

import numpy as np

from selector.sampling import clean, dirichlet_rows, within_caps


def hellinger(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Pairwise Hellinger distances ``[len(A), len(B)]`` (0 same, 1 disjoint support)."""
    a, b = np.sqrt(np.atleast_2d(A)), np.sqrt(np.atleast_2d(B))
    d2 = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(d2, 0.0) / 2)


def clip_to_caps(w: np.ndarray, caps: np.ndarray | None, iters: int = 100) -> np.ndarray:
    """The mixture closest in shape to ``w`` that respects ``caps``: clip, then hand the
    excess to the groups below their cap in proportion to their weight."""
    w = np.asarray(w, np.float64) / np.sum(w)
    if caps is None:
        return w
    for _ in range(iters):
        over = w > caps + 1e-12
        if not over.any():
            break
        excess = float((w[over] - caps[over]).sum())
        w = np.where(over, caps, w)
        room = (~over) & (w > 0) & (w < caps)
        if not room.any():
            room = (~over) & (caps > w)
        w[room] += excess * w[room] / w[room].sum() if w[room].sum() > 0 else excess / room.sum()
    return w


def clip_rows(W: np.ndarray, caps: np.ndarray | None, iters: int = 100) -> np.ndarray:
    """``clip_to_caps`` for every row of ``W`` at once."""
    W = np.array(W, np.float64)
    W /= W.sum(axis=1, keepdims=True)
    if caps is None:
        return W
    c = np.broadcast_to(caps, W.shape)
    for _ in range(iters):
        over = c + 1e-12 < W
        if not over.any():
            break
        excess = np.where(over, W - c, 0.0).sum(axis=1, keepdims=True)
        W = np.where(over, c, W)
        room = (~over) & (W > 0) & (c > W)
        share = np.where(room, W, 0.0)
        total = share.sum(axis=1, keepdims=True)
        even = ((~over) & (c > W)).astype(np.float64)
        share = np.where(total > 0, share, even)
        total = np.maximum(share.sum(axis=1, keepdims=True), 1e-300)
        W = W + excess * share / total
    return W


def strengths(k: int, bands: int) -> np.ndarray:
    """Dirichlet strengths of the concentration bands, sparse (0.5) to near-prior (30 k)."""
    return np.exp(np.linspace(np.log(0.5), np.log(30.0 * k), bands))


def farthest_points(pool: np.ndarray, chosen: np.ndarray, n: int) -> np.ndarray:
    """``n`` rows of ``pool``, each the farthest (Hellinger) from everything chosen so far."""
    if n <= 0 or len(pool) == 0:
        return np.zeros((0, pool.shape[1]))
    d = hellinger(pool, chosen).min(axis=1) if len(chosen) else np.full(len(pool), np.inf)
    picked = []
    for _ in range(min(n, len(pool))):
        i = int(np.argmax(d))
        picked.append(i)
        d = np.minimum(d, hellinger(pool, pool[i : i + 1])[:, 0])
        d[i] = -1.0
    return pool[picked]


def space_filling(
    prior: np.ndarray,
    n: int,
    rng: np.random.Generator,
    *,
    caps: np.ndarray | None = None,
    min_weight: float = 2e-4,
    bands: int = 4,
    pool_per_band: int = 2000,
) -> np.ndarray:
    """``n`` round-0 mixtures: prior, uniform, then farthest points per concentration band.

    Groups with a prior weight of 0 stay at 0 in every row (zeroed groups).
    """
    prior = np.asarray(prior, np.float64)
    active = prior > 0
    uniform = clip_to_caps(active / active.sum(), caps)
    fixed = [prior] + ([uniform] if hellinger(prior, uniform)[0, 0] > 1e-3 else [])
    chosen = np.asarray(fixed[:n])
    left = n - len(chosen)
    if left <= 0:
        return chosen
    s = strengths(int(active.sum()), bands)[::-1]  # near-prior first: cheap runs first
    per = np.full(len(s), left // len(s))
    per[: left % len(s)] += 1
    for strength, m in zip(s, per, strict=True):
        if m == 0:
            continue
        rows = []
        for base in (prior, uniform):
            w = clean(
                dirichlet_rows(np.repeat(base[None, :] * strength, pool_per_band, 0), rng),
                min_weight,
            )
            rows.append(w[within_caps(w, caps)])
        pool = np.concatenate(rows)
        if len(pool) < m:  # caps reject most sparse draws: clip instead of rejecting
            raw = dirichlet_rows(np.repeat(prior[None, :] * strength, pool_per_band, 0), rng)
            raw = raw[np.isfinite(raw).all(1)]
            pool = np.concatenate([pool, clip_rows(raw, caps)])
        chosen = np.concatenate([chosen, farthest_points(pool, chosen, int(m))])
    return chosen
