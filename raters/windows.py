"""Token windows over long documents, and length-sorted batches under a token budget.

Pure functions (lists and numpy in and out, no tokenizer, no torch), so each policy and
the batch planner are tested by hand values. The engine calls them in this order:

1. :func:`cut_spans` — which characters to tokenise at all (the ``max_chars`` pre-cut,
   moved back to a whitespace so the tokens before the cut are the ones a tokeniser
   would give for the whole text);
2. :func:`make_windows` — token windows per ``long_doc`` policy, their aggregation
   weights, ``scored_fraction`` (characters read / characters in the document) and
   ``n_tokens``;
3. :func:`plan_batches` — windows sorted by length and grouped so that
   ``longest x count <= batch_tokens`` with little padding, plus the permutation that
   restores input order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

Span = tuple[int, int]
Offsets = Sequence[tuple[int, int]]

# How far a cut may move to land on whitespace; a "word" longer than this is cut inside.
SNAP_CHARS = 256


def cut_spans(text: str, policy: str, max_chars: int, snap: int = SNAP_CHARS) -> list[Span]:
    """Character spans ``[start, end)`` of ``text`` to tokenise.

    One span ``(0, len)`` when the text fits in ``max_chars``. Otherwise ``head`` and
    ``chunks`` keep the first ``max_chars`` characters and ``head_tail`` the first and
    last ``max_chars // 2``. A cut moves (at most ``snap`` characters) to a whitespace:
    pre-tokenisers split there, so no token is made of half a word.

    >>> cut_spans("aaa bbb ccc", "head", 6)
    [(0, 3)]
    """
    n = len(text)
    if n <= max_chars:
        return [(0, n)]
    if policy == "head_tail":
        head = max_chars // 2
        tail_start = _snap_forward(text, n - (max_chars - head), snap)
        return [(0, _snap_back(text, head, snap)), (max(tail_start, head), n)]
    return [(0, _snap_back(text, max_chars, snap))]


def _snap_back(text: str, end: int, snap: int) -> int:
    """Largest ``e <= end`` with ``text[e]`` whitespace (the piece ends before it)."""
    for e in range(end, max(end - snap, 0) - 1, -1):
        if text[e].isspace():
            return e
    return end


def _snap_forward(text: str, start: int, snap: int) -> int:
    """Smallest ``s >= start`` with ``text[s]`` whitespace (the piece starts with it)."""
    for s in range(start, min(start + snap, len(text))):
        if text[s].isspace():
            return s
    return start


@dataclass(frozen=True)
class DocWindows:
    """What the model reads of one document."""

    windows: list[list[int]]
    """Token ids of each window, without special tokens."""
    weights: list[int]
    """Aggregation weight of each window (its token count)."""
    scored_fraction: float
    """Characters read / characters in the document (1.0 for an empty document)."""
    n_tokens: int
    """Tokens in the document: exact when nothing was pre-cut; otherwise the tokens of
    the cut spans plus the cut characters at the same tokens-per-character rate."""
    split: int | None = None
    """``head_tail`` only: tokens of the head in ``windows[0]`` (the rest is the tail);
    decoder raters put a cut mark there."""


def make_windows(
    pieces: Sequence[tuple[Sequence[int], Offsets]],
    spans: Sequence[Span],
    n_chars: int,
    policy: str,
    body: int,
    max_chunks: int = 1,
) -> DocWindows:
    """Windows of at most ``body`` tokens (the window size minus special tokens).

    ``pieces[i]`` holds the token ids and character offsets (relative to the span's
    start, as a tokeniser returns them for ``text[start:end]``) of ``spans[i]``. A
    window that reads tokens ``i..j-1`` of a piece covers the characters from token
    ``i``'s start (the span start when ``i == 0``) to token ``j``'s start (the span end
    when ``j`` is the last), so consecutive chunks cover the text without gaps.

    >>> make_windows([([7, 8, 9], [(0, 1), (2, 3), (4, 5)])], [(0, 5)], 5, "head", 2)
    DocWindows(windows=[[7, 8]], weights=[2], scored_fraction=0.8, n_tokens=3)
    """
    if body < 1:
        raise ValueError(f"body must be >= 1 token, got {body}")
    if len(pieces) != len(spans) or not spans:
        raise ValueError("one piece per span, at least one span")
    ids = [list(p[0]) for p in pieces]
    offs = [p[1] for p in pieces]

    def covered(k: int, i: int, j: int) -> int:
        start, end = spans[k]
        left = start if i == 0 else start + offs[k][i][0]
        right = end if j >= len(ids[k]) else start + offs[k][j][0]
        return max(right - left, 0)

    windows: list[list[int]] = []
    chars = 0
    split = None
    if policy == "head":
        windows.append(ids[0][:body])
        chars = covered(0, 0, body)
    elif policy == "chunks":
        n = len(ids[0])
        stops = list(range(0, n, body))[:max_chunks] or [0]
        for i in stops:
            windows.append(ids[0][i : i + body])
        chars = covered(0, 0, stops[-1] + body)
    elif policy == "head_tail":
        windows, chars, split = _head_tail(ids, covered, body)
    else:
        raise ValueError(f"unknown long-document policy {policy!r}")

    n_read = sum(len(x) for x in ids)
    span_chars = sum(e - s for s, e in spans)
    n_tokens = n_read
    if span_chars < n_chars:  # pre-cut: estimate the tokens of the unread characters
        rate = n_read / span_chars if span_chars else 0.0
        n_tokens = n_read + round((n_chars - span_chars) * rate)
    fraction = 1.0 if n_chars == 0 else min(chars / n_chars, 1.0)
    return DocWindows(windows, [len(w) for w in windows], fraction, n_tokens, split)


def _head_tail(
    ids: list[list[int]], covered: Callable[[int, int, int], int], body: int
) -> tuple[list[list[int]], int, int]:
    """One window: the first ``ceil(body/2)`` and last ``floor(body/2)`` tokens, and the
    number of head tokens in it."""
    if len(ids) == 1:
        n = len(ids[0])
        if n <= body:
            return [ids[0]], covered(0, 0, n), n
        h = (body + 1) // 2
        t = body - h
        window = ids[0][:h] + ids[0][n - t :]
        return [window], covered(0, 0, h) + (covered(0, n - t, n) if t else 0), h
    nh, nt = len(ids[0]), len(ids[1])
    # Give the tail its half, then let either side use what the other cannot fill.
    t = min(nt, body // 2)
    h = min(nh, body - t)
    t = min(nt, body - h)
    window = ids[0][:h] + ids[1][nt - t :]
    tail_chars = covered(1, nt - t, nt) if t else 0
    return [window], covered(0, 0, h) + tail_chars, h


def plan_batches(
    lengths: Sequence[int] | np.ndarray,
    batch_tokens: int,
    max_batch_size: int,
    max_padding: float = 0.2,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Group items into batches, longest first, each padded to its own longest item.

    Items are sorted by length; a batch grows while ``longest * count <= batch_tokens``,
    ``count <= max_batch_size`` and padding stays at most ``max_padding`` of its token
    slots (without that last rule a budget filled by one long item and many short ones
    is mostly padding). Longest first so that, on a GPU, the batch most likely to run
    out of memory runs first. An item longer than ``batch_tokens`` runs alone.

    Returns ``(batches, restore)``: ``batches`` are index arrays into ``lengths``;
    if ``out`` holds the per-item results in batch order (``np.concatenate`` of the
    batches' outputs), ``out[restore]`` is in input order.

    >>> batches, restore = plan_batches([3, 9, 5, 2], batch_tokens=12, max_batch_size=8)
    >>> [b.tolist() for b in batches], restore.tolist()
    ([[1], [2, 0], [3]], [2, 0, 1, 3])
    """
    if batch_tokens < 1 or max_batch_size < 1 or not 0 <= max_padding < 1:
        raise ValueError("batch_tokens, max_batch_size >= 1 and 0 <= max_padding < 1")
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    batches: list[np.ndarray] = []
    start, n = 0, len(order)
    while start < n:
        longest = max(int(lengths[order[start]]), 1)
        size, total = 1, longest
        while start + size < n and size < max_batch_size:
            nxt = int(lengths[order[start + size]])
            slots = longest * (size + 1)
            if slots > batch_tokens or slots - (total + nxt) > max_padding * slots:
                break
            size, total = size + 1, total + nxt
        batches.append(order[start : start + size])
        start += size
    restore = np.empty(n, dtype=np.int64)
    restore[order] = np.arange(n)
    return batches, restore


def padding_waste(lengths: Sequence[int], batches: Sequence[np.ndarray]) -> float:
    """Share of the padded token slots that hold padding (0 = none wasted)."""
    lengths = np.asarray(lengths)
    slots = sum(int(lengths[b].max()) * len(b) for b in batches if len(b))
    return 0.0 if slots == 0 else 1.0 - float(lengths.sum()) / slots
