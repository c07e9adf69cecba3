"""The arithmetic of selection: Gumbel top-k, token quotas per group, budget filling.

Pure numpy functions (numpy in, numpy out), tested by hand values; ``selector.select``
wires them to corpora.

Gumbel top-k: adding ``temperature * Gumbel(0, 1)`` noise to scores and keeping the k
largest draws k items *without replacement* with probabilities proportional to
``exp(score / temperature)`` (Vieira 2014; Kool et al. 2019). Temperature 0 is the plain
top-k; a large temperature is a uniform random subset. MATES divides its predictions by
0.5 and adds noise, which is the same key up to a constant factor (temperature 0.5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from assay.errors import ConfigError


def gumbel_keys(
    scores: np.ndarray, temperature: float, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Perturbed keys ``score + temperature * G`` (G standard Gumbel); float64.

    NaN scores stay NaN (they are never selected: see :func:`rank_order`).
    """
    if not (temperature >= 0 and np.isfinite(temperature)):
        raise ConfigError(f"--temperature must be a finite number >= 0, got {temperature}")
    keys = np.asarray(scores, dtype=np.float64)
    if temperature == 0:
        return keys.copy()
    rng = rng if rng is not None else np.random.default_rng(0)
    return keys + temperature * rng.gumbel(size=keys.shape)


def rank_order(keys: np.ndarray) -> np.ndarray:
    """Indices from the largest key to the smallest; ties keep input order; NaNs excluded."""
    keys = np.asarray(keys, dtype=np.float64)
    valid = np.flatnonzero(~np.isnan(keys))
    # argsort of -key with a stable sort: equal keys keep their input order, so a run
    # at temperature 0 is reproducible across machines.
    return valid[np.argsort(-keys[valid], kind="stable")]


