"""Per-cluster statistics accumulated shard by shard, in memory that does not grow with
the corpus: counts, sums and sums of squares per column, label make-up, and bottom-m
samples (the m rows with the smallest key per cluster: a uniform sample when the keys
are random, the m most central rows when the keys are distances to the centroid).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


class ClusterStats:
    """Documents, tokens and mean/std of numeric columns per cluster (streamed).

    Example::

        s = ClusterStats(2, ["q"])
        s.add(np.array([0, 1, 1]), {"q": np.array([1.0, 2.0, 4.0])}, tokens=np.array([5, 5, 5]))
        s.mean("q")  # -> [1.0, 3.0]
    """

    def __init__(self, k: int, columns: list[str]) -> None:
        self.k = k
        self.columns = list(columns)
        self.docs = np.zeros(k, dtype=np.int64)
        self.tokens = np.zeros(k, dtype=np.int64)
        self.n = {c: np.zeros(k) for c in self.columns}
        self.sum = {c: np.zeros(k) for c in self.columns}
        self.sumsq = {c: np.zeros(k) for c in self.columns}

    def add(
        self,
        labels: np.ndarray,
        values: Mapping[str, np.ndarray],
        tokens: np.ndarray | None = None,
    ) -> None:
        self.docs += np.bincount(labels, minlength=self.k)
        if tokens is not None:
            self.tokens += np.bincount(labels, weights=tokens, minlength=self.k).astype(np.int64)
        for c in self.columns:
            v = np.asarray(values[c], dtype=np.float64)
            ok = np.isfinite(v)
            lab, v = labels[ok], v[ok]
            self.n[c] += np.bincount(lab, minlength=self.k)
            self.sum[c] += np.bincount(lab, weights=v, minlength=self.k)
            self.sumsq[c] += np.bincount(lab, weights=v * v, minlength=self.k)

    def mean(self, column: str) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.n[column] > 0, self.sum[column] / self.n[column], np.nan)

    def std(self, column: str) -> np.ndarray:
        """Population standard deviation (NaN where a cluster has no finite value)."""
        mean = self.mean(column)
        with np.errstate(invalid="ignore", divide="ignore"):
            var = self.sumsq[column] / self.n[column] - mean * mean
        return np.sqrt(np.maximum(var, 0.0))

    def grouped(self, groups: np.ndarray, n_groups: int) -> ClusterStats:
        """Statistics of groups of clusters (``groups[c]`` = group of cluster c; -1: none)."""
        out = ClusterStats(n_groups, self.columns)
        ok = groups >= 0
        g = groups[ok]

        def fold(a: np.ndarray) -> np.ndarray:
            return np.bincount(g, weights=a[ok], minlength=n_groups)

        out.docs = fold(self.docs).astype(np.int64)
        out.tokens = fold(self.tokens).astype(np.int64)
        for c in self.columns:
            out.n[c], out.sum[c], out.sumsq[c] = (
                fold(self.n[c]),
                fold(self.sum[c]),
                fold(self.sumsq[c]),
            )
        return out


class LabelCounts:
    """How many documents of each label value (e.g. domain) fall in each cluster."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.values: dict[str, int] = {}
        self.counts = np.zeros((k, 0), dtype=np.int64)

    def add(self, labels: np.ndarray, values: list[object]) -> None:
        codes = np.array([self.values.setdefault(str(v), len(self.values)) for v in values])
        if len(self.values) > self.counts.shape[1]:
            grown = np.zeros((self.k, len(self.values)), dtype=np.int64)
            grown[:, : self.counts.shape[1]] = self.counts
            self.counts = grown
        if len(codes):
            np.add.at(self.counts, (labels, codes), 1)

    def names(self) -> list[str]:
        return sorted(self.values, key=self.values.__getitem__)

    def grouped(self, groups: np.ndarray, n_groups: int) -> np.ndarray:
        out = np.zeros((n_groups, self.counts.shape[1]), dtype=np.int64)
        ok = groups >= 0
        np.add.at(out, groups[ok], self.counts[ok])
        return out


def nmi_from_counts(contingency: np.ndarray) -> float:
    """Normalised mutual information (arithmetic mean of the entropies, as scikit-learn's
    default) from a ``[clusters, labels]`` table of document counts."""
    c = np.asarray(contingency, dtype=np.float64)
    n = c.sum()
    if n == 0:
        return float("nan")
    pij = c / n
    pi, pj = pij.sum(1), pij.sum(0)
    nz = pij > 0
    mi = float((pij[nz] * np.log(pij[nz] / np.outer(pi, pj)[nz])).sum())
    hi = float(-(pi[pi > 0] * np.log(pi[pi > 0])).sum())
    hj = float(-(pj[pj > 0] * np.log(pj[pj > 0])).sum())
    if hi == 0 and hj == 0:
        return 1.0
    return max(mi, 0.0) / max((hi + hj) / 2, 1e-300)


class SmallestPerGroup:
    """Per group, the ``m`` rows with the smallest key seen so far.

    Example::

        s = SmallestPerGroup(m=1)
        s.add(np.array([0, 0, 1]), keys=np.array([0.5, 0.1, 0.9]), rows=np.array([10, 11, 12]))
        s.rows_by_group(2)  # -> [array([11]), array([12])]
    """

    def __init__(self, m: int) -> None:
        self.m = m
        self.groups = np.zeros(0, dtype=np.int64)
        self.keys = np.zeros(0, dtype=np.float64)
        self.rows = np.zeros(0, dtype=np.int64)

    def add(self, groups: np.ndarray, keys: np.ndarray, rows: np.ndarray) -> None:
        g = np.concatenate([self.groups, np.asarray(groups, dtype=np.int64)])
        k = np.concatenate([self.keys, np.asarray(keys, dtype=np.float64)])
        r = np.concatenate([self.rows, np.asarray(rows, dtype=np.int64)])
        order = np.lexsort((r, k, g))  # by group, then key, then row (stable ties)
        g, k, r = g[order], k[order], r[order]
        first = np.r_[0, np.flatnonzero(np.diff(g)) + 1]
        start_of = np.repeat(first, np.diff(np.r_[first, len(g)]))
        keep = (np.arange(len(g)) - start_of) < self.m
        self.groups, self.keys, self.rows = g[keep], k[keep], r[keep]

    def rows_by_group(self, n_groups: int) -> list[np.ndarray]:
        """Kept rows of each group, smallest key first."""
        bounds = np.searchsorted(self.groups, np.arange(n_groups + 1))
        return [self.rows[bounds[i] : bounds[i + 1]] for i in range(n_groups)]
