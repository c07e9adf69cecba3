"""Word statistics and Gopher-style n-gram repetition, vectorised over a batch.

Words are RPv2's normalised words (``normalize(text).split()``), for all documents of a
batch laid end to end. Each word gets an integer id: the batch position of its first
occurrence *in the same document* (``dict.setdefault`` per document, which runs in C),
so equal ids mean "same word, same document". n-gram ids are built from (n-1)-gram ids
one word at a time and made dense with ``np.unique``; only n-grams whose (n-1)-gram
prefix and suffix both occur twice can occur twice, so each step sorts just those
candidates and the work shrinks quickly with n on natural text.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

import numpy as np

TOP_NGRAMS = (2, 3, 4)
DUPE_NGRAMS = (5, 6, 7, 8, 9, 10)


def _first_occurrence(words: list[str], offset: int):
    return map({}.setdefault, words, range(offset, offset + len(words)))


def word_signals(words_per_doc: Sequence[list[str]]) -> dict[str, np.ndarray]:
    """RPv2 word-level signals for each document's normalised words (float64 arrays).

    Returns ``rps_doc_word_count``, ``rps_doc_mean_word_length``,
    ``rps_doc_frac_unique_words``, ``rps_doc_unigram_entropy``,
    ``rps_doc_frac_chars_top_{2,3,4}gram`` and ``rps_doc_frac_chars_dupe_{5..10}grams``;
    every value is 0 for a document without words.

    >>> word_signals([["a", "b", "a"]])["rps_doc_frac_unique_words"]
    array([0.66666667])
    """
    n_docs = len(words_per_doc)
    n_words = np.fromiter(map(len, words_per_doc), np.int64, n_docs)
    bounds = np.concatenate([[0], np.cumsum(n_words)])  # doc d is words bounds[d]:bounds[d+1]
    total = int(bounds[-1])
    ids = np.fromiter(
        chain.from_iterable(map(_first_occurrence, words_per_doc, bounds[:-1].tolist())),
        np.int64,
        total,
    )
    lengths = np.fromiter(map(len, chain.from_iterable(words_per_doc)), np.int64, total)
    cum_chars = np.concatenate([[0], np.cumsum(lengths)])
    chars = (cum_chars[bounds[1:]] - cum_chars[bounds[:-1]]).astype(np.float64)

    def doc_of(positions: np.ndarray) -> np.ndarray:
        return np.searchsorted(bounds, positions, side="right") - 1

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        return np.divide(num, den, out=np.zeros(n_docs), where=den > 0)

    counts = np.bincount(ids, minlength=total)
    # One entry per distinct word of a document, at its first occurrence.
    types = np.flatnonzero(ids == np.arange(total))
    type_counts = counts[types].astype(np.float64)
    n_types = np.diff(np.searchsorted(types, bounds))
    # H = -sum (c/N) log(c/N) = log N - (1/N) sum c log c
    c_log_c = np.bincount(
        doc_of(types), weights=type_counts * np.log(type_counts), minlength=n_docs
    )
    safe_n = np.maximum(n_words, 1)
    out = {
        "rps_doc_word_count": n_words.astype(np.float64),
        "rps_doc_mean_word_length": ratio(chars, n_words),
        "rps_doc_frac_unique_words": ratio(n_types, n_words),
        "rps_doc_unigram_entropy": np.where(n_words > 0, np.log(safe_n) - c_log_c / safe_n, 0.0),
    }

    # pos: sorted start positions of the (n-1)-grams that occur twice or more in their
    # document; gid: their dense ids (equal id = equal (n-1)-gram in the same document).
    pos = np.flatnonzero(counts[ids] > 1)
    gid = ids[pos]
    for n in range(2, max(DUPE_NGRAMS) + 1):
        # An n-gram at i repeats only if the (n-1)-grams at i and i+1 both do. A window
        # that runs into the next document (possible only for n = 2) needs no check:
        # ids are document-specific, so such a window is unique and is dropped below.
        adjacent = pos[1:] == pos[:-1] + 1
        starts, prefix = pos[:-1][adjacent], gid[:-1][adjacent]
        # prefix ids and word ids are both < total: the key is exact, no hashing.
        keys = prefix * max(total, 1) + ids[starts + n - 1]
        _, dense, key_counts = np.unique(keys, return_inverse=True, return_counts=True)
        gram_counts = key_counts[dense]
        repeats = gram_counts > 1
        pos, gid, gram_counts = starts[repeats], dense[repeats], gram_counts[repeats]
        if n in TOP_NGRAMS:
            top = _top_ngram(pos, gram_counts, doc_of(pos), cum_chars, n, n_docs)
            out[f"rps_doc_frac_chars_top_{n}gram"] = ratio(top, chars)
        if n in DUPE_NGRAMS:
            out[f"rps_doc_frac_chars_dupe_{n}grams"] = ratio(
                _covered_chars(pos, cum_chars, n, doc_of, n_docs), chars
            )
    return out


def _top_ngram(
    pos: np.ndarray,
    counts: np.ndarray,
    docs: np.ndarray,
    cum_chars: np.ndarray,
    n: int,
    n_docs: int,
) -> np.ndarray:
    """Per document: chars of its most frequent n-gram times its count (0 if none repeats).

    ``pos``/``counts``/``docs``: sorted starts of repeated n-grams, their counts and
    documents. RPv2 takes ``Counter(ngrams).most_common(1)``, which among equally frequent
    n-grams returns the one seen first; the first position holding the maximal count is
    an occurrence of exactly that n-gram.
    """
    out = np.zeros(n_docs)
    if pos.size == 0:
        return out
    group = np.flatnonzero(np.r_[True, docs[1:] != docs[:-1]])
    doc_best = np.zeros(n_docs, np.int64)
    doc_best[docs[group]] = np.maximum.reduceat(counts, group)
    hits = np.flatnonzero(counts == doc_best[docs])
    first_hit = hits[np.r_[True, docs[hits[1:]] != docs[hits[:-1]]]]
    start, doc = pos[first_hit], docs[first_hit]
    out[doc] = (cum_chars[start + n] - cum_chars[start]) * counts[first_hit]
    return out


def _covered_chars(pos: np.ndarray, cum_chars: np.ndarray, n: int, doc_of, n_docs: int):
    """Per document: characters of the words covered by at least one n-gram in ``pos``.

    The windows ``[p, p + n)`` all have length n and ``pos`` is sorted, so a window
    overlaps the union of the earlier ones exactly when it starts before the previous
    window ends; each maximal chain of overlapping windows is one interval, counted once
    (RPv2 marks words, so overlapping duplicates count their characters once). Windows
    never cross documents, so neither do the intervals.
    """
    if pos.size == 0:
        return np.zeros(n_docs)
    new = np.r_[True, pos[1:] >= pos[:-1] + n]
    first = pos[new]
    last = pos[np.r_[new[1:], True]]
    covered = cum_chars[last + n] - cum_chars[first]
    return np.bincount(doc_of(first), weights=covered, minlength=n_docs)
