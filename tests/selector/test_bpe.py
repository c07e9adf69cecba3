"""Proxy tokenizer: a byte-level BPE trained on real demo text, saved as an HF folder."""

from __future__ import annotations

import pytest

from assay.errors import ConfigError
from selector.bpe import EOS, encode_texts, load_tokenizer, train_bpe


@pytest.fixture(scope="module")
def texts(demo_sample):
    return [r["text"] for r in demo_sample]


def test_bpe_is_deterministic_and_loads_with_autotokenizer(tmp_path, texts):
    a = train_bpe(texts, tmp_path / "a", vocab_size=1000)
    b = train_bpe(texts, tmp_path / "b", vocab_size=1000)
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(a))
    assert len(tok) == 1000
    assert tok.eos_token == EOS and tok.eos_token_id is not None


def test_byte_level_round_trip_and_compression(tmp_path, texts):
    tok = load_tokenizer(train_bpe(texts, tmp_path / "t", vocab_size=1000))
    sample = [*texts[:5], "naïve café — 東京 🚀 and a rare wörd zzqxj"]
    for text, ids in zip(sample, encode_texts(tok, sample), strict=True):
        assert tok.decode(ids) == text  # nothing out of vocabulary, nothing lost
    # merges learnt from the pool compress its text well below one token per byte
    ids = encode_texts(tok, texts[:20])
    n_bytes = sum(len(t.encode()) for t in texts[:20])
    assert sum(map(len, ids)) < 0.5 * n_bytes


def test_bad_vocab_size(tmp_path, texts):
    with pytest.raises(ConfigError, match="vocab-size"):
        train_bpe(texts, tmp_path / "x", vocab_size=10)
