"""HeuristicRater: hand-computed values, edge cases, and agreement with a plain-Python
transcription of the RedPajama-V2 / Gopher definitions on real and random text."""

from __future__ import annotations

import argparse
import collections
import inspect
import json
import math
import random
import re
import string
import unicodedata
from collections import Counter

import numpy as np
import pytest

from raters.heuristics import SIGNALS, HeuristicRater

RATER = HeuristicRater()


def one(text: str) -> dict[str, float]:
    return {k: float(v[0]) for k, v in RATER.score([text]).items()}


# --- reference: RPv2 (RedPajama-Data app/src/core/...) and datatrove Gopher, written
# --- out the slow, obvious way (per line, per token, Counter over n-gram tuples).


def ref_normalize(text: str) -> str:
    text = text.translate(str.maketrans("", "", string.punctuation)).lower()
    return unicodedata.normalize("NFD", re.sub(r"\s+", " ", text.strip()))


def ref_signals(text: str) -> dict[str, float]:
    raw_lines = [m.group() for m in re.finditer(r"([^\n]*\n|[^\n]+$)", text)]
    norm_lines = [ref_normalize(line) for line in raw_lines]
    words = ref_normalize(text).split()
    raw_words = re.findall(r"\w+|[^\w\s]+", text)
    n, chars = len(words), sum(map(len, words))
    mean = lambda xs: sum(xs) / len(xs) if xs else 0.0  # noqa: E731
    out = {
        "rps_doc_word_count": n,
        "rps_doc_mean_word_length": chars / n if n else 0.0,
        "rps_doc_num_sentences": len(re.findall(r"\b[^.!?]+[.!?]*", text)),
        "rps_doc_frac_no_alph_words": (
            1 - sum(re.search("[a-zA-Z]", w) is not None for w in raw_words) / len(raw_words)
            if raw_words
            else 0.0
        ),
        "rps_doc_frac_unique_words": len(set(words)) / n if n else 0.0,
        "rps_doc_unigram_entropy": -sum(c / n * math.log(c / n) for c in Counter(words).values()),
        "rps_lines_uppercase_letter_fraction": mean(
            [sum(map(str.isupper, line)) / len(line) for line in raw_lines]
        ),
        "rps_lines_numerical_chars_fraction": mean(
            [sum(map(str.isnumeric, line)) / len(line) if line else 0.0 for line in norm_lines]
        ),
        "rps_lines_ending_with_terminal_punctution_mark": mean(
            [float(line.rstrip().endswith((".", "!", "?", "”"))) for line in raw_lines]
        ),
    }
    for k in (2, 3, 4):
        grams = [tuple(words[i : i + k]) for i in range(n - k + 1)]
        top = Counter(grams).most_common(1)
        ok = top and top[0][1] > 1
        out[f"rps_doc_frac_chars_top_{k}gram"] = (
            sum(map(len, top[0][0])) * top[0][1] / chars if ok else 0.0
        )
    for k in range(5, 11):
        grams = [tuple(words[i : i + k]) for i in range(n - k + 1)]
        counts = Counter(grams)
        dup = [False] * n
        for i, g in enumerate(grams):
            if counts[g] > 1:
                dup[i : i + k] = [True] * k
        out[f"rps_doc_frac_chars_dupe_{k}grams"] = (
            sum(len(w) for w, d in zip(words, dup, strict=True) if d) / chars if chars else 0.0
        )
    for unit, sep in (("line", r"\n+"), ("paragraph", r"\n{2,}")):
        seen, n_dup, dup_chars = set(), 0, 0
        parts = re.split(sep, text.strip())
        for part in parts:
            if part in seen:
                n_dup, dup_chars = n_dup + 1, dup_chars + len(part)
            seen.add(part)
        out[f"gopher_frac_dup_{unit}s"] = n_dup / len(parts) if text else 0.0
        out[f"gopher_frac_dup_{unit}_chars"] = dup_chars / len(text) if text else 0.0
    return out


