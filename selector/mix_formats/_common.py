"""Checks shared by the formats."""

from __future__ import annotations

import math
from collections.abc import Sequence

from assay.errors import AssayError

SUM_TOL = 1e-6


def check_weights(weights: Sequence[float], where: str, *, upper: float | None = 1.0) -> None:
    """Every weight finite and > 0 (and <= ``upper``), all summing to 1."""
    if not weights:
        raise AssayError(f"{where}: no weights")
    for w in weights:
        if not (isinstance(w, int | float) and math.isfinite(w) and w > 0):
            raise AssayError(f"{where}: weight {w!r} is not a positive number")
        if upper is not None and w > upper:
            raise AssayError(f"{where}: weight {w} is above {upper}")
    total = math.fsum(weights)
    if abs(total - 1.0) > SUM_TOL:
        raise AssayError(f"{where}: weights sum to {total}, not 1")
