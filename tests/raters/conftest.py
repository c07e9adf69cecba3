"""Fixtures shared by the rater tests: tiny real models built once per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_dataman(tmp_path_factory):
    """DataMan's released layout: a Qwen2 causal LM folder with a ChatML tokenizer, random
    weights (SmolLM2's tokenizer speaks the same ChatML as Qwen2's). head_dim 32: vLLM's
    CPU attention needs >= 32."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from raters.hub import resolve_model

    folder = tmp_path_factory.mktemp("dataman-tiny")
    tok = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m"))
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
    )
    Qwen2ForCausalLM(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module", autouse=True)
def _release_vllm_engines_after_module():
    """vLLM engines are cached per process and hold their weights and a 1 GiB KV cache
    until released: shut down whatever a module started, so that the next one (or
    another package's tests in the same pytest run) does not carry them."""
    yield
    from raters import vllm_engine

    vllm_engine.release()  # imports nothing when no engine was started


@pytest.fixture
def release_vllm_engines():
    """For the last test that uses an engine: release it at teardown, so that a module
    holds one engine at a time."""
    yield
    from raters import vllm_engine

    vllm_engine.release()
