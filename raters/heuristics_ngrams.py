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
    total = int(n_words.sum())
    offsets = np.cumsum(n_words) - n_words
    ids = np.fromiter(
        chain.from_iterable(map(_first_occurrence, words_per_doc, offsets.tolist())),
        np.int64,
        total,
    )
    lengths = np.fromiter(map(len, chain.from_iterable(words_per_doc)), np.int64, total)
    word_doc = np.repeat(np.arange(n_docs), n_words)
    chars = np.bincount(word_doc, weights=lengths, minlength=n_docs)
    has_words = n_words > 0

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        return np.divide(num, den, out=np.zeros(n_docs), where=den > 0)

    counts = np.bincount(ids, minlength=total)
    # One entry per distinct word of a document, at its first occurrence.
    types = np.flatnonzero(ids == np.arange(total))
    type_counts = counts[types].astype(np.float64)
    type_doc = word_doc[types]
    n_types = np.bincount(type_doc, minlength=n_docs)
    # H = -sum (c/N) log(c/N) = log N - (1/N) sum c log c
    c_log_c = np.bincount(type_doc, weights=type_counts * np.log(type_counts), minlength=n_docs)
    safe_n = np.maximum(n_words, 1)
    out = {
        "rps_doc_word_count": n_words.astype(np.float64),
        "rps_doc_mean_word_length": ratio(chars, n_words),
        "rps_doc_frac_unique_words": ratio(n_types, n_words),
        "rps_doc_unigram_entropy": np.where(has_words, np.log(safe_n) - c_log_c / safe_n, 0.0),
    }

    # remaining[i]: words from position i to the end of its document, inclusive.
    remaining = n_words[word_doc] - (np.arange(total) - offsets[word_doc])
    cum_chars = np.concatenate([[0], np.cumsum(lengths)])
    gram_id, gram_count = ids, counts[ids]  # the 1-grams
    for n in range(2, max(DUPE_NGRAMS) + 1):
        valid = remaining >= n
        cand = valid.copy()
        repeated = gram_count > 1
        cand[:-1] &= repeated[:-1] & repeated[1:]
        starts = np.flatnonzero(cand)
        # (n-1)-gram ids are < total, word ids are < total: the key is exact.
        keys = gram_id[starts] * max(total, 1) + ids[starts + n - 1]
        _, dense, cand_counts = np.unique(keys, return_inverse=True, return_counts=True)
        gram_id = np.full(total, -1, np.int64)
        gram_id[starts] = dense
        gram_count = valid.astype(np.int64)
        gram_count[starts] = cand_counts[dense]
        if n in TOP_NGRAMS:
            out[f"rps_doc_frac_chars_top_{n}gram"] = _top_ngram(
                starts, gram_count[starts], word_doc, cum_chars, chars, n, n_docs
            )
        if n in DUPE_NGRAMS:
            dup_starts = starts[gram_count[starts] > 1]
            # Mark words i..i+n-1 of every duplicated n-gram once (a difference array),
            # so characters covered by overlapping duplicates count once, as in RPv2.
            # (i + n <= total for every valid start, so both arrays have total + 1 bins.)
            edges = np.bincount(dup_starts, minlength=total + 1)
            edges -= np.bincount(dup_starts + n, minlength=total + 1)
            covered = np.cumsum(edges[:total]) > 0
            duped = np.bincount(
                word_doc[covered], weights=lengths[covered], minlength=n_docs
            )
            out[f"rps_doc_frac_chars_dupe_{n}grams"] = ratio(duped, chars)
    return out


def _top_ngram(
    starts: np.ndarray,
    counts: np.ndarray,
    word_doc: np.ndarray,
    cum_chars: np.ndarray,
    chars: np.ndarray,
    n: int,
    n_docs: int,
) -> np.ndarray:
    """chars(top n-gram) * its count / chars(document); 0 when no n-gram repeats.

    RPv2 takes ``Counter(ngrams).most_common(1)``, which among equally frequent n-grams
    returns the one seen first; the first position holding the maximal count is an
    occurrence of exactly that n-gram.
    """
    out = np.zeros(n_docs)
    keep = counts > 1
    starts, counts = starts[keep], counts[keep]
    if starts.size == 0:
        return out
    docs = word_doc[starts]  # sorted, because starts is
    group = np.flatnonzero(np.r_[True, docs[1:] != docs[:-1]])
    best = np.maximum.reduceat(counts, group)
    group_doc = docs[group]
    doc_best = np.zeros(n_docs, np.int64)
    doc_best[group_doc] = best
    hits = np.flatnonzero(counts == doc_best[docs])
    first_hit = hits[np.r_[True, docs[hits[1:]] != docs[hits[:-1]]]]
    pos, doc = starts[first_hit], docs[first_hit]
    gram_chars = cum_chars[pos + n] - cum_chars[pos]
    out[doc] = gram_chars * counts[first_hit] / chars[doc]
    return out
