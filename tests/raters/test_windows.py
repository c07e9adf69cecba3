"""Token windows and batch planning, by hand values.

A toy "tokeniser" splits on single spaces: ``"aa bb cc"`` -> ids 0, 1, 2 at character
offsets (0, 2), (3, 5), (6, 8), so every expected value can be worked out by hand.
"""

from __future__ import annotations

import numpy as np
import pytest

from raters.windows import cut_spans, make_windows, padding_waste, plan_batches


def toy_tokenise(text: str, spans: list[tuple[int, int]]):
    """(ids, offsets relative to the span) per span; ids count words across the text."""
    pieces = []
    for start, end in spans:
        ids, offsets, pos = [], [], 0
        piece = text[start:end]
        for word in piece.split(" "):
            if word:
                ids.append(start + pos)  # the word's absolute start: easy to read back
                offsets.append((pos, pos + len(word)))
            pos += len(word) + 1
        pieces.append((ids, offsets))
    return pieces


TEXT = "aa bb cc dd ee ff gg hh ii jj"  # 10 words of 2 chars, 29 chars; word k at 3k


def windows_of(text, policy, body, max_chars=10_000, max_chunks=1):
    spans = cut_spans(text, policy, max_chars)
    return make_windows(toy_tokenise(text, spans), spans, len(text), policy, body, max_chunks)


# ---- cut_spans ----------------------------------------------------------------------------


def test_cut_spans_keeps_short_texts_whole():
    assert cut_spans(TEXT, "head", 29) == [(0, 29)]
    assert cut_spans(TEXT, "head_tail", 100) == [(0, 29)]
    assert cut_spans("", "chunks", 5) == [(0, 0)]


def test_cut_spans_moves_the_cut_back_to_a_space():
    # A cut at 10 falls inside "dd" (9..11): it moves back to the space at 8.
    assert cut_spans(TEXT, "head", 10) == [(0, 8)]
    assert cut_spans(TEXT, "chunks", 11) == [(0, 11)]  # text[11] is a space already


def test_cut_spans_head_tail_snaps_both_cuts():
    # Head gets 10 // 2 = 5 chars: text[5] is a space, the cut stays.
    # Tail gets 5 chars: starts at 24 inside "ii" -> forward to the space at 26.
    assert cut_spans(TEXT, "head_tail", 10) == [(0, 5), (26, 29)]
    # Head 6 chars: cut inside "cc" -> back to the space at 5.
    assert cut_spans(TEXT, "head_tail", 12)[0] == (0, 5)


def test_cut_spans_without_whitespace_cuts_hard():
    assert cut_spans("x" * 50, "head", 20, snap=5) == [(0, 20)]
    assert cut_spans("x" * 50, "head_tail", 20, snap=5) == [(0, 10), (40, 50)]


# ---- make_windows ---------------------------------------------------------------------------


def test_head_reads_the_first_tokens():
    w = windows_of(TEXT, "head", body=4)
    assert w.windows == [[0, 3, 6, 9]]
    assert w.weights == [4]
    # Read up to the start of the 5th word (char 12) of 29.
    assert w.scored_fraction == pytest.approx(12 / 29)
    assert w.n_tokens == 10


def test_head_of_a_short_text_reads_all_of_it():
    text = "aa bb cc  "  # trailing spaces count as read: nothing was left out
    w = windows_of(text, "head", body=8)
    assert w.windows == [[0, 3, 6]]
    assert w.scored_fraction == 1.0
    assert w.n_tokens == 3


def test_head_tail_takes_both_ends_of_one_piece():
    w = windows_of(TEXT, "head_tail", body=5)
    # ceil(5/2) = 3 head tokens, 2 tail tokens.
    assert w.windows == [[0, 3, 6, 24, 27]]
    # Unread: from word 3 (char 9) to word 8 (char 24) = 15 chars.
    assert w.scored_fraction == pytest.approx((29 - 15) / 29)
    assert w.n_tokens == 10


def test_head_tail_after_a_pre_cut():
    # Spans (0, 8) -> "aa bb cc"; (20, 29) -> " hh ii jj".
    spans = cut_spans(TEXT, "head_tail", 18)
    assert spans == [(0, 8), (20, 29)]
    w = make_windows(toy_tokenise(TEXT, spans), spans, 29, "head_tail", body=4)
    assert w.windows == [[0, 3, 24, 27]]
    # Head run: chars 0..6 (up to "cc"); tail run: 24..29.
    assert w.scored_fraction == pytest.approx((6 + 5) / 29)
    # 6 tokens read in 17 span chars; the 12 cut chars are estimated at that rate.
    assert w.n_tokens == 6 + round(12 * 6 / 17)


