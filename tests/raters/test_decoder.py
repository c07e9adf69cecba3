"""Decoder raters on the transformers engine: SmolLM2-135M as a DataMan-schema rater on
demo text, and DataMan's released format proven with a tiny random Qwen2."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from assay.errors import ConfigError
from raters.decoder_prompt import CUT
from raters.decoder_spec import DecoderSpec
from raters.registry import build_rater, load_spec, presets

MAX_TOKENS = 384  # the schema prompt is ~290 tokens; the rest is text (SmolLM2 is slow here)


@pytest.fixture(scope="module")
def schema_rater():
    return build_rater("dataman-schema", backend="hf", max_tokens=MAX_TOKENS)


@pytest.fixture(scope="module")
def texts(demo_sample):
    return [r["text"] for r in demo_sample[::12][:3]]  # three domains


def test_dataman_schema_columns_are_probabilities_not_parsed_text(schema_rater, texts):
    cols = schema_rater.score(texts)
    spec = schema_rater.spec
    assert len(spec.criteria) == 14 and len(spec.domain["labels"]) == 15
    for c in spec.criteria:
        expected, top, conf = (
            np.asarray(cols[f"{c['name']}{s}"]) for s in ("", ".argmax", ".conf")
        )
        assert expected.shape == (len(texts),)
        assert np.all((expected >= 1) & (expected <= 5))
        assert set(np.unique(top)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
        assert np.all((conf > 0.2) & (conf <= 1.0))  # at least 1/5 for the argmax of 5
        # The expected score is not the argmax: the model is unsure somewhere.
    probs = np.array(cols["domain.probs"])
    assert probs.shape == (len(texts), 15)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probs.max(axis=1), cols["domain.prob"], atol=1e-6)
    labels = spec.domain["labels"]
    assert list(cols["domain"]) == [labels[i] for i in probs.argmax(axis=1)]
    assert not np.allclose(cols["overall_score"], cols["overall_score.argmax"])
    assert np.all(cols["n_tokens"] > 0) and np.all(cols["scored_fraction"] <= 1)


@pytest.fixture(scope="module")
def tiny_rater(tiny_dataman):
    """DataMan's layout on a tiny random Qwen2: the engine's mechanics, cheaply."""
    return build_rater(f"dataman={tiny_dataman}", backend="hf", max_tokens=600)


def test_batched_and_one_by_one_agree(tiny_rater, texts):
    """Left padding and position ids must not change any score."""
    batched = tiny_rater.score(texts)
    for i, text in enumerate(texts):
        alone = tiny_rater.score([text])
        for key in ("accuracy", "overall_score", "domain.prob", "sensitivity.conf"):
            assert abs(float(alone[key][0]) - float(batched[key][i])) < 1e-4, key
        assert alone["domain"][0] == batched["domain"][i]


def test_long_document_keeps_head_and_tail(tiny_rater, demo_records):
    long = " ".join(r["text"] for r in demo_records[:60])
    text = "HEADMARK " + long + " TAILMARK"
    prompts = tiny_rater.builder.build([text, "short text"])
    decoded = tiny_rater.builder.tokenizer.decode(prompts.ids[0])
    assert "HEADMARK" in decoded and "TAILMARK" in decoded and CUT in decoded
    assert len(prompts.ids[0]) <= 600
    assert 0 < prompts.scored_fraction[0] < 0.5 and prompts.scored_fraction[1] == 1.0
    assert prompts.n_tokens[0] > tiny_rater.builder.budget
    cols = tiny_rater.score([text])
    assert cols["scored_fraction"][0] == pytest.approx(prompts.scored_fraction[0])


def _reference_slots(model, prompt, slot_ids, sep_id, n):
    """Slot distributions by plain full forwards, no cache: answer k is fed back."""
    import torch

    ids, out = list(prompt), []
    for k in range(n):
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, -1].float()
        p = logits[slot_ids[k]].softmax(-1).numpy()
        out.append(p)
        ids += [slot_ids[k][int(p.argmax())], sep_id]
    return out


def test_released_dataman_format_reads_15_lines(tiny_dataman, tiny_rater, texts):
    import torch
    from transformers import AutoModelForCausalLM

    spec = load_spec(presets()["dataman"])
    assert spec.prompt["system"] == "You are a helpful assistant."
    assert "[14]Overall Score:_/5" in spec.prompt["user"] and spec.text_tokens == 1894
    with pytest.raises(ConfigError, match="dataman=/path/to/model_folder"):
        build_rater("dataman")
    rater = tiny_rater
    assert len(rater.builder.slots) == 15 and rater.builder.slots[0].name == "domain"
    cols = rater.score(texts[:3])
    assert {"domain", "accuracy", "overall_score", "overall_score.conf"} <= set(cols)
    # The cached, batched engine reads what plain forwards read.
    model = AutoModelForCausalLM.from_pretrained(tiny_dataman, dtype=torch.float32).eval()
    prompts = rater.builder.build(texts[:3]).ids
    b = rater.builder
    for d in range(3):
        ref = _reference_slots(model, prompts[d], b.slot_ids, b.separator_id, 15)
        np.testing.assert_allclose(cols["domain.probs"][d], ref[0], atol=1e-5)
        for k, slot in enumerate(b.slots[1:], start=1):
            expected = float(ref[k] @ np.array(slot.values))
            assert abs(float(cols[slot.name][d]) - expected) < 1e-4, slot.name


def test_spec_errors_name_the_field(tmp_path):
    base = json.loads(presets()["prrc-schema"].read_text())
    cases = [
        ({"prompt": {"user": "no placeholder"}}, "prompt.user"),
        ({"criteria": [dict(base["criteria"][0], line=3)]}, "must be 0..n-1"),
        ({"criteria": [dict(base["criteria"][0], values=[1, 9])]}, "leave the scale"),
        ({"format": "gguf"}, "format"),
        ({"colour": "red"}, "unknown field"),
    ]
    for change, message in cases:
        with pytest.raises(ConfigError, match=message):
            DecoderSpec.from_dict({**base, **change})
    spec = DecoderSpec.from_dict(base)
    wide = dataclasses.replace(
        spec, criteria=(dict(spec.criteria[0], scale=[0, 100], values=[10, 100]),)
    )
    with pytest.raises(ConfigError, match="one token per answer line"):
        build_rater_from(wide)


def build_rater_from(spec):
    from raters.registry import from_spec

    return from_spec(spec, {"backend": "hf"})


def test_backend_vllm_refused_where_it_cannot_run():
    with pytest.raises(ConfigError, match="transformers only"):
        build_rater("perplexity", backend="vllm")
    with pytest.raises(ConfigError, match="--backend must be one of"):
        build_rater("dataman-schema", backend="tpu")
