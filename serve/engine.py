"""What a service worker loads once and computes per batch; no HTTP and no BentoML here.

``Engine.load(settings)`` builds the raters exactly as ``assay annotate`` does
(``raters.registry.build_rater`` with the same options), so the service returns the same
scores for the same text; the embedder of ``/v1/embed``; and, with ``clusters``, the
frozen centroids of a clusters folder with its topics and pruning. Each rater is warmed
up on one text at load, which also tells which columns it returns (``/v1/raters``).

The batch functions take *jobs* (one per request) and return one answer per job, the
shape the adaptive batcher hands over: several requests' texts go through one model
call, and each request gets its own slice back.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assay import manifest as mf
from assay.errors import ConfigError, ManifestMismatchError
from serve.settings import ServeSettings, rater_name

# One text of a rate job: (text, names of the raters asked for).
RateItem = tuple[str, tuple[str, ...]]
WARMUP_TEXT = "Warm-up: the service rates this sentence once when it starts."
# What must agree between the clusters' embeddings and the embedder here.
EMBED_KEYS = ("weights_sha256", "dim", "normalize", "max_seq_length")
HIDDEN_INFO = ("model", "model_path", "backbone", "path")  # local paths: not the clients' business


def to_scalar(value: Any) -> Any:
    """A numpy value as a JSON scalar; NaN and infinities become None (JSON has no NaN)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def columns_to_rows(columns: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """``{column: array[n]}`` -> n dicts ``{column: scalar}``."""
    lists = {
        name: (values.tolist() if isinstance(values, np.ndarray) else list(values))
        for name, values in columns.items()
    }
    return [{name: to_scalar(vals[i]) for name, vals in lists.items()} for i in range(n)]


class Engine:
    """Loaded raters, embedder and clustering of one worker."""

    def __init__(
        self,
        raters: dict[str, Any],
        *,
        embedder: Any = None,
        cluster_embedder: Any = None,
        kmeans: Any = None,
        clusters: dict[str, Any] | None = None,
    ) -> None:
        self.raters = raters  # name -> Rater, in --rater order
        self.embedder = embedder
        self.cluster_embedder = cluster_embedder
        self.kmeans = kmeans
        self.clusters = clusters
        self.columns: dict[str, list[str]] = {}

    @classmethod
    def load(cls, settings: ServeSettings) -> Engine:
        from raters.registry import build_rater

        raters: dict[str, Any] = {}
        for ref in settings.raters:
            # The same options as `assay annotate --device --dtype --backend -O ...`.
            options = {"device": settings.device, "dtype": settings.dtype}
            if settings.backend != "auto":  # auto is every model rater's own default
                options["backend"] = settings.backend
            options |= settings.options.get(rater_name(ref), {})
            rater = build_rater(ref, **options)
            if rater.name in raters:
                raise ConfigError(f"--rater: two raters are named {rater.name!r}")
            raters[rater.name] = rater
        embedder = None
        if settings.embed_model is not None:
            from clustering.embed import Embedder

            embedder = Embedder(settings.embed_model, device=settings.device, dtype=settings.dtype)
            embedder.load()
        engine = cls(raters, embedder=embedder)
        if settings.clusters is not None:
            engine._load_clusters(Path(settings.clusters), settings)
        engine.warm_up()
        return engine

    def _load_clusters(self, folder: Path, settings: ServeSettings) -> None:
        from clustering.embed import Embedder
        from clustering.kmeans import KMeans

        manifest = mf.read_manifest(folder, kind="clusters")
        model = manifest["embeddings"]["model"]
        info = json.loads((folder / "clusters.json").read_text())
        centroids = np.load(folder / "centroids.npy")
        # The texts must be embedded as the clustered corpus was: same weights, same
        # token limit and character cut, else distances to the centroids mean nothing.
        embedder = self.embedder
        wanted = {k: model.get(k) for k in ("name", "max_seq_length", "max_chars", "normalize")}
        if embedder is None or any(embedder.describe().get(k) != v for k, v in wanted.items()):
            embedder = Embedder(
                model["name"],
                device=settings.device,
                dtype=settings.dtype,
                max_tokens=model.get("max_seq_length"),
                max_chars=model.get("max_chars"),
                normalize=bool(model.get("normalize", True)),
            ).load()
        mine = embedder.describe()
        differ = [k for k in EMBED_KEYS if k in model and model[k] != mine.get(k)]
        if differ:
            raise ManifestMismatchError(
                f"--clusters {folder}: its embeddings differ from {model['name']} here "
                f"in {', '.join(differ)}",
                hint="serve the clusters with the embedding model they were built on",
            )
        self.cluster_embedder = embedder
        self.kmeans = KMeans.from_centroids(centroids, spherical=info["spherical"], gpu="no")
        per_cluster = info["clusters"]
        self.clusters = {
            "path": folder.name,
            "k": int(info["k"]),
            "n_topics": info.get("n_topics"),
            "model": model["name"],
            "topic": np.array([c["topic"] for c in per_cluster], dtype=np.int64),
            "pruned": np.array([not c["kept"] for c in per_cluster], dtype=bool),
        }

    def warm_up(self) -> None:
        """Run every model once (first-call costs leave the first request) and note the
        columns of each rater."""
        for name, rater in self.raters.items():
            self.columns[name] = list(rater.score([WARMUP_TEXT]).keys())
        if self.embedder is not None:
            self.embedder.encode([WARMUP_TEXT])
        if self.cluster_embedder is not None and self.cluster_embedder is not self.embedder:
            self.cluster_embedder.encode([WARMUP_TEXT])

    # ---- batch functions (one answer per job) -----------------------------------------

    def rate(self, jobs: Sequence[Sequence[RateItem]]) -> list[list[dict[str, dict]]]:
        """Score every item of every job with the raters it asks for.

        Each rater sees, in one call, all the texts of the batch that asked for it."""
        flat = [item for job in jobs for item in job]
        out: list[dict[str, dict]] = [{} for _ in flat]
        for name, rater in self.raters.items():
            picked = [i for i, (_, wanted) in enumerate(flat) if name in wanted]
            if not picked:
                continue
            columns = rater.score([flat[i][0] for i in picked])
            for i, row in zip(picked, columns_to_rows(columns, len(picked)), strict=True):
                out[i][name] = row
        return _split(out, [len(job) for job in jobs])

    def embed(self, jobs: Sequence[Sequence[str]]) -> list[list[list[float]]]:
        assert self.embedder is not None
        flat = [text for job in jobs for text in job]
        vectors = self.embedder.encode(flat).tolist() if flat else []
        return _split(vectors, [len(job) for job in jobs])

    def assign(self, jobs: Sequence[Sequence[str]]) -> list[list[dict[str, Any]]]:
        assert self.cluster_embedder is not None and self.clusters is not None
        flat = [text for job in jobs for text in job]
        rows: list[dict[str, Any]] = []
        if flat:
            labels, dist = self.kmeans.assign(self.cluster_embedder.encode(flat))
            for c, d in zip(labels.tolist(), dist.tolist(), strict=True):
                rows.append(
                    {
                        "cluster": c,
                        "topic": int(self.clusters["topic"][c]),
                        "distance": float(d),
                        "pruned": bool(self.clusters["pruned"][c]),
                    }
                )
        return _split(rows, [len(job) for job in jobs])

    # ---- descriptions -----------------------------------------------------------------

    def describe_raters(self) -> list[dict[str, Any]]:
        out = []
        for name, rater in self.raters.items():
            info = rater.describe()
            spec = info.get("spec")
            if isinstance(spec, dict):
                spec = {k: v for k, v in spec.items() if k not in HIDDEN_INFO}
            out.append(
                {
                    "name": name,
                    "version": str(rater.version),
                    "kind": str(info.get("kind", name)),
                    "columns": self.columns.get(name, []),
                    "spec": spec,
                    "weights_sha256": info.get("weights_sha256"),
                }
            )
        return out

    def describe_clusters(self) -> dict[str, Any] | None:
        if self.clusters is None:
            return None
        return {k: self.clusters[k] for k in ("path", "k", "n_topics", "model")}


def _split(values: list[Any], sizes: list[int]) -> list[list[Any]]:
    out, start = [], 0
    for size in sizes:
        out.append(values[start : start + size])
        start += size
    return out
