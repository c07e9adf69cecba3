"""What ``assay select`` feeds :func:`selector.gumbel.choose`, in pure numpy.

* :func:`standardise`: the combined score as a z-score over the selectable documents, so
  ``--temperature`` is in standard deviations whatever the score's scale;
* :func:`target_weights`: each row's group number and each group's target weight, from
  a mixture's weights or, without one, in proportion to the tokens each group holds;
* :func:`one_per_cluster`: the best-scored row of each near-duplicate cluster
  (``--dedup``).

No file is read here (``selector.select`` reads the columns and the mixture), so both
are tested by hand values.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from selector.gumbel import group_index


def standardise(raw: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, float | None, float]:
    """``(z, mean, std)``: ``raw`` standardised over the rows where ``ok``; NaN elsewhere.

    The mean and std are those of ``raw[ok]`` (None and 0.0 when no row is ok); a
    constant score is only centred (divided by 1), so it stays finite.
    Example: raw [1, 3, 5, 9], ok [T, T, T, F] -> z [-1.2247, 0, 1.2247, nan], 3, 1.633.
    """
    raw = np.asarray(raw, dtype=np.float64)
    ok = np.asarray(ok, dtype=bool)
    z = np.full(raw.shape, np.nan)
    if not ok.any():
        return z, None, 0.0
    mean = float(np.mean(raw[ok]))
    sd = float(np.std(raw[ok]))
    z[ok] = (raw[ok] - mean) / (sd if sd > 0 else 1.0)
    return z, mean, sd


def target_weights(
    values: np.ndarray | None,
    tokens: np.ndarray,
    ok: np.ndarray,
    targets: Sequence[tuple[str, float]] | None = None,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Group names, their target weights and each row's group number (-1: not selectable).

    ``values`` is each row's group value (None: one group ``all``). Groups are the values
    of the ``ok`` rows, as sorted strings (:func:`selector.gumbel.group_index`); a group
    with no selectable row is left out. ``targets`` are ``(name, weight)`` pairs (a
    mixture's groups): a group the targets leave out gets weight 0, and a target group
    the rows lack is appended with nothing available. Without ``targets`` each group's
    weight is its share of the selectable tokens.

    Example: values [a, b, b, c], tokens [1, 2, 3, 4], ok [T, T, T, F] ->
    ``(["a", "b"], [1/6, 5/6], [0, 1, 1, -1])``; with targets [("b", .7), ("z", .3)] ->
    ``(["a", "b", "z"], [0, .7, .3], [0, 1, 1, -1])``.
    """
    ok = np.asarray(ok, dtype=bool)
    if values is None:
        return ["all"], np.ones(1), np.where(ok, 0, -1)
    names, in_ok = group_index(np.asarray(values)[ok])
    group = np.full(len(values), -1, dtype=np.int64)
    group[ok] = in_ok
    if targets is None:
        held = np.bincount(group[ok], weights=np.asarray(tokens)[ok], minlength=len(names))
        return names, held / held.sum(), group
    known = {n: i for i, n in enumerate(names)}
    extra = [name for name, _ in targets if name not in known]
    names = names + extra  # groups the targets want but the rows lack: 0 available
    weights = np.zeros(len(names))
    for name, weight in targets:
        weights[known.get(name, names.index(name))] = weight
    return names, weights, group


def one_per_cluster(cluster: np.ndarray, score: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Mask of the rows kept when each near-duplicate cluster keeps one: among a
    cluster's ``ok`` rows, the highest ``score`` (the first row on a tie). Rows that are
    not ``ok`` are never kept and never stand in for their cluster.

    Example: cluster [0, 0, 2, 0], score [1, 3, 5, 3], ok [T, T, T, T] -> [F, T, T, F].
    """
    ok = np.asarray(ok, dtype=bool)
    rows = np.flatnonzero(ok)
    c = np.asarray(cluster)[rows]
    order = np.lexsort((rows, -np.asarray(score, dtype=np.float64)[rows], c))
    sorted_c = c[order]
    first = np.r_[True, sorted_c[1:] != sorted_c[:-1]] if rows.size else np.zeros(0, bool)
    keep = np.zeros(len(ok), dtype=bool)
    keep[rows[order][first]] = True
    return keep


__all__ = ["one_per_cluster", "standardise", "target_weights"]
