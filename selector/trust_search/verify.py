"""The last gate of the search: does the proposal beat the prior by more than noise?

Both mixtures are trained at the same ``n`` fresh seeds (common random numbers: the same
documents first in every group, the same initial weights). The proposal is kept only when

    mean(proposal) - mean(prior) < -sqrt(var(proposal) / n + var(prior) / n)

i.e. it is lower by more than one standard error of the difference of the two means
(unpaired, so it does not lean on the pairing to look significant). Otherwise the search
returns the prior and says so. Pure function; ``selector.search`` runs the proxies.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def verify_against_prior(proposal: list[float], prior: list[float]) -> dict[str, Any]:
    """The decision and its figures (``mixture.json`` ``method.verification``)."""
    a, b = np.asarray(proposal, np.float64), np.asarray(prior, np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ValueError("verification needs >= 2 seeds of each mixture")
    diff = float(a.mean() - b.mean())
    noise = float(np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)))
    keep = diff < -noise
    return {
        "seeds": len(a),
        "proposal": [round(float(v), 6) for v in a],
        "prior": [round(float(v), 6) for v in b],
        "proposal_mean": round(float(a.mean()), 6),
        "prior_mean": round(float(b.mean()), 6),
        "difference": round(diff, 6),
        "noise": round(noise, 6),
        "chosen": "proposal" if keep else "prior",
    }