def assert_matches_reference(texts: list[str]) -> None:
    got = RATER.score(texts)
    assert set(got) == set(SIGNALS)
    for i, text in enumerate(texts):
        want = ref_signals(text)
        for name in SIGNALS:
            assert got[name][i] == pytest.approx(want[name], rel=2e-6, abs=1e-6), (
                f"{name} of text {i} ({text[:60]!r})"
            )


# --- hand-computed values


def test_repeated_5gram_and_top_ngrams():
    # words: the quick brown fox jumps high the quick brown fox jumps low
    # lengths 3 5 5 3 5 4 | 3 5 5 3 5 3 -> 49 characters
    text = "The quick brown fox jumps high; the quick brown fox jumps LOW."
    s = one(text)
    assert s["rps_doc_word_count"] == 12
    assert s["rps_doc_mean_word_length"] == pytest.approx(49 / 12)
    # "the quick brown fox jumps" twice: 2 * 21 chars of 49
    assert s["rps_doc_frac_chars_dupe_5grams"] == pytest.approx(42 / 49)
    # no 6-gram repeats ("... jumps high" vs "... jumps low")
    assert s["rps_doc_frac_chars_dupe_6grams"] == 0.0
    # four 2-grams occur twice; RPv2 (Counter.most_common) takes the first seen,
    # "the quick" (8 chars): 8 * 2 / 49, not "quick brown" (10 chars)
    assert s["rps_doc_frac_chars_top_2gram"] == pytest.approx(16 / 49)
    assert s["rps_doc_frac_chars_top_3gram"] == pytest.approx(26 / 49)  # the quick brown
    assert s["rps_doc_frac_chars_top_4gram"] == pytest.approx(32 / 49)  # + fox
    # 7 distinct words of 12: the 5 repeated ones twice, "high" and "low" once
    assert s["rps_doc_frac_unique_words"] == pytest.approx(7 / 12)
    assert s["rps_doc_unigram_entropy"] == pytest.approx(
        -(5 * (2 / 12) * math.log(2 / 12) + 2 * (1 / 12) * math.log(1 / 12))
    )


def test_overlapping_duplicates_count_once():
    # x y x y x y x y: every 5-gram (xyxyx, yxyxy) occurs twice; the 8 words are
    # covered by several duplicates but counted once -> 8/8
    s = one("x y x y x y x y")
    assert s["rps_doc_frac_chars_dupe_5grams"] == 1.0
    # 4-grams: xyxy (3 times) first -> 4 chars * 3 / 8 chars = 1.5; RPv2 exceeds 1 here
    assert s["rps_doc_frac_chars_top_4gram"] == pytest.approx(1.5)
    # 8 words, 8-gram only once; 9- and 10-grams do not fit
    assert s["rps_doc_frac_chars_dupe_8grams"] == 0.0
    assert s["rps_doc_frac_chars_dupe_10grams"] == 0.0


def test_entropy_of_known_counts():
    # a:2 b:1 c:1 -> H = -(1/2 ln 1/2 + 2 * 1/4 ln 1/4) = 1.5 ln 2
    s = one("a a b c")
    assert s["rps_doc_unigram_entropy"] == pytest.approx(1.5 * math.log(2))
    assert s["rps_doc_frac_unique_words"] == pytest.approx(3 / 4)


def test_uppercase_fraction_is_mean_over_lines():
    # lines "ABc\n" (2 upper / 4 chars, the newline counts) and "d" (0 / 1)
    assert one("ABc\nd")["rps_lines_uppercase_letter_fraction"] == pytest.approx(0.25)


def test_lines_ending_with_terminal_punctuation():
    # "One.\n" yes, "Two\n" no, "\n" no, "Three!  \n" yes (trailing spaces), "Four”" yes
    s = one("One.\nTwo\n\nThree!  \nFour”")
    assert s["rps_lines_ending_with_terminal_punctution_mark"] == pytest.approx(3 / 5)


def test_numerical_chars_on_normalised_lines():
    # normalised lines "abc 12" (2 of 6) and "3" (1 of 1) -> (1/3 + 1) / 2
    assert one("ABC   12\n3")["rps_lines_numerical_chars_fraction"] == pytest.approx(2 / 3)
    # punctuation is removed first: "1,000." -> "1000", 4 of 4
    assert one("1,000.")["rps_lines_numerical_chars_fraction"] == 1.0