def gumbel_topk(
    scores: np.ndarray, k: int, temperature: float, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Indices of k items drawn without replacement with p ~ exp(score / temperature),
    best key first. Example: ``gumbel_topk(np.array([3., 1., 2.]), 2, 0)`` -> ``[0, 2]``."""
    if k < 0:
        raise ConfigError(f"k must be >= 0, got {k}")
    return rank_order(gumbel_keys(scores, temperature, rng))[:k]


def largest_remainder(weights: np.ndarray, total: int) -> np.ndarray:
    """Integers proportional to ``weights`` that sum to exactly ``total`` (Hamilton's
    method: floors, then one more to the largest remainders, ties to the lower index)."""
    w = np.asarray(weights, dtype=np.float64)
    if total < 0 or w.size == 0 or (w < 0).any() or w.sum() <= 0:
        raise ConfigError(f"cannot split {total} over weights {w.tolist()}")
    exact = w / w.sum() * total
    out = np.floor(exact).astype(np.int64)
    short = int(total - out.sum())
    if short:
        order = np.argsort(-(exact - out), kind="stable")
        out[order[:short]] += 1
    return out


def group_quotas(
    weights: np.ndarray,
    available: np.ndarray,
    budget: int,
    max_epochs: float | np.ndarray = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Tokens to take from each group for a budget, and whether each group was capped.

    Each group gets ``weight * budget`` (integers summing to ``budget``), at most
    ``max_epochs * available`` tokens (1.0 = no repetition). What a capped group cannot
    give is shared among the uncapped groups in proportion to their weights, repeatedly,
    until the budget is placed or every group is capped (then the quotas sum to less).

    Example: weights [.5, .5], available [100, 1000], budget 400 -> [100, 300], capped
    [True, False].
    """
    w = np.asarray(weights, dtype=np.float64)
    avail = np.asarray(available, dtype=np.int64)
    if w.shape != avail.shape:
        raise ValueError("weights and available differ in length")
    if budget <= 0:
        raise ConfigError(f"--budget-tokens must be > 0, got {budget}")
    if (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
        raise ConfigError(f"group weights must be finite, >= 0, not all 0: {w.tolist()}")
    epochs = np.broadcast_to(np.asarray(max_epochs, dtype=np.float64), w.shape)
    if (epochs < 1).any() or not np.isfinite(epochs).all():
        raise ConfigError(f"--max-epochs must be >= 1, got {np.asarray(max_epochs).tolist()}")
    cap = np.floor(avail * epochs).astype(np.int64)
    quota = np.zeros_like(avail)
    capped = (cap <= 0) | (w <= 0)
    left = int(budget)
    while left > 0 and not capped.all():
        open_ = ~capped
        share = np.zeros_like(avail)
        share[open_] = largest_remainder(w[open_], left)
        room = cap - quota
        over = open_ & (share >= room)
        if not over.any():
            quota += share
            left = 0
            break
        # Fill the groups that hit their cap, then share the rest again.
        quota[over] = cap[over]
        capped |= over
        left = int(budget - quota.sum())
    short = quota < largest_remainder(w, int(budget))
    return quota, short


def fill_budget(
    order: np.ndarray, tokens: np.ndarray, quota: int, *, max_skips: int = 64
) -> np.ndarray:
    """The documents (positions into ``tokens``) taken in ``order`` until ``quota``.

    Documents are taken best first while they fit; a document that would overflow the
    quota is skipped and the next ones that still fit are taken (first fit in rank order,
    at most ``max_skips`` times, which bounds the time on huge groups). The result never
    exceeds the quota. Example: order [0, 1, 2], tokens [5, 9, 3], quota 10 -> [0, 2].
    """
    order = np.asarray(order, dtype=np.int64)
    t = np.asarray(tokens, dtype=np.int64)[order]
    if quota <= 0 or order.size == 0:
        return order[:0]
    cum = np.cumsum(t)
    stop = int(np.searchsorted(cum, quota, side="right"))  # prefix with cum <= quota
    taken = [order[:stop]]
    used = int(cum[stop - 1]) if stop else 0
    pos = stop
    for _ in range(max_skips):
        left = quota - used
        if pos >= order.size or left <= 0:
            break
        fits = np.flatnonzero(t[pos:] <= left)
        if fits.size == 0:
            break
        # From the first document that fits, take a prefix again (cheap when many fit).
        j = pos + int(fits[0])
        cum = np.cumsum(t[j:])
        stop = int(np.searchsorted(cum, left, side="right"))
        taken.append(order[j : j + stop])
        used += int(cum[stop - 1])
        pos = j + stop
    return np.concatenate(taken)


def repeat_fill(order: np.ndarray, tokens: np.ndarray, quota: int) -> tuple[np.ndarray, np.ndarray]:
    """Upsampling for a group whose quota exceeds what it holds: every document
    ``quota // total`` times, then the best ones again for the rest (by
    :func:`fill_budget`). Returns (positions, copy number of each, 0-based)."""
    order = np.asarray(order, dtype=np.int64)
    total = int(np.asarray(tokens, dtype=np.int64)[order].sum())
    if total <= 0:
        return order[:0], order[:0]
    full = quota // total
    rest = fill_budget(order, tokens, quota - full * total)
    picks = [order] * full + [rest]
    copies = [np.full(order.size, c, dtype=np.int64) for c in range(full)]
    copies.append(np.full(rest.size, full, dtype=np.int64))
    return np.concatenate(picks), np.concatenate(copies)


def group_index(values: Sequence[object] | np.ndarray) -> tuple[list[str], np.ndarray]:
    """Group names (as strings, sorted) and each row's group number."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iub":
        names, inverse = np.unique(arr, return_inverse=True)
        return [str(n) for n in names.tolist()], inverse.astype(np.int64)
    as_str = np.array(["" if v is None else str(v) for v in arr.tolist()], dtype=object)
    names, inverse = np.unique(as_str.astype(str), return_inverse=True)
    return [str(n) for n in names.tolist()], inverse.astype(np.int64)


@dataclass
class Choice:
    """Rows chosen by :func:`choose` and what each group got."""

    rows: np.ndarray
    """Global row numbers, one per selected copy."""
    copies: np.ndarray
    """Copy number of each (0 for the first time a row is chosen)."""
    groups: list[dict[str, Any]]


def choose(
    scores: np.ndarray,
    tokens: np.ndarray,
    group: np.ndarray,
    weights: np.ndarray,
    budget: int,
    *,
    temperature: float = 0.0,
    max_epochs: float = 1.0,
    seed: int = 0,
) -> Choice:
    """Pick rows: quotas per group, then Gumbel top-k by tokens within each group.

    ``group[i]`` is row i's group number (into ``weights``), or -1 for a row that may
    not be chosen; NaN scores are never chosen. Pure numpy; the CLI and the scale
    benchmark call it.
    """
    n_groups = len(weights)
    tokens = np.asarray(tokens, dtype=np.int64)
    ok = (group >= 0) & ~np.isnan(scores)
    avail_tok = np.bincount(group[ok], weights=tokens[ok], minlength=n_groups).astype(np.int64)
    avail_doc = np.bincount(group[ok], minlength=n_groups)
    quotas, short = group_quotas(np.asarray(weights), avail_tok, budget, max_epochs)
    rng = np.random.default_rng(seed)
    # Rows of each group, from one stable sort instead of one scan per group.
    members = np.flatnonzero(ok)
    members = members[np.argsort(group[members], kind="stable")]
    bounds = np.searchsorted(group[members], np.arange(n_groups + 1))
    rows, copies, info = [], [], []
    for g in range(n_groups):
        mine = members[bounds[g] : bounds[g + 1]]
        keys = gumbel_keys(scores[mine], temperature, rng)
        order = mine[rank_order(keys)]
        if quotas[g] > avail_tok[g]:
            picked, copy = repeat_fill(order, tokens, int(quotas[g]))
        else:
            picked = fill_budget(order, tokens, int(quotas[g]))
            copy = np.zeros(picked.size, dtype=np.int64)
        rows.append(picked)
        copies.append(copy)
        info.append(
            {
                "tokens_available": int(avail_tok[g]),
                "docs_available": int(avail_doc[g]),
                "quota_tokens": int(quotas[g]),
                "tokens_selected": int(tokens[picked].sum()),
                "docs_selected": int(picked.size),
                "docs_repeated": int((copy > 0).sum()),
                "short": bool(short[g]),
            }
        )
    return Choice(np.concatenate(rows), np.concatenate(copies), info)


__all__ = [
    "Choice",
    "choose",
    "fill_budget",
    "group_index",
    "group_quotas",
    "gumbel_keys",
    "gumbel_topk",
    "largest_remainder",
    "rank_order",
    "repeat_fill",
]
