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
turns a batch of texts into one array of code points plus a per-code-point flag byte
(``str.isupper``/``isspace``/``isnumeric``, regex ``\\w`` and a few literal classes, from
a table computed with the str methods themselves once per process) and derives lines,
tokens and runs with numpy. The results equal the
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
ASCII_LETTER, SENTENCE_END, TERMINAL = 16, 32, 64
"""Bit flags per code point: ``str.isupper``, ``str.isspace`` (= regex ``\\s`` and what
``str.split``/``strip`` use), ``str.isnumeric``, regex ``\\w`` (``isalnum`` or ``_``),
``[a-zA-Z]``, ``[.!?]`` (RPv2's sentence regex) and ``[.!?”]`` (its terminal marks)."""

# string.punctuation is ASCII, and in UTF-8 an ASCII byte only ever encodes that ASCII
# character, so deleting those bytes from the UTF-8 encoding removes exactly those
# characters; bytes.translate does it ~10x faster than str.translate or a regex.
_PUNCTUATION_BYTES = string.punctuation.encode("ascii")


def drop_punctuation(text: str) -> str:
    """Remove the characters of ``string.punctuation`` (RPv2's ``str.translate`` step)."""
    raw = text.encode("utf-8", "surrogatepass")
    return raw.translate(None, _PUNCTUATION_BYTES).decode("utf-8", "surrogatepass")


def normalize(text: str) -> str:
    """RPv2's ``normalize``: drop ASCII punctuation, lowercase, collapse spaces, NFD.

    >>> normalize("  Hello,   World! Café ") == unicodedata.normalize("NFD", "hello world café")
    True
    """
    return unicodedata.normalize("NFD", " ".join(drop_punctuation(text).lower().split()))


def normalize_keep_lines(text: str) -> str:
    """``normalize`` without the whitespace step, so ``\n`` and line structure survive.

    Removing punctuation and lowercasing never create or delete a ``\n`` and NFD never
    reorders across one, so line *k* of the result, stripped and with its whitespace runs
    collapsed, is RPv2's normalised line *k*; its ``split()`` is RPv2's normalised words.
    (A last line made only of punctuation vanishes here; callers count lines on the raw
    text, where it still exists, and such a line contributes zero either way.)
    """
    return unicodedata.normalize("NFD", drop_punctuation(text).lower())


@functools.cache
def _flag_table(size: int) -> np.ndarray:
    # Built once per process: ~0.05 s for the BMP, ~0.5 s for all of Unicode (only when a
    # batch holds a code point above U+FFFF). A table lookup is exact where a regex
    # character class or an ASCII shortcut would not be.
    chars = list(map(chr, range(size)))
    table = np.zeros(size, np.uint8)
    for flag, test in ((UPPER, str.isupper), (SPACE, str.isspace), (NUMERIC, str.isnumeric)):
        table |= np.fromiter(map(test, chars), bool, size) * np.uint8(flag)
    table |= np.fromiter(map(str.isalnum, chars), bool, size) * np.uint8(WORD)
    table[ord("_")] |= WORD
    for c in string.ascii_letters:
        table[ord(c)] |= ASCII_LETTER
    for c in ".!?":
        table[ord(c)] |= SENTENCE_END | TERMINAL
    table[ord("”")] |= TERMINAL
    return table


def char_flags(cp: np.ndarray) -> np.ndarray:
    """The flag byte (an OR of the flags above) of every code point in ``cp``."""
    if cp.size == 0:
        return np.zeros(0, np.uint8)
    size = 0x10000 if int(cp.max()) < 0x10000 else 0x110000
    return _flag_table(size)[cp]


@dataclass
class CharBatch:
    """A batch of texts as one code-point array, with document and line boundaries.

    Documents and lines are contiguous slices of ``cp``; per-line and per-document
    numbers are segment reductions (``ufunc.reduceat``) or ``searchsorted`` over those
    boundaries, so no per-character index array is ever built.

    Attributes:
        cp: code points of all texts concatenated (uint32).
        flags: ``char_flags(cp)``.
        doc_bounds: ``doc_bounds[d]:doc_bounds[d + 1]`` is document ``d`` (n_docs + 1).
        starts: start of every non-empty document (where runs are cut).
        line_starts: start of every line (a document start, or just after a ``\n``); a
            line ends where the next one starts, or at the end of the batch.
        line_doc: document index of every line.
    """

    cp: np.ndarray
    flags: np.ndarray
    doc_bounds: np.ndarray
    starts: np.ndarray
    line_starts: np.ndarray
    line_doc: np.ndarray

    @classmethod
    def from_texts(cls, texts: Sequence[str]) -> CharBatch:
        lengths = np.fromiter(map(len, texts), np.int64, len(texts))
        doc_bounds = np.concatenate([[0], np.cumsum(lengths)])
        # surrogatepass: a str may hold lone surrogates (e.g. from surrogateescape); they
        # are plain code points here, as they are to the str methods.
        cp = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), "<u4")
        starts = doc_bounds[:-1][lengths > 0]
        after_newline = np.flatnonzero(cp[:-1] == 10) + 1
        line_starts = np.union1d(starts, after_newline)
        # the last document starting at or before a line start: an empty document shares
        # its bound with the next one, and side="right" skips past it
        line_doc = np.searchsorted(doc_bounds, line_starts, side="right") - 1
        return cls(cp, char_flags(cp), doc_bounds, starts, line_starts, line_doc)

    @property
    def n_docs(self) -> int:
        return self.doc_bounds.size - 1

    @property
    def line_ends(self) -> np.ndarray:
        """End (exclusive) of every line: the next line's start, or the end of the batch."""
        return (
            np.append(self.line_starts[1:], self.cp.size)
            if self.line_starts.size
            else self.line_starts
        )

    @property
    def line_lengths(self) -> np.ndarray:
        return self.line_ends - self.line_starts

    def has(self, flag: int) -> np.ndarray:
        return (self.flags & flag) != 0

    def run_starts(self, mask: np.ndarray) -> np.ndarray:
        """True where a maximal run of ``mask`` starts; runs are cut at document starts."""
        out = mask.copy()
        out[1:] &= ~mask[:-1]
        out[self.starts] = mask[self.starts]
        return out

    def per_line(self, mask: np.ndarray) -> np.ndarray:
        """Number of True values of ``mask`` on each line."""
        if self.line_starts.size == 0:
            return np.zeros(0)
        return np.add.reduceat(mask.view(np.uint8), self.line_starts, dtype=np.int64)

    def per_doc(self, positions: np.ndarray) -> np.ndarray:
        """How many of the (sorted) ``positions`` fall in each document."""
        return np.diff(np.searchsorted(positions, self.doc_bounds)).astype(np.float64)

    def lines_mean(self, per_line: np.ndarray, n_lines: np.ndarray) -> np.ndarray:
        """Unweighted mean of a per-line value over each document's ``n_lines`` (0 if none)."""
        total = np.bincount(self.line_doc, weights=per_line, minlength=self.n_docs)
        return np.divide(total, n_lines, out=np.zeros(self.n_docs), where=n_lines > 0)