def test_sentences_and_alpha_words():
    # "Hello world." "How are you?" "fine!"; the leading "..." starts no sentence
    assert one("Hello world. How are you? ...fine!")["rps_doc_num_sentences"] == 3
    # RPv2's regex splits decimals: "3." and "14 is pi."
    assert one("3.14 is pi.")["rps_doc_num_sentences"] == 2
    # WordPunct tokens: I have 3 apples & 2 . 5 pears -> 5 of 9 have no ASCII letter
    assert one("I have 3 apples & 2.5 pears")["rps_doc_frac_no_alph_words"] == pytest.approx(5 / 9)


def test_normalisation_words():
    # "hello world hi": lengths 5 5 2
    s = one("Hello, World! Hi")
    assert (s["rps_doc_word_count"], s["rps_doc_mean_word_length"]) == (3, 4.0)
    # NFD splits "é" into e + U+0301, as RPv2 does: "café" is 5 code points
    assert one("Café")["rps_doc_mean_word_length"] == 5.0
    # apostrophes and hyphens are ASCII punctuation: "don't" -> "dont", "e-mail" -> "email"
    assert one("don't e-mail")["rps_doc_word_count"] == 2


def test_gopher_line_and_paragraph_duplicates():
    # lines a b a a: two repeats of 4 lines; 2 repeated chars of 7
    s = one("a\nb\na\na")
    assert s["gopher_frac_dup_lines"] == pytest.approx(2 / 4)
    assert s["gopher_frac_dup_line_chars"] == pytest.approx(2 / 7)
    # paragraphs p1 p2 p1: one repeat of 3; 2 chars of 10; a trailing newline is stripped
    s = one("p1\n\np2\n\np1\n")
    assert s["gopher_frac_dup_paragraphs"] == pytest.approx(1 / 3)
    assert s["gopher_frac_dup_paragraph_chars"] == pytest.approx(2 / 11)
    assert s["gopher_frac_dup_lines"] == pytest.approx(1 / 3)
    # three newlines are one paragraph break too: "p1" "p1" -> 1 repeat of 2
    assert one("p1\n\n\np1")["gopher_frac_dup_paragraphs"] == pytest.approx(1 / 2)


# --- edge cases


@pytest.mark.parametrize("text", ["", " ", "\n\n\t \n"])
def test_empty_and_whitespace_give_zeros(text):
    assert all(v == 0.0 for v in one(text).values()), one(text)


def test_only_punctuation():
    s = one("...!!!")
    assert s["rps_doc_word_count"] == 0
    assert s["rps_doc_frac_no_alph_words"] == 1.0  # one token, "...!!!", no letter
    assert s["rps_lines_ending_with_terminal_punctution_mark"] == 1.0
    assert s["rps_doc_num_sentences"] == 0
    assert s["rps_doc_unigram_entropy"] == 0.0


def test_cjk_text():
    # no spaces and "。" is not ASCII punctuation: the whole text is one normalised word
    s = one("東京は大きい。東京は大きい。")
    assert s["rps_doc_word_count"] == 1
    assert s["rps_doc_mean_word_length"] == 14
    # WordPunct tokens 東京は大きい / 。 / 東京は大きい / 。: none has an ASCII letter
    assert s["rps_doc_frac_no_alph_words"] == 1.0
    assert s["rps_doc_num_sentences"] == 1  # "。" is not in [.!?]
    assert s["rps_lines_uppercase_letter_fraction"] == 0.0


def test_numbers():
    # one normalised line "1 2 3 4 5 6 7 8 9 10": 11 digits of 20 characters
    s = one("1 2 3 4 5 6 7 8 9 10")
    assert s["rps_lines_numerical_chars_fraction"] == pytest.approx(11 / 20)
    assert s["rps_doc_frac_no_alph_words"] == 1.0
    assert s["rps_doc_word_count"] == 10


