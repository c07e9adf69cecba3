"""How many proxy runs a search needs, and which groups are too small to search over.

**The rule: 4 proxy runs per group** (``PROXIES_PER_GROUP``), at least 8. Where it comes
from: Olmix (2026) finds the proxy runs a mixture fit needs grow linearly with the number
of domains; RegMix spent 512 runs on 17 domains (30 per group) with LightGBM; and this
project's search-regret benchmark (``benchmarks/mixture_regret.py``, figures in
benchmarks/RESULTS.md) measures how close the trust-region search gets at 1, 2, 4 and 8
runs per group. Below 2 runs per group the search warns: it stays safe (the trust region
and the verification keep it at the prior when the fit is poor) but it rarely finds much.

**Zeroed groups.** A group holding less than ``min_share`` of the pool's tokens (RegMix
zeroes domains under 0.1%) gets weight 0 and is left out of the search: its runs would
mostly measure noise, and its quota could not be filled without repeating it.
"""

from __future__ import annotations

import numpy as np

PROXIES_PER_GROUP = 4
MIN_PROXIES = 8


def default_proxies(n_groups: int) -> int:
    """The rule above: ``max(8, 4 * groups)``."""
    return max(MIN_PROXIES, PROXIES_PER_GROUP * n_groups)


def budget_warning(proxies: int, n_groups: int, group_by: str) -> str | None:
    """A warning with the options when ``proxies`` is under 2 runs per group, else None."""
    if proxies >= 2 * n_groups:
        return None
    return (
        f"warning: {proxies} proxy runs for {n_groups} groups is under 2 per group; the fit "
        f"will be poor and the search will mostly keep the prior. Options: --proxies "
        f"{default_proxies(n_groups)} (the default rule, 4 per group); fewer groups "
        f"(--group-by over merged topics, e.g. assay cluster --topics {max(2, proxies // 4)}, "
        f"instead of {group_by!r}); or a coarser grouping such as a domain column"
    )


def zeroed_groups(tokens: np.ndarray, min_share: float) -> np.ndarray:
    """Boolean mask of the groups holding less than ``min_share`` of all tokens."""
    tokens = np.asarray(tokens, np.float64)
    return tokens < min_share * tokens.sum()
