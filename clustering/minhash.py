"""MinHash signatures and LSH banding for near-duplicate detection: functions on arrays.

* :func:`shingles`: a document's set of word n-grams, as bytes (lower-cased ``\\w+`` words,
  so case, punctuation and whitespace do not matter, in the spirit of datatrove's
  ``simplify_text``; a document shorter than ``ngram`` words is one shingle of all its
  words, and one without a word has none);
* :func:`signatures`: datasketch ``MinHash`` signatures, ``uint32 [docs, num_perm]``: its
  ``affine32`` permutations over each shingle's CRC-32 (``zlib``, C speed; datasketch
  runs every input hash through MurmurHash3's finalizer first, so a fast non-crypto hash
  is safe, as its docs suggest; 2.2x faster here than its default SHA-1, whose 32 bits
  collide just as often);
* :func:`lsh_params`: bands x rows for a Jaccard threshold, from datasketch's
  ``MinHashLSH`` optimiser (equal weight on false positives and false negatives);
* :func:`band_keys`: one 64-bit key per (document, band);
* :func:`candidate_pairs`: documents that share a band key;
* :func:`components`: connected components of the verified pairs, as (cluster, size).

Example::

    sig = signatures([shingles(t, 5) for t in texts], num_perm=128, seed=1)
    bands, rows = lsh_params(0.8, 128)            # (9, 13)
    keys = band_keys(sig, bands, rows)
    a, b = candidate_pairs(keys[:, 0])
"""

from __future__ import annotations

import functools
import re
import zlib
from collections.abc import Iterable, Sequence

import numpy as np

WORD = re.compile(r"\w+")
EMPTY = np.uint32(0xFFFFFFFF)  # datasketch's initial value: a slot no shingle reached


def _import_datasketch():
    try:
        import datasketch
    except ImportError:
        from assay.errors import AssayError

        raise AssayError(
            "near-duplicate detection needs datasketch", hint="pip install 'assay[signals]'"
        ) from None
    return datasketch


def shingles(text: str, ngram: int) -> set[bytes]:
    """The document's distinct word ``ngram``-grams, UTF-8 encoded.

    Example: ``shingles("The cat sat. The CAT sat!", 2)`` ->
    ``{b"the cat", b"cat sat", b"sat the"}``.
    """
    words = WORD.findall(text.lower())
    if len(words) <= ngram:
        return {" ".join(words).encode("utf-8", "surrogatepass")} if words else set()
    return {
        " ".join(words[i : i + ngram]).encode("utf-8", "surrogatepass")
        for i in range(len(words) - ngram + 1)
    }


def signatures(docs: Iterable[set[bytes]], num_perm: int, seed: int) -> np.ndarray:
    """``uint32 [docs, num_perm]`` MinHash signatures; a document without shingles is all
    :data:`EMPTY`."""
    datasketch = _import_datasketch()
    docs = list(docs)
    out = np.full((len(docs), num_perm), EMPTY, dtype=np.uint32)
    made = datasketch.MinHash.generator(docs, num_perm=num_perm, seed=seed, hashfunc=zlib.crc32)
    for i, m in enumerate(made):
        out[i] = m.hashvalues
    return out


@functools.lru_cache(maxsize=64)  # datasketch integrates the S-curve for every (b, r)
def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """``(bands, rows)`` whose S-curve best separates Jaccard ``threshold``
    (``(0.8, 128)`` -> ``(9, 13)``: a pair at Jaccard 0.8 shares a band with p = 0.80,
    at 0.9 with p = 0.99, at 0.6 with p = 0.012)."""
    try:
        lsh = _import_datasketch().MinHashLSH(threshold=threshold, num_perm=num_perm)
    except ValueError as e:  # datasketch: "The number of bands are too small (b < 2)"
        from assay.errors import ConfigError

        raise ConfigError(
            f"--threshold {threshold} with --num-perm {num_perm}: no LSH banding fits ({e})",
            hint="lower --threshold or raise --num-perm",
        ) from None
    return int(lsh.b), int(lsh.r)


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """``uint64 [docs, bands]``: the rows of each band mixed into one key (a collision of
    two different bands has p ~ 2^-64; candidate pairs are verified anyway)."""
    sig = np.asarray(sig, dtype=np.uint64)
    keys = np.empty((len(sig), bands), dtype=np.uint64)
    # one odd 64-bit multiplier per row of a band (a fixed, arbitrary sequence)
    mix = (np.arange(1, rows + 1, dtype=np.uint64) * np.uint64(0xBF58476D1CE4E5B9)) ^ np.uint64(
        0x9E3779B97F4A7C15
    ) | np.uint64(1)
    with np.errstate(over="ignore"):
        for j in range(bands):
            block = sig[:, j * rows : (j + 1) * rows]
            h = (block * mix).sum(axis=1, dtype=np.uint64)
            h ^= h >> np.uint64(33)
            h *= np.uint64(0xFF51AFD7ED558CCD)
            keys[:, j] = h ^ (h >> np.uint64(33))
    return keys


def candidate_pairs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of rows with equal keys (one band, ``uint64 [docs]``): each row with the row
    before it and with the first row of its run, so one failed verification cannot split
    a run. Returns ``(a, b)``, int64 row numbers (a pair may repeat)."""
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    same = k[1:] == k[:-1]
    if not same.any():
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    run_start = np.r_[True, ~same]
    first = order[np.maximum.accumulate(np.where(run_start, np.arange(len(k)), 0))]
    later = np.flatnonzero(np.r_[False, same])
    a = np.r_[order[later - 1], first[later]]
    b = np.r_[order[later], order[later]]
    keep = a != b
    return a[keep].astype(np.int64), b[keep].astype(np.int64)


def similarity(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    """Estimated Jaccard similarity of row pairs: the share of equal signature slots."""
    return (np.asarray(sig_a) == np.asarray(sig_b)).mean(axis=1)


def components(n: int, a: Sequence[int], b: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Connected components of ``n`` rows joined by pairs ``(a[i], b[i])``.

    Returns ``(cluster, size)`` (int64 each): a row's cluster is the smallest row of its
    component (its first document in corpus order), ``size`` the component's rows.
    Example: ``components(5, [0, 3], [2, 4])`` -> ``([0, 1, 0, 3, 3], [2, 1, 2, 2, 2])``.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    if n == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    graph = coo_matrix((np.ones(a.size, dtype=np.int8), (a, b)), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    first = np.full(label.max() + 1, n, dtype=np.int64)
    np.minimum.at(first, label, np.arange(n, dtype=np.int64))
    counts = np.bincount(label, minlength=len(first)).astype(np.int64)
    return first[label], counts[label]
