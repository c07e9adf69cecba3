"""A smoothed bigram model's cross-entropy: the token-statistics baseline the proxy-LM
benchmarks print beside every arm (tiny proxies mostly measure token statistics, so a
bigram that ranks arms the same way says that is what the proxies saw)."""

from __future__ import annotations

import numpy as np


def bigram_nats(train: np.ndarray, target: np.ndarray, vocab: int, mu: float = 50.0) -> float:
    """Target cross-entropy (nats/token) of a bigram fitted on ``train`` token ids, with
    Dirichlet smoothing (``mu``) towards an add-one unigram prior.

    Example::

        bigram_nats(np.array([1, 2, 1, 2]), np.array([1, 2]), vocab=3)
    """
    uni = np.bincount(train, minlength=vocab).astype(np.float64) + 1.0
    uni /= uni.sum()
    pairs = train[:-1].astype(np.int64) * vocab + train[1:]
    codes, counts = np.unique(pairs, return_counts=True)
    ctx = np.bincount(train[:-1], minlength=vocab).astype(np.float64)
    q = target[:-1].astype(np.int64) * vocab + target[1:]
    pos = np.minimum(np.searchsorted(codes, q), len(codes) - 1)
    c_ab = np.where(codes[pos] == q, counts[pos], 0).astype(np.float64)
    p = (c_ab + mu * uni[target[1:]]) / (ctx[target[:-1]] + mu)
    return float(-np.log(p).mean())
