"""The perplexity rater on real text: clean documents beat shuffled-word copies of themselves."""

from __future__ import annotations

import random

import numpy as np
import pytest

from raters.perplexity import PerplexityRater


@pytest.fixture(scope="module")
def rater() -> PerplexityRater:
    return PerplexityRater(max_tokens=64)


def _shuffle_words(text: str, rng: random.Random) -> str:
    words = text.split()
    rng.shuffle(words)
    return " ".join(words)


def test_clean_text_ranks_above_shuffled_words(rater, demo_sample):
    rng = random.Random(0)
    docs = [d["text"] for d in demo_sample if len(d["text"].split()) >= 20]
    assert len(docs) >= 20
    shuffled = [_shuffle_words(t, rng) for t in docs]
    out = rater.score(docs + shuffled)
    clean, junk = out["perplexity"][: len(docs)], out["perplexity"][len(docs) :]
    wins = float(np.mean(clean < junk))
    assert wins >= 0.9, f"clean text had lower perplexity in only {wins:.0%} of pairs"
    assert np.median(junk) > 2 * np.median(clean)


def test_columns_and_edge_cases(rater):
    long_text = "The river flows to the sea. " * 400
    out = rater.score(["", "a", "A short sentence about the weather.", long_text])
    assert set(out) == {"nll", "perplexity", "n_tokens", "scored_fraction"}
    assert np.isnan(out["nll"][0]) and out["n_tokens"][0] == 0  # nothing to measure
    assert np.isfinite(out["nll"][1:]).all()
    assert out["n_tokens"][3] == 64
    assert 0.0 < out["scored_fraction"][3] < 0.2
    assert out["scored_fraction"][2] == 1.0
    assert np.allclose(out["perplexity"][1:], np.exp(out["nll"][1:]), rtol=1e-5)


def test_batching_does_not_change_scores(rater, demo_sample):
    texts = [d["text"] for d in demo_sample[:12]]
    rater.batch_tokens = 128
    small = rater.score(texts)["nll"]
    one_by_one = np.array([rater.score([t])["nll"][0] for t in texts[:3]])
    rater.batch_tokens = 4096
    large = rater.score(texts)["nll"]
    assert np.allclose(small, large, atol=1e-4)
    assert np.allclose(one_by_one, large[:3], atol=1e-4)