def test_head_tail_fills_the_window_from_the_longer_side():
    spans = [(0, 2), (20, 29)]  # 1 head token, 3 tail tokens: the tail takes 3 of 4
    w = make_windows(toy_tokenise(TEXT, spans), spans, 29, "head_tail", body=4)
    assert w.windows == [[0, 21, 24, 27]]


def test_chunks_cover_the_text_with_token_weights():
    w = windows_of(TEXT, "chunks", body=4, max_chunks=8)
    assert w.windows == [[0, 3, 6, 9], [12, 15, 18, 21], [24, 27]]
    assert w.weights == [4, 4, 2]
    assert w.scored_fraction == 1.0


def test_chunks_stop_at_max_chunks():
    w = windows_of(TEXT, "chunks", body=4, max_chunks=2)
    assert w.weights == [4, 4]
    assert w.scored_fraction == pytest.approx(24 / 29)  # up to the 9th word


def test_empty_and_blank_texts_give_one_empty_window():
    for text in ("", "   "):
        for policy in ("head", "head_tail", "chunks"):
            w = windows_of(text, policy, body=4, max_chunks=3)
            assert w.windows == [[]]
            assert w.n_tokens == 0
            assert w.scored_fraction == 1.0


def test_pre_cut_counts_in_scored_fraction_and_n_tokens():
    spans = cut_spans(TEXT, "head", 13)  # cut inside "ee" -> back to the space at 11
    assert spans == [(0, 11)]
    w = make_windows(toy_tokenise(TEXT, spans), spans, 29, "head", body=16)
    assert w.windows == [[0, 3, 6, 9]]
    assert w.scored_fraction == pytest.approx(11 / 29)
    assert w.n_tokens == 4 + round(18 * 4 / 11)


def test_make_windows_rejects_a_zero_body():
    with pytest.raises(ValueError):
        windows_of(TEXT, "head", body=0)


# ---- plan_batches ---------------------------------------------------------------------------


def test_plan_batches_by_hand():
    batches, restore = plan_batches([3, 9, 5, 2, 5], batch_tokens=12, max_batch_size=8)
    assert [b.tolist() for b in batches] == [[1], [2, 4], [0, 3]]
    assert restore.tolist() == [3, 0, 1, 4, 2]


def test_plan_batches_respects_the_budget_and_the_batch_size():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 300, size=500)
    batches, _ = plan_batches(lengths, batch_tokens=1024, max_batch_size=16)
    assert sorted(np.concatenate(batches).tolist()) == list(range(500))
    for b in batches:
        assert len(b) <= 16
        assert lengths[b].max() * len(b) <= 1024
        assert padding_waste(lengths, [b]) <= 0.2 + 1e-9


def test_plan_batches_caps_padding():
    # [10, 9] pads 1 of 20 slots; adding a 4 would pad 7 of 30 (> 20%): new batch.
    batches, _ = plan_batches([4, 10, 4, 9, 4], batch_tokens=1000, max_batch_size=8)
    assert [b.tolist() for b in batches] == [[1, 3], [0, 2, 4]]
    loose, _ = plan_batches([4, 10, 4, 9, 4], 1000, 8, max_padding=0.9)
    assert [b.tolist() for b in loose] == [[1, 3, 0, 2, 4]]


def test_an_item_over_the_budget_runs_alone():
    batches, _ = plan_batches([50, 10, 10], batch_tokens=20, max_batch_size=4)
    assert [b.tolist() for b in batches] == [[0], [1, 2]]


def test_restore_puts_outputs_back_in_input_order():
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 100, size=97)
    batches, restore = plan_batches(lengths, batch_tokens=400, max_batch_size=7)
    outputs_in_batch_order = np.concatenate([lengths[b] * 10 for b in batches])
    assert (outputs_in_batch_order[restore] == lengths * 10).all()


def test_sorting_cuts_padding_waste():
    rng = np.random.default_rng(2)
    lengths = np.concatenate([rng.integers(5, 40, 300), rng.integers(400, 512, 60)])
    rng.shuffle(lengths)
    naive = [np.arange(i, min(i + 32, len(lengths))) for i in range(0, len(lengths), 32)]
    planned, _ = plan_batches(lengths, batch_tokens=16384, max_batch_size=32)
    assert padding_waste(lengths, naive) > 0.7  # 0.81 by hand-run
    assert padding_waste(lengths, planned) < 0.15  # 0.10
    assert padding_waste([4, 4], [np.array([0, 1])]) == 0.0
