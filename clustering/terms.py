"""Distinguishing terms of each cluster: class-based TF-IDF (c-TF-IDF, as in BERTopic).

All documents of a class are treated as one document. The weight of term ``t`` in class
``c`` is ``tf(t, c) * log(1 + A / f(t))``: ``tf`` is the term's frequency within the class
(L1-normalised), ``f(t)`` its count over all classes and ``A`` the average number of words
per class. A term frequent in one class and rare elsewhere ranks first; a term frequent
everywhere ("the", "function") sinks even if it is not a stop word.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

WORD_RE = re.compile(r"[^\W\d_][\w'-]*[^\W_]", re.UNICODE)  # letters first, 2+ chars

# Short English function words; the IDF term already damps frequent words, this only
# keeps the top of the list readable.
STOP_WORDS = frozenset(
    """
    a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for
    from further had has have having he her here hers herself him himself his how i if in
    into is it its itself just me more most my myself no nor not now of off on once only or
    other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up
    very was we were what when where which while who whom why will with would you your
    yours yourself yourselves also may might must shall us one two
    """.split()  # noqa: SIM905 (a word list reads best as words)
)


def tokenize(text: str, max_chars: int = 5000) -> list[str]:
    """Lower-cased words of the first ``max_chars`` characters, stop words removed."""
    words = WORD_RE.findall(text[:max_chars].lower())
    return [w for w in words if w not in STOP_WORDS and len(w) <= 40]


class TermCounter:
    """Term counts per group (cluster), kept as integer ids: one vocabulary for all groups,
    so 1,000 clusters x 200 documents cost a few tens of MB, not a dict per cluster.

    Example::

        tc = TermCounter()
        tc.add(0, ["Sourdough bread with rye flour."])
        tc.add(1, ["The kernel schedules threads."])
        ctfidf_top_terms(tc.matrix(2), tc.terms(), top_n=2, min_count=1)
    """

    def __init__(self, max_chars: int = 3000) -> None:
        self.max_chars = max_chars
        self.vocab: dict[str, int] = {}
        self._groups: list[np.ndarray] = []
        self._ids: list[np.ndarray] = []
        self._counts: list[np.ndarray] = []

    def add(self, group: int, texts: Iterable[str]) -> None:
        vocab = self.vocab
        ids = [vocab.setdefault(w, len(vocab)) for t in texts for w in tokenize(t, self.max_chars)]
        if not ids:
            return
        uniq, counts = np.unique(np.array(ids, dtype=np.int64), return_counts=True)
        self._groups.append(np.full(len(uniq), group, dtype=np.int64))
        self._ids.append(uniq)
        self._counts.append(counts)

    def terms(self) -> list[str]:
        return sorted(self.vocab, key=self.vocab.__getitem__)

    def matrix(self, n_groups: int) -> Any:
        """``[n_groups, vocabulary]`` scipy CSR matrix of counts."""
        from scipy.sparse import csr_matrix

        if not self._ids:
            return csr_matrix((n_groups, len(self.vocab)), dtype=np.float64)
        rows, cols = np.concatenate(self._groups), np.concatenate(self._ids)
        vals = np.concatenate(self._counts).astype(np.float64)
        m = csr_matrix((vals, (rows, cols)), shape=(n_groups, len(self.vocab)))
        m.sum_duplicates()
        return m


def ctfidf_top_terms(
    counts: Any, terms: Sequence[str], top_n: int = 10, min_count: int = 2
) -> list[list[tuple[str, float]]]:
    """The ``top_n`` highest-weighted terms of each row (class) of a count matrix.

    ``counts`` is ``[classes, vocabulary]`` (scipy sparse or numpy). Terms seen fewer than
    ``min_count`` times in all classes together are ignored (typos, ids). An empty
    class gets an empty list; ties are broken alphabetically.

    Example::

        ctfidf_top_terms(np.array([[5, 1, 0], [0, 1, 4]]), ["a", "b", "c"], top_n=1)
        # -> [[("a", ...)], [("c", ...)]]
    """
    from scipy.sparse import csr_matrix

    m = csr_matrix(counts, dtype=np.float64)
    freq = np.asarray(m.sum(axis=0)).ravel()
    words_per_class = np.asarray(m.sum(axis=1)).ravel()
    avg_words = words_per_class.mean() if len(words_per_class) else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        idf = np.where(freq >= max(min_count, 1), np.log1p(avg_words / freq), 0.0)
    rank = np.argsort(np.argsort(np.asarray(terms, dtype=object), kind="stable"), kind="stable")
    out = []
    for c in range(m.shape[0]):
        row = m.getrow(c)
        ids, n = row.indices, row.data
        if words_per_class[c] == 0 or not len(ids):
            out.append([])
            continue
        weight = n / words_per_class[c] * idf[ids]
        ok = weight > 0
        ids, weight = ids[ok], weight[ok]
        order = np.lexsort((rank[ids], -weight))[:top_n]
        out.append([(terms[ids[j]], round(float(weight[j]), 6)) for j in order])
    return out
