"""CLIMB's two cluster-level steps, as pure functions: prune by mean quality, merge
kept centroids into topics.

Pruning is per cluster, as in CLIMB: a kept cluster keeps its weak documents and a
dropped one loses its good ones. Each rule ``COLUMN<THRESHOLD`` drops the clusters whose
mean of ``COLUMN`` is below the threshold (``COLUMN>THRESHOLD``: above it, for columns
where lower is better, such as perplexity). A cluster with no finite value of a rule's
column cannot be judged and is dropped, with that reason. Every drop carries its reasons.

Merging is agglomerative clustering of the kept centroids (SciPy's ``linkage``), cut
either at a target number of topics or at a distance threshold (CLIMB merged at centroid
distance 1.5 into 16 groups; note that between unit-length centroids the Euclidean
distance is at most 2). Topic ids are ordered by size: topic 0 has the most tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from assay.errors import ConfigError

LINKAGES = ("ward", "average", "complete", "single")
_RULE_RE = re.compile(r"^\s*(?P<column>[^<>]+?)\s*(?P<op>[<>])\s*(?P<value>[-+0-9.eE]+)\s*$")


@dataclass(frozen=True)
class PruneRule:
    """Drop a cluster when the mean of ``column`` is below (``<``) / above (``>``) ``value``."""

    column: str
    op: str
    value: float

    @classmethod
    def parse(cls, text: str) -> PruneRule:
        """``"dataman.overall<3.0"`` -> ``PruneRule("dataman.overall", "<", 3.0)``."""
        m = _RULE_RE.match(text)
        if m is None:
            raise ConfigError(
                f"--prune must look like COLUMN<VALUE or COLUMN>VALUE, got {text!r}",
                hint="e.g. --prune 'dataman.overall<3.0' drops clusters whose mean is below 3",
            )
        return cls(m["column"], m["op"], float(m["value"]))

    def __str__(self) -> str:
        return f"{self.column}{self.op}{self.value:g}"

    def drops(self, mean: float) -> str | None:
        """Why a cluster with this mean is dropped, or None if the rule keeps it."""
        if not np.isfinite(mean):
            return f"{self.column}: no finite values"
        if (self.op == "<" and mean < self.value) or (self.op == ">" and mean > self.value):
            word = "below" if self.op == "<" else "above"
            return f"mean {self.column} {mean:.4g} {word} {self.value:g}"
        return None


def prune_clusters(
    means: dict[str, np.ndarray], rules: list[PruneRule]
) -> tuple[np.ndarray, list[list[str]]]:
    """``(pruned bool[k], reasons per cluster)`` from per-cluster means of each column.

    Example::

        prune_clusters({"q": np.array([3.5, 2.0])}, [PruneRule.parse("q<3")])
        # -> (array([False, True]), [[], ["mean q 2 below 3"]])
    """
    k = len(next(iter(means.values()))) if means else 0
    for rule in rules:
        if rule.column not in means:
            raise ConfigError(
                f"--prune column {rule.column!r} is not a numeric annotation column",
                hint=f"numeric columns: {', '.join(sorted(means)) or 'none'}",
            )
        k = len(means[rule.column])
    reasons: list[list[str]] = [[] for _ in range(k)]
    for rule in rules:
        for c, mean in enumerate(means[rule.column]):
            why = rule.drops(float(mean))
            if why:
                reasons[c].append(why)
    pruned = np.array([bool(r) for r in reasons], dtype=bool)
    return pruned, reasons


def merge_centroids(
    centroids: np.ndarray,
    *,
    n_topics: int | None = None,
    distance_threshold: float | None = None,
    linkage: str = "ward",
    sizes: np.ndarray | None = None,
) -> np.ndarray:
    """Topic id of each centroid: agglomerative merging by Euclidean centroid distance.

    Exactly one of ``n_topics`` (cut into that many groups, or all of them if there are
    fewer centroids) and ``distance_threshold`` (merge while the linkage distance is
    below it) is given. Topics are numbered by ``sizes`` summed per topic, largest
    first (ties: the topic holding the lowest centroid index first).

    Example::

        merge_centroids(np.array([[0, 0], [0, 0.1], [5, 5]]), n_topics=2)  # -> [0, 0, 1]
    """
    if (n_topics is None) == (distance_threshold is None):
        raise ConfigError("give exactly one of --topics and --merge-distance")
    if linkage not in LINKAGES:
        raise ConfigError(f"--linkage must be one of {', '.join(LINKAGES)}, got {linkage!r}")
    if n_topics is not None and n_topics < 1:
        raise ConfigError(f"--topics must be >= 1, got {n_topics}")
    if distance_threshold is not None and distance_threshold <= 0:
        raise ConfigError(f"--merge-distance must be > 0, got {distance_threshold}")
    centroids = np.asarray(centroids, dtype=np.float64)
    n = len(centroids)
    if n == 0:
        return np.zeros(0, dtype=np.int32)
    if n == 1:
        raw = np.zeros(1, dtype=np.int64)
    else:
        from scipy.cluster.hierarchy import fcluster
        from scipy.cluster.hierarchy import linkage as scipy_linkage

        tree = scipy_linkage(centroids, method=linkage, metric="euclidean")
        if n_topics is not None:
            raw = fcluster(tree, t=min(n_topics, n), criterion="maxclust")
        else:
            # fcluster merges while the cophenetic distance is <= t; "below" means < t
            t = np.nextafter(float(distance_threshold), -np.inf)
            raw = fcluster(tree, t=t, criterion="distance")
    return _order_by_size(raw, np.ones(n) if sizes is None else np.asarray(sizes, float))


def _order_by_size(raw: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Renumber group labels 0.. by total size (desc), then by first member (asc)."""
    groups = np.unique(raw)
    total = np.array([sizes[raw == g].sum() for g in groups])
    first = np.array([np.flatnonzero(raw == g)[0] for g in groups])
    order = np.lexsort((first, -total))
    new_id = np.empty(len(groups), dtype=np.int32)
    new_id[order] = np.arange(len(groups), dtype=np.int32)
    return new_id[np.searchsorted(groups, raw)]
