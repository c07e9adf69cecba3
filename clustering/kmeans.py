"""k-means on FAISS with the scikit-learn estimator contract.

``fit`` trains ``faiss.Kmeans`` on a seeded random sample of the rows (FAISS would
subsample too, at 256 points per centroid, but silently and with its own RNG; we draw
the sample ourselves so that it is recorded and the same with or without a GPU) and then
assigns every row in chunks. ``predict`` assigns new rows to the frozen centroids, so a
corpus that grows keeps its cluster ids.

``spherical=True`` is cosine k-means: rows are L2-normalised, centroids are renormalised
after each update, and a row goes to the centroid of highest inner product. Distances
returned by :meth:`KMeans.assign` are always squared Euclidean (for spherical, between
normalised vectors: ``2 - 2 cos``), so they mean the same in both modes.

A GPU is used when faiss-gpu is installed and sees one (``gpu="auto"``).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

from assay.errors import AssayError, ConfigError

GPU_CHOICES = ("auto", "yes", "no")
INITS = ("random", "k-means++")


AVX512_SKYLAKEX = ("avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl")


def _force_skylakex() -> bool:
    """True on Linux AVX-512 CPUs when nobody chose an OpenBLAS core type.

    The OpenBLAS 0.3.15 bundled in the faiss-cpu wheels does not know recent Xeons
    (Sapphire/Emerald Rapids: it logs ``Core: Prescott``) and falls back to SSE3 kernels;
    its Cooperlake kernels were as slow here. With the SkylakeX kernels FAISS's flat
    search (hence k-means) ran 3x faster (50k x 1000 x 384: 1.4 s -> 0.45 s).
    """
    if "OPENBLAS_CORETYPE" in os.environ or not sys.platform.startswith("linux"):
        return False
    try:
        flags = set()
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        return False
    return all(flag in flags for flag in AVX512_SKYLAKEX)


def import_faiss() -> Any:
    """``import faiss``, with its bundled OpenBLAS on fast kernels (see _force_skylakex).

    The variable is set only while FAISS's own OpenBLAS loads (it reads it once, at load)
    and removed afterwards, so numpy's, scipy's and torch's BLAS are left alone."""
    if "faiss" in sys.modules:
        return sys.modules["faiss"]
    force = _force_skylakex()
    if force:
        os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"
    try:
        import faiss
    finally:
        if force:
            del os.environ["OPENBLAS_CORETYPE"]
    faiss.assay_openblas_coretype = "SkylakeX (forced)" if force else "auto"
    return faiss


def faiss_gpus() -> int:
    """Number of GPUs FAISS can use (0 with faiss-cpu)."""
    faiss = import_faiss()

    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get is not None else 0


def resolve_gpu(gpu: str | bool) -> bool:
    if isinstance(gpu, bool):
        gpu = "yes" if gpu else "no"
    if gpu not in GPU_CHOICES:
        raise ConfigError(f"--gpu must be one of {', '.join(GPU_CHOICES)}, got {gpu!r}")
    n = faiss_gpus()
    if gpu == "yes" and n == 0:
        raise AssayError(
            "--gpu yes, but FAISS sees no GPU",
            hint="install faiss-gpu (pip install faiss-gpu-cu12) on a machine with CUDA",
        )
    return n > 0 and gpu != "no"


def _float32(x: Any) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D array [rows, dim], got shape {x.shape}")
    return np.ascontiguousarray(x, dtype=np.float32)


