"""Text normalisation and character-level segmentation for the heuristic rater.

RedPajama-V2 (togethercomputer/RedPajama-Data, ``app/src/utilities/text/normalization.py``
and ``app/src/core/document.py``) works on two views of a document:

- the **raw** text: lines are ``re.finditer(r"([^\\n]*\\n|[^\\n]+$)")`` (every line keeps
  its ``\\n``; a last line without one counts only if non-empty), raw words are NLTK's
  ``WordPunctTokenizer`` tokens (``\\w+|[^\\w\\s]+``);
- the **normalised** text: ASCII punctuation (``string.punctuation``) removed, lowercased,
  stripped, whitespace runs collapsed to one space, then Unicode NFD; normalised words are
  its ``str.split()``.

Per-line and per-token Python loops are what make the reference slow, so this module
turns a batch of texts into one array of code points plus a per-code-point flag table
(``str.isupper``/``isspace``/``isnumeric``/regex-``\\w``, looked up for every code point
once per process) and derives lines, tokens and runs with numpy. The results equal the
reference definitions exactly; ``tests/raters/test_heuristics.py`` checks that against a
plain-Python transcription of them.
"""

from __future__ import annotations

import functools
import string
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

UPPER, SPACE, NUMERIC, WORD = 1, 2, 4, 8
"""Bit flags per code point: ``str.isupper``, ``str.isspace`` (= regex ``\\s`` and what
``str.split``/``strip`` use), ``str.isnumeric``, regex ``\\w`` (``isalnum`` or ``_``)."""

_DROP_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize(text: str) -> str:
    """RPv2's ``normalize``: drop ASCII punctuation, lowercase, collapse spaces, NFD.

    >>> normalize("  Hello,   World! Café ") == unicodedata.normalize("NFD", "hello world café")
    True
    """
    return unicodedata.normalize("NFD", " ".join(text.translate(_DROP_PUNCTUATION).lower().split()))


def normalize_keep_lines(text: str) -> str:
    """``normalize`` without the whitespace step, so ``\\n`` and line structure survive.

    Removing punctuation and lowercasing never create or delete a ``\\n`` and NFD never
    reorders across one, so line *k* of the result, stripped and with its whitespace runs
    collapsed, is RPv2's normalised line *k*; its ``split()`` is RPv2's normalised words.
    (A last line made only of punctuation vanishes here; callers count lines on the raw
    text, where it still exists, and such a line contributes zero either way.)
    """
    return unicodedata.normalize("NFD", text.translate(_DROP_PUNCTUATION).lower())


@functools.cache
def _flag_table(size: int) -> np.ndarray:
    # Built once per process: ~0.1 s for the BMP, ~0.5 s for all of Unicode (only when a
    # batch holds a code point above U+FFFF). A table lookup is exact where a regex
    # character class or an ASCII shortcut would not be.
    chars = list(map(chr, range(size)))
    table = np.fromiter(map(str.isupper, chars), np.uint8, size) * np.uint8(UPPER)
    table |= np.fromiter(map(str.isspace, chars), np.uint8, size) * np.uint8(SPACE)
    table |= np.fromiter(map(str.isnumeric, chars), np.uint8, size) * np.uint8(NUMERIC)
    table |= np.fromiter(map(str.isalnum, chars), np.uint8, size) * np.uint8(WORD)
    table[ord("_")] |= WORD
    return table


def char_flags(cp: np.ndarray) -> np.ndarray:
    """The flag byte (``UPPER | SPACE | NUMERIC | WORD``) of every code point in ``cp``."""
    if cp.size == 0:
        return np.zeros(0, np.uint8)
    size = 0x10000 if int(cp.max()) < 0x10000 else 0x110000
    return _flag_table(size)[cp]


@dataclass
class CharBatch:
    """A batch of texts as one code-point array with document and line structure.

    Attributes:
        cp: code points of all texts concatenated (uint32).
        flags: ``char_flags(cp)``.
        doc: document index of every code point.
        first: True at the first code point of each document.
        line_start: True where a line starts (document start, or after a ``\\n``).
        line_id: line index of every code point (lines are numbered over the batch).
        line_doc: document index of every line.
        n_docs: number of texts.
    """

    cp: np.ndarray
    flags: np.ndarray
    doc: np.ndarray
    first: np.ndarray
    line_start: np.ndarray
    line_id: np.ndarray
    line_doc: np.ndarray
    n_docs: int

    @classmethod
    def from_texts(cls, texts: Sequence[str]) -> CharBatch:
        lengths = np.fromiter(map(len, texts), np.int64, len(texts))
        # surrogatepass: a str may hold lone surrogates (e.g. from surrogateescape); they
        # are plain code points here, as they are to the str methods.
        cp = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), "<u4")
        n = cp.size
        doc = np.repeat(np.arange(len(texts)), lengths)
        first = np.zeros(n, bool)
        first[(np.cumsum(lengths) - lengths)[lengths > 0]] = True
        line_start = first.copy()
        line_start[1:] |= cp[:-1] == 10
        line_id = np.cumsum(line_start) - 1
        return cls(
            cp=cp,
            flags=char_flags(cp),
            doc=doc,
            first=first,
            line_start=line_start,
            line_id=line_id,
            line_doc=doc[line_start],
            n_docs=len(texts),
        )

    @property
    def n_lines(self) -> int:
        return int(self.line_doc.size)

    def has(self, flag: int) -> np.ndarray:
        return (self.flags & flag) != 0

    def run_starts(self, mask: np.ndarray, reset: np.ndarray | None = None) -> np.ndarray:
        """True where a maximal run of ``mask`` starts; runs break at documents and ``reset``."""
        prev = np.zeros_like(mask)
        prev[1:] = mask[:-1]
        brk = self.first if reset is None else (self.first | reset)
        return mask & (~prev | brk)

    def per_doc(self, values: np.ndarray | None, where: np.ndarray) -> np.ndarray:
        """Sum of ``values`` (or a count, if None) over code points in ``where``, per document."""
        weights = None if values is None else values[where]
        return np.bincount(self.doc[where], weights=weights, minlength=self.n_docs).astype(
            np.float64
        )

    def per_line(self, where: np.ndarray) -> np.ndarray:
        """Number of code points in ``where`` on each line."""
        return np.bincount(self.line_id[where], minlength=self.n_lines).astype(np.float64)

    def lines_mean(self, per_line: np.ndarray, n_lines: np.ndarray) -> np.ndarray:
        """Unweighted mean of a per-line value over each document's ``n_lines`` lines (0 if none)."""
        total = np.bincount(self.line_doc, weights=per_line, minlength=self.n_docs)
        return np.divide(total, n_lines, out=np.zeros(self.n_docs), where=n_lines > 0)
