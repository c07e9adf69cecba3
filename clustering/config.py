"""Settings of ``assay cluster``: one typed dataclass; ``configs/cluster.yaml`` mirrors it.

Flags override the YAML file, which overrides these defaults. ``validate`` checks every
value early and names the flag in its message.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assay.errors import ConfigError

MAP_METHODS = ("tsne", "pca")


@dataclass
class ClusterConfig:
    """How to cluster, prune, merge and report."""

    k: int = 1000
    """Number of k-means clusters (CLIMB: 1,000). Keep it well below the document count:
    ~100 documents per cluster or more gives stable means and terms."""
    spherical: bool = True
    """Cosine k-means (unit-length rows and centroids), right for sentence embeddings."""
    n_iter: int = 20
    """k-means (Lloyd) iterations."""
    n_init: int = 1
    """k-means runs from different starts; the best is kept."""
    init: str = "random"
    """Initial centroids: random (documents drawn at random, as FAISS; cheap at k=1,000) |
    k-means++ (D²-weighted draws, one pass per centroid; better for small k)."""
    sample_size: int | None = None
    """Documents k-means trains on (a seeded uniform sample); null: 256 per cluster
    (FAISS's default), at most all. Every document is assigned afterwards. Measured on
    1M x 384 (benchmarks/kmeans_faiss_vs_sklearn.py): 256 per cluster cost +0.11% SSE at
    k=1,000, 64 per cluster +0.22-0.24% at k=1,000 and 4,000, for 2-4x less time."""
    seed: int = 0
    """Seeds the training sample, the initial centroids, term samples and the 2-D map."""
    gpu: str = "auto"
    """FAISS on GPU: auto (when faiss-gpu sees one) | yes | no."""
    prune: list[str] = field(default_factory=list)
    """Prune rules ``COLUMN<VALUE`` (drop clusters whose mean is below VALUE) or
    ``COLUMN>VALUE`` (above). CLIMB: quality classifier mean < 3.0. Empty: no pruning."""
    topics: int | None = 16
    """Merge the kept clusters into this many topics (CLIMB: 16). Null with merge_distance."""
    merge_distance: float | None = None
    """Merge kept centroids closer than this (Euclidean; CLIMB: 1.5) instead of a count."""
    linkage: str = "ward"
    """Agglomerative linkage for merging: ward | average | complete | single. Ward gave the
    most balanced topics and the best agreement with the demo's domains (NMI 0.69 vs 0.60
    for average at 64 -> 10); with merge_distance, average cuts at a mean centroid
    distance, ward at Ward's merge cost."""
    quality_columns: list[str] | None = None
    """Numeric annotation columns to summarise (fnmatch patterns); null: every float
    column except confidences (``*.conf``, ``*.prob``) and ``scored_fraction``."""
    label_columns: list[str] = field(default_factory=lambda: ["domain"])
    """String columns whose make-up per cluster is reported (and NMI against them), where
    present. Domain labels a web corpus lacks, but a labelled sample shows what clusters mean."""
    top_terms: int = 10
    """c-TF-IDF terms reported per cluster and topic."""
    terms_docs: int = 200
    """Documents sampled per cluster to count terms (first 3,000 characters of each)."""
    representatives: int = 3
    """Documents closest to the centroid shown per cluster."""
    map_points: int = 2000
    """Documents sampled for the 2-D map."""
    map_method: str = "tsne"
    """2-D projection: tsne (clearer groups; 10-40 s for 2,000 points on 2 cores) | pca
    (instant)."""

    def validate(self) -> ClusterConfig:
        from clustering.kmeans import GPU_CHOICES, INITS
        from clustering.prune_merge import LINKAGES, PruneRule

        positive = {"k": self.k, "n_iter": self.n_iter, "n_init": self.n_init}
        positive |= {"top_terms": self.top_terms}
        positive |= {"terms_docs": self.terms_docs, "map_points": self.map_points}
        for name, value in positive.items():
            if not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"--{name.replace('_', '-')} must be an integer >= 1, got {value}"
                )
        if self.representatives < 0:
            raise ConfigError(f"--representatives must be >= 0, got {self.representatives}")
        if self.sample_size is not None and self.sample_size < self.k:
            raise ConfigError(f"--sample-size must be >= --k ({self.k}), got {self.sample_size}")
        if self.init not in INITS:
            raise ConfigError(f"--init must be one of {', '.join(INITS)}, got {self.init!r}")
        if self.gpu not in GPU_CHOICES:
            raise ConfigError(f"--gpu must be one of {', '.join(GPU_CHOICES)}, got {self.gpu!r}")
        if (self.topics is None) == (self.merge_distance is None):
            raise ConfigError(
                "give exactly one of --topics and --merge-distance",
                hint="--merge-distance replaces the default --topics; do not pass both",
            )
        if self.topics is not None and self.topics < 1:
            raise ConfigError(f"--topics must be >= 1, got {self.topics}")
        if self.merge_distance is not None and self.merge_distance <= 0:
            raise ConfigError(f"--merge-distance must be > 0, got {self.merge_distance}")
        if self.linkage not in LINKAGES:
            raise ConfigError(
                f"--linkage must be one of {', '.join(LINKAGES)}, got {self.linkage!r}"
            )
        if self.map_method not in MAP_METHODS:
            raise ConfigError(
                f"--map-method must be one of {', '.join(MAP_METHODS)}, got {self.map_method!r}"
            )
        for rule in self.prune:
            PruneRule.parse(rule)
        return self

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> ClusterConfig:
        import yaml

        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
        return cls().replace(**data)

    def replace(self, **changes: Any) -> ClusterConfig:
        """A copy with ``changes``; unknown names are refused with the valid ones.

        Setting ``merge_distance`` alone clears the default ``topics`` (they exclude
        each other)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ConfigError(
                f"unknown cluster setting(s) {', '.join(unknown)}",
                hint=f"valid: {', '.join(sorted(names))}",
            )
        if changes.get("merge_distance") is not None and "topics" not in changes:
            changes["topics"] = None
        if changes.get("topics") is not None and "merge_distance" not in changes:
            changes["merge_distance"] = None
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
