"""DSIR: how much a document looks like the target, by hashed n-gram importance weights.

Data Selection with Importance Resampling (Xie et al. 2023) scores each raw document x by

    log w(x) = sum_j c_j(x) * (log p_target[j] - log p_raw[j])

where ``c_j(x)`` counts the document's hashed n-gram features (lower-cased unigrams and
bigrams into 10,000 buckets: the paper's defaults) and ``p_target`` / ``p_raw`` are the
bucket distributions of the target and the raw pool, add-one smoothed. Resampling the pool
in proportion to ``w`` (or Gumbel top-k on ``log w``) moves its n-gram statistics toward
the target's, which is what tiny proxies measure (benchmarks/RESULTS.md): DSIR is the
cheap baseline any target-aware selector must beat, and a selector in its own right.

Columns:

- ``dsir.score``: ``log w(x)`` (nats), the paper's importance weight; it grows with length;
- ``dsir.per_ngram``: ``log w(x)`` over the document's feature count, a length-free
  similarity for score expressions that mix it with other columns.

Counting uses scikit-learn's ``HashingVectorizer`` (MurmurHash3, C speed, no vocabulary to
store); both corpora are read streaming in batches, so memory is the two bucket vectors.
The rater is deterministic for its inputs, so an interrupted ``assay annotate`` resumes to
the same rows; its manifest entry records both corpora and a hash of the weights.

Example::

    assay annotate data/ -o out/ann --rater dsir=val/wiki.jsonl -O dsir.raw=data/
    assay select out/ann --score '`dsir.score`' --budget-tokens 1000000 -o out/sel
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from assay.errors import ConfigError
from raters.base import Columns, Rater

INSTALL_HINT = "pip install 'assay[cluster]' (scikit-learn)"


def log_ratio(target: np.ndarray, raw: np.ndarray, smoothing: float = 1.0) -> np.ndarray:
    """``log p_target - log p_raw`` per bucket, add-``smoothing`` (pure function)."""
    t = (np.asarray(target, np.float64) + smoothing) / (np.sum(target) + smoothing * len(target))
    r = (np.asarray(raw, np.float64) + smoothing) / (np.sum(raw) + smoothing * len(raw))
    return np.log(t) - np.log(r)


class DSIRRater(Rater):
    """Importance weight of each document toward a target corpus (see the module docs).

    Args:
        target: corpus files / folders / globs of the target (the text you want more of).
        raw: the raw pool the weights are relative to (usually the corpus being rated).
        buckets: hashed feature buckets (paper: 10,000).
        ngrams: highest n-gram order; 2 = unigrams and bigrams (paper).
        smoothing: add-k smoothing of both bucket distributions.
        text_field: the record field holding the text in ``target`` and ``raw``.
        batch: documents counted per vectoriser call.
    """

    name = "dsir"
    version = "1"

    def __init__(
        self,
        target: str | Sequence[str] | None = None,
        raw: str | Sequence[str] | None = None,
        *,
        buckets: int = 10_000,
        ngrams: int = 2,
        smoothing: float = 1.0,
        text_field: str = "text",
        batch: int = 1000,
    ) -> None:
        if not target or not raw:
            raise ConfigError(
                "the dsir rater needs a target corpus and the raw pool",
                hint="--rater dsir=TARGET -O dsir.raw=POOL (in a pipeline both are filled in)",
            )
        if buckets < 2 or ngrams < 1 or smoothing <= 0 or batch < 1:
            raise ConfigError("dsir: buckets >= 2, ngrams >= 1, smoothing > 0, batch >= 1")
        try:
            from sklearn.feature_extraction.text import HashingVectorizer
        except ImportError as e:  # pragma: no cover
            raise ConfigError(f"scikit-learn is missing ({e})", hint=INSTALL_HINT) from None
        self.target = [str(target)] if isinstance(target, str | os.PathLike) else list(target)
        self.raw = [str(raw)] if isinstance(raw, str | os.PathLike) else list(raw)
        self.buckets, self.ngrams, self.smoothing = buckets, ngrams, smoothing
        self.batch, self.field = batch, text_field
        self.vectorizer = HashingVectorizer(
            n_features=buckets,
            ngram_range=(1, ngrams),
            alternate_sign=False,
            norm=None,
            lowercase=True,
            token_pattern=r"(?u)\b\w+\b",  # one-letter words count too (paper: wordpunct)
            dtype=np.float64,
        )
        self.target_counts_, self.target_docs_ = self._count(self.target)
        self.raw_counts_, self.raw_docs_ = self._count(self.raw)
        self.log_ratio_ = log_ratio(self.target_counts_, self.raw_counts_, smoothing)

    def _count(self, inputs: list[str]) -> tuple[np.ndarray, int]:
        from assay.corpus import read_documents
        from assay.records import Fields

        total = np.zeros(self.buckets)
        docs, texts = 0, []
        for record in read_documents(inputs, Fields(text=self.field)):
            texts.append(record[self.field])
            if len(texts) == self.batch:
                total += np.asarray(self.vectorizer.transform(texts).sum(axis=0)).ravel()
                docs, texts = docs + len(texts), []
        if texts:
            total += np.asarray(self.vectorizer.transform(texts).sum(axis=0)).ravel()
            docs += len(texts)
        if docs == 0:
            raise ConfigError(f"dsir: no documents in {', '.join(inputs)}")
        return total, docs

    def score(self, texts: Sequence[str]) -> Columns:
        X = self.vectorizer.transform(list(texts))
        logw = np.asarray(X @ self.log_ratio_, np.float64).ravel()
        n = np.asarray(X.sum(axis=1), np.float64).ravel()
        return {
            "score": logw.astype(np.float32),
            "per_ngram": np.where(n > 0, logw / np.maximum(n, 1), 0.0).astype(np.float32),
        }

    def describe(self) -> dict[str, Any]:
        digest = hashlib.sha256(self.log_ratio_.astype("<f8").tobytes()).hexdigest()
        return {
            **super().describe(),
            "target": {"inputs": self.target, "docs": self.target_docs_},
            "raw": {"inputs": self.raw, "docs": self.raw_docs_},
            "features": f"hashed 1..{self.ngrams}-grams of lower-cased words",
            "buckets": self.buckets,
            "smoothing": self.smoothing,
            "weights_sha256": digest,
        }
