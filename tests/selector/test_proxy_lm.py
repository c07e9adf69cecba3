"""Proxy LM: real tiny Llama models trained on demo text, scored on a held-out domain."""

from __future__ import annotations

import random

import numpy as np
import pytest

from assay.errors import ConfigError
from selector.proxy_data import TokenPool
from selector.proxy_lm import ProxyConfig, train_proxy

TINY = dict(hidden=32, layers=1, heads=2, seq_len=128, batch_size=4, tokens=12_000, lr=1e-2)


@pytest.fixture(scope="module")
def domains(demo_records):
    rng = random.Random(0)
    by: dict[str, list[str]] = {}
    for r in demo_records:
        by.setdefault(r["domain"], []).append(r["text"])
    for docs in by.values():
        rng.shuffle(docs)
    return by


def test_training_is_deterministic_and_learns_the_target(domains, tmp_path):
    import torch

    torch.set_num_threads(1)
    target = {"encyclopedic": domains["encyclopedic"][:30]}
    on_target = domains["encyclopedic"][30:130]
    off_target = domains["code"][:100]
    cfg = ProxyConfig(**TINY, seed=0)
    tok = tmp_path / "tok"
    from selector.bpe import train_bpe

    train_bpe(on_target + off_target, tok, vocab_size=1024)
    a = train_proxy(on_target, target, cfg, tokenizer_dir=tok, save_dir=tmp_path / "ck")
    b = train_proxy(on_target, target, cfg, tokenizer_dir=tok)
    assert a.metrics == b.metrics  # same seed, same data: same numbers
    c = train_proxy(on_target, target, ProxyConfig(**TINY, seed=1), tokenizer_dir=tok)
    assert c.metrics != a.metrics
    off = train_proxy(off_target, target, cfg, tokenizer_dir=tok)
    m_on, m_off = a.metrics["encyclopedic"], off.metrics["encyclopedic"]
    # a real signal: in-domain training models the held-out domain better than code does
    assert m_on["loss"] < m_off["loss"] - 0.1
    assert 0 < m_on["bpb"] < m_on["loss"]  # more than one byte per token
    assert a.steps == 12_000 // (4 * 128) and a.tokens_seen == a.steps * 4 * 128
    assert a.curve[-1][0] == a.tokens_seen and a.params > 0

    # the checkpoint is a normal HF model: reload it and get the same loss on a block
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(tmp_path / "ck"))
    tk = AutoTokenizer.from_pretrained(str(tmp_path / "ck"))
    ids = torch.tensor([tk(target["encyclopedic"][0])["input_ids"][:128]])
    with torch.inference_mode():
        loss = model(input_ids=ids, labels=ids).loss.item()
    assert abs(loss - m_on["loss"]) < 1.5  # same model, one block vs the whole target

    # continued pretraining from a model folder (its own tokenizer): starts where it ended
    cont = train_proxy(
        on_target,
        target,
        ProxyConfig(**{**TINY, "tokens": 2048, "lr": 1e-3, "init": str(tmp_path / "ck")}),
    )
    assert cont.metrics["encyclopedic"]["loss"] < m_on["loss"] + 0.2
    assert cont.metrics["encyclopedic"]["loss"] < m_off["loss"]


def test_scratch_tokenizer_is_trained_when_none_given(domains):
    texts = domains["recipe"][:60]
    r = train_proxy(texts, {"r": domains["recipe"][60:70]}, ProxyConfig(**{**TINY, "tokens": 2048}))
    assert np.isfinite(r.metrics["r"]["loss"])


def test_config_errors_name_the_flag():
    with pytest.raises(ConfigError, match="--proxy-hidden"):
        ProxyConfig(hidden=30, heads=4)
    with pytest.raises(ConfigError, match="--proxy-tokens"):
        ProxyConfig(tokens=0)
    with pytest.raises(ConfigError, match="--proxy-dtype"):
        ProxyConfig(dtype="float16")


def test_pool_draw_quotas_are_exact_and_common_across_mixtures():
    docs = {
        "a": [np.arange(i * 10, i * 10 + 7) for i in range(20)],
        "b": [np.arange(1000 + i * 10, 1000 + i * 10 + 3) for i in range(50)],
    }
    pool = TokenPool(docs, eos_id=9999)
    assert pool.quotas({"a": 0.7, "b": 0.3}, 101) == {"a": 71, "b": 30}
    s1 = pool.draw({"a": 0.7, "b": 0.3}, 100, seed=3)
    assert len(s1) == 100
    assert ((s1 >= 0) & (s1 < 1000)).sum() + (s1 == 9999).sum() > 0
    assert np.array_equal(s1, pool.draw({"a": 0.7, "b": 0.3}, 100, seed=3))
    # common random numbers: group a's documents come in the same order whatever the weight
    s2 = pool.draw({"a": 0.2, "b": 0.8}, 100, seed=3)
    first_a = lambda s: [int(t) // 10 for t in s if t < 1000 and t % 10 == 0]  # noqa: E731
    small = first_a(s2)
    assert set(small) <= set(first_a(s1))
    # a quota beyond the group repeats it (a has 20 x 8 = 160 tokens)
    big = pool.draw({"a": 1.0}, 400, seed=0)
    assert len(big) == 400 and (big == 9999).sum() >= 49