def test_single_very_long_line():
    s = one("spam " * 200_000)
    assert s["rps_doc_word_count"] == 200_000
    assert s["rps_doc_frac_unique_words"] == pytest.approx(1 / 200_000)
    assert s["rps_doc_unigram_entropy"] == 0.0
    assert s["rps_doc_frac_chars_dupe_10grams"] == 1.0
    # "spam spam" occurs 199,999 times: 8 * 199,999 / 800,000
    assert s["rps_doc_frac_chars_top_2gram"] == pytest.approx(8 * 199_999 / 800_000)
    assert s["rps_lines_ending_with_terminal_punctution_mark"] == 0.0


# --- batches, the rater contract


def test_batch_shapes_dtypes_and_no_nan():
    texts = ["", "Hello.", "a b " * 50, "東京", "\n\n", "x" * 10_000, "É\u0301 İ 𝐀𝐁 ½ ²"]
    cols = RATER.score(texts)
    assert list(cols) == list(SIGNALS)
    for name, values in cols.items():
        assert values.dtype == np.float32 and values.shape == (len(texts),), name
        assert np.isfinite(values).all(), name
    assert RATER.score([])["rps_doc_word_count"].shape == (0,)


def test_documents_do_not_leak_into_each_other():
    # the same words in the next document must not make n-grams repeat, and chunking
    # (small chunk_chars) must not change anything
    texts = ["one two three four five", "one two three four five six", "", "seven"]
    alone = [RATER.score([t]) for t in texts]
    for batch in (RATER.score(texts), HeuristicRater(chunk_chars=8).score(texts)):
        for i in range(len(texts)):
            for name in SIGNALS:
                assert batch[name][i] == alone[i][name][0], (name, i)
    assert alone[1]["rps_doc_frac_chars_dupe_5grams"][0] == 0.0


def test_call_adds_prefixed_columns_and_keeps_others():
    out = RATER({"id": ["a", "b"], "text": ["Hi there.", ""], "source": ["x", "y"]})
    assert out["id"] == ["a", "b"] and out["source"] == ["x", "y"]
    assert {f"heuristics.{s}" for s in SIGNALS} <= set(out)
    assert out["heuristics.rps_doc_word_count"].tolist() == [2.0, 0.0]


def test_describe_lists_signals_and_version():
    d = RATER.describe()
    assert d["name"] == "heuristics" and d["version"] == "1"
    assert list(d["signals"]) == list(SIGNALS) and len(SIGNALS) == 22


def test_rejects_non_string_text():
    with pytest.raises(Exception, match="text 1 is NoneType"):
        RATER.score(["ok", None])


# --- agreement with the reference definitions


def test_matches_reference_on_real_text():
    # docstrings of stdlib modules: real prose with code, lists and blank lines
    texts = [inspect.getdoc(m) or "" for m in (argparse, collections, json, re, inspect)]
    texts += [inspect.getsource(json)]
    assert_matches_reference(texts)


def test_matches_reference_on_random_text():
    rng = random.Random(0)
    pieces = [
        *str.split("the cat sat on mat the cat Ab CD ef 12 3.5 ½ ² Σσ É é İ 𝐀 東京 ـ _x_"),
        " ", " ", "  ", "\t", "\n", "\n\n", "\u00a0", "\u2028", "\x1c",
        ".", "!", "?", "...", ",", "'", "”", "-", "#", "&", "\u0301",
        "\r\n", "\x00", "\ud800", "\U000e0001", "ǅ", "Ⅻ",
    ]  # fmt: skip
    texts = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 120))) for _ in range(300)]
    # word-level texts from a tiny vocabulary, so that n-grams, lines and paragraphs repeat
    vocab = ["the", "cat", "Sat", "on", "mat", "42", "é", "a"]
    seps = [" "] * 8 + ["\n", "\n\n", ", ", ". ", "! "]
    for _ in range(300):
        k = rng.randint(1, 4) if rng.random() < 0.5 else len(vocab)
        words = [rng.choice(vocab[:k]) for _ in range(rng.randint(0, 80))]
        texts.append("".join(w + rng.choice(seps) for w in words))
    assert_matches_reference(texts)
    # not vacuous: every signal is non-zero somewhere in this set
    cols = RATER.score(texts)
    assert all((cols[name] > 0).sum() >= 10 for name in SIGNALS), {
        name: int((v > 0).sum()) for name, v in cols.items()
    }
