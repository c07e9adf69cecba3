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
