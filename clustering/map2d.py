"""A 2-D picture of the embedding space for the report: t-SNE (or PCA) of a sample.

t-SNE runs on the first 30 principal components (the usual speed-up; it changes little
for 384-d sentence embeddings) with a seeded PCA initialisation, so the picture is the
same on every run. Coordinates are scaled to [0, 1].
"""

from __future__ import annotations

import numpy as np

from assay.errors import ConfigError


def project_2d(vectors: np.ndarray, *, method: str = "tsne", seed: int = 0) -> np.ndarray:
    """``[n, 2]`` float32 coordinates in [0, 1] of ``[n, dim]`` vectors.

    Example::

        xy = project_2d(embeddings[:3000], method="tsne", seed=0)
    """
    x = np.asarray(vectors, dtype=np.float32)
    n = len(x)
    if n == 0:
        return np.zeros((0, 2), dtype=np.float32)
    if n < 3:
        xy = np.zeros((n, 2))
        xy[:, 0] = np.arange(n)
        return _unit(xy)
    from sklearn.decomposition import PCA

    if method == "pca":
        xy = PCA(n_components=2, random_state=seed).fit_transform(x)
    elif method == "tsne":
        from sklearn.manifold import TSNE

        reduced = PCA(n_components=min(30, n - 1, x.shape[1]), random_state=seed).fit_transform(x)
        perplexity = float(min(30.0, max(2.0, (n - 1) / 3)))
        # 500 iterations (sklearn: 1,000): the picture is settled by then at half the time
        tsne = TSNE(2, perplexity=perplexity, init="pca", random_state=seed, max_iter=500)
        xy = tsne.fit_transform(reduced)
    else:
        raise ConfigError(f"--map-method must be tsne or pca, got {method!r}")
    return _unit(xy)


def _unit(xy: np.ndarray) -> np.ndarray:
    lo, hi = xy.min(0), xy.max(0)
    return ((xy - lo) / np.where(hi > lo, hi - lo, 1.0)).astype(np.float32)