def _normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def kmeans_plusplus(x: np.ndarray, k: int, *, seed: int = 0) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii): each next centroid is a row drawn with
    probability proportional to its squared distance to the nearest centroid so far."""
    rng = np.random.default_rng(seed)
    n = len(x)
    centers = np.empty((k, x.shape[1]), dtype=np.float32)
    first = int(rng.integers(n))
    centers[0] = x[first]
    d2 = ((x - x[first]) ** 2).sum(1, dtype=np.float64)
    for j in range(1, k):
        total = d2.sum()
        i = int(rng.choice(n, p=d2 / total)) if total > 0 else int(rng.integers(n))
        centers[j] = x[i]
        d2 = np.minimum(d2, ((x - x[i]) ** 2).sum(1, dtype=np.float64))
    return centers


class KMeans:
    """k-means (optionally spherical) trained with FAISS on a sample.

    Args:
        n_clusters: number of clusters k.
        spherical: cosine k-means on L2-normalised rows (for sentence embeddings).
        n_iter: Lloyd iterations (FAISS runs exactly this many).
        n_init: runs from different initial centroids; the best objective wins.
        init: ``random`` (rows drawn at random, FAISS's way: cheap at k=1,000) or
            ``k-means++`` (D²-weighted draws: reliably one centroid per well-separated
            group, but k passes over the sample; for small k).
        sample_size: rows to train on (``None``: ``256 * n_clusters``, at most all rows).
        seed: seeds the sample and FAISS's initial centroids.
        gpu: ``auto`` | ``yes`` | ``no`` (``yes`` fails without faiss-gpu and a GPU).
        batch_size: rows per chunk when assigning.
        init_centroids: optional ``[n_clusters, dim]`` start (else random sample rows).

    Fitted attributes: ``centroids_`` ``[k, dim]`` float32, ``labels_`` and
    ``distances_`` of the rows given to ``fit``, ``inertia_`` (sum of ``distances_``),
    ``objective_`` (FAISS's objective after each iteration, on the training sample),
    ``n_features_in_``, ``n_train_`` (rows trained on), ``gpu_`` (used a GPU).

    Example::

        km = KMeans(64, spherical=True, seed=0).fit(vectors)
        km.predict(new_vectors)  # cluster ids under the frozen centroids
    """

    def __init__(
        self,
        n_clusters: int = 1000,
        *,
        spherical: bool = False,
        n_iter: int = 20,
        n_init: int = 1,
        init: str = "random",
        sample_size: int | None = None,
        seed: int = 0,
        gpu: str | bool = "auto",
        batch_size: int = 65536,
        init_centroids: np.ndarray | None = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.spherical = spherical
        self.n_iter = n_iter
        self.n_init = n_init
        self.init = init
        self.sample_size = sample_size
        self.seed = seed
        self.gpu = gpu
        self.batch_size = batch_size
        self.init_centroids = init_centroids

    def _check_params(self, n_rows: int) -> None:
        if self.n_clusters < 1:
            raise ConfigError(f"--k must be >= 1, got {self.n_clusters}")
        if self.n_clusters > n_rows:
            raise ConfigError(
                f"--k {self.n_clusters} is more than the {n_rows} documents to cluster",
                hint="choose k well below the number of documents (e.g. documents / 100)",
            )
        if self.n_iter < 1:
            raise ConfigError(f"--n-iter must be >= 1, got {self.n_iter}")
        if self.init not in INITS:
            raise ConfigError(f"--init must be one of {', '.join(INITS)}, got {self.init!r}")
        if self.n_init < 1:
            raise ConfigError(f"--n-init must be >= 1, got {self.n_init}")
        if self.sample_size is not None and self.sample_size < self.n_clusters:
            raise ConfigError(
                f"--sample-size must be >= k ({self.n_clusters}), got {self.sample_size}"
            )

    def train_rows(self, n_rows: int) -> np.ndarray:
        """Sorted indices of the rows ``fit`` trains on (a seeded uniform sample)."""
        self._check_params(n_rows)
        size = self.sample_size if self.sample_size is not None else 256 * self.n_clusters
        if size >= n_rows:
            return np.arange(n_rows)
        rng = np.random.default_rng(self.seed)
        return np.sort(rng.choice(n_rows, size=size, replace=False))

    def fit(self, X: Any, y: Any = None) -> KMeans:
        """Train on a sample of ``X`` and assign every row of ``X``."""
        X = np.asarray(X)
        rows = self.train_rows(X.shape[0])
        self.fit_sample(X[rows] if len(rows) < X.shape[0] else X)
        self.labels_, self.distances_ = self.assign(X)
        self.inertia_ = float(self.distances_.astype(np.float64).sum())
        return self

    def fit_sample(self, sample: Any) -> KMeans:
        """Train on exactly ``sample`` (already drawn, e.g. from on-disk shards); no
        ``labels_``: assign the corpus afterwards with :meth:`assign` in chunks."""
        faiss = import_faiss()
        x = _float32(sample)
        self._check_params(x.shape[0])
        if self.spherical:
            x = _normalize(x)
        gpu = resolve_gpu(self.gpu)

        def run(init: np.ndarray | None, nredo: int, seed: int) -> Any:
            km = faiss.Kmeans(
                x.shape[1],
                self.n_clusters,
                niter=self.n_iter,
                nredo=nredo,
                spherical=self.spherical,
                seed=seed,
                gpu=gpu,
                # the sample is ours; FAISS must not subsample again or warn about it
                max_points_per_centroid=max(x.shape[0], 1),
                min_points_per_centroid=1,
            )
            km.train(x, init_centroids=init)
            return km

        if self.init_centroids is not None:
            km = run(_float32(self.init_centroids), 1, self.seed)
        elif self.init == "random":
            km = run(None, self.n_init, self.seed)  # FAISS redoes from other random rows
        else:
            runs = [
                run(kmeans_plusplus(x, self.n_clusters, seed=self.seed + r), 1, self.seed + r)
                for r in range(self.n_init)
            ]
            # FAISS's objective: sum of distances (L2, lower is better) or of inner
            # products (spherical, higher is better)
            final = [r.obj[-1] * (-1 if self.spherical else 1) for r in runs]
            km = runs[int(np.argmin(final))]
        self.centroids_ = np.ascontiguousarray(km.centroids, dtype=np.float32)
        self.objective_ = [float(v) for v in km.obj]
        self.n_features_in_ = x.shape[1]
        self.n_train_ = x.shape[0]
        self.gpu_ = gpu
        self._index = None
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "centroids_"):
            raise AssayError("this KMeans is not fitted yet: call fit() first")

    @classmethod
    def from_centroids(
        cls, centroids: np.ndarray, *, spherical: bool, gpu: str | bool = "auto"
    ) -> KMeans:
        """A fitted estimator with frozen centroids (to assign a grown corpus)."""
        centroids = _float32(centroids)
        km = cls(centroids.shape[0], spherical=spherical, gpu=gpu)
        km.centroids_ = centroids
        km.objective_ = []
        km.n_features_in_ = centroids.shape[1]
        km.n_train_ = 0
        km.gpu_ = resolve_gpu(gpu)
        km._index = None
        return km

    def _search_index(self) -> Any:
        if getattr(self, "_index", None) is None:
            faiss = import_faiss()

            d = self.centroids_.shape[1]
            index = faiss.IndexFlatIP(d) if self.spherical else faiss.IndexFlatL2(d)
            if self.gpu_:
                index = faiss.index_cpu_to_all_gpus(index)
            index.add(self.centroids_)
            self._index = index
        return self._index

    def assign(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Nearest centroid of each row: ``(labels int32, squared distances float32)``.

        Rows are processed ``batch_size`` at a time, so memory stays at one chunk (in
        float32) whatever the size or dtype of ``X`` (a float16 memmap works)."""
        self._check_fitted()
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"expected rows of dim {self.n_features_in_}, got shape {X.shape}")
        index = self._search_index()
        labels = np.empty(X.shape[0], dtype=np.int32)
        dist = np.empty(X.shape[0], dtype=np.float32)
        for start in range(0, X.shape[0], self.batch_size):
            chunk = _float32(X[start : start + self.batch_size])
            if self.spherical:
                chunk = _normalize(chunk)
            d, i = index.search(chunk, 1)
            labels[start : start + len(chunk)] = i[:, 0]
            d = d[:, 0]
            dist[start : start + len(chunk)] = np.maximum(2.0 - 2.0 * d, 0) if self.spherical else d
        return labels, dist

    def predict(self, X: Any) -> np.ndarray:
        """Cluster id of each row under the fitted (frozen) centroids."""
        return self.assign(X)[0]

    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray:
        return self.fit(X).labels_

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_index"] = None  # FAISS indexes do not pickle; rebuilt on first use
        return state
