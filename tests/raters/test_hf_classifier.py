"""Any HF sequence classifier as a rater, without a rater.json: tiny real BERT checkpoints
(random weights, MiniLM's tokenizer) saved as transformers saves them, scored on demo
text and checked against the model's own forward pass."""

from __future__ import annotations

import json

import numpy as np
import pytest

from assay.annotate import annotate, read_annotations
from assay.errors import AssayError, ConfigError
from raters.registry import build_rater

MAX_TOKENS = 64


def _save_classifier(folder, num_labels, id2label=None, problem_type=None, seed=0):
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from raters.hub import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model("all-minilm-l6-v2"))
    tok.save_pretrained(folder)
    torch.manual_seed(seed)
    extra = {}
    if id2label:
        extra = {"id2label": id2label, "label2id": {v: k for k, v in id2label.items()}}
    config = BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=num_labels,
        problem_type=problem_type,
        **extra,
    )
    BertForSequenceClassification(config).eval().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def topic_dir(tmp_path_factory):
    labels = {0: "news", 1: "source code", 2: "legal"}
    return _save_classifier(tmp_path_factory.mktemp("topic"), 3, labels)


def _logits(folder, texts):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    out = []
    with torch.inference_mode():
        for t in texts:
            enc = tok(t, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
            out.append(model(**enc).logits[0].numpy())
    return np.array(out, dtype=np.float64)


def _softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_single_label_classifier_columns_match_its_forward_pass(topic_dir, demo_sample):
    texts = [r["text"] for r in demo_sample[:24]]
    rater = build_rater(f"hf-classifier={topic_dir}", device="cpu", max_tokens=MAX_TOKENS)
    out = rater({"text": texts})
    p = _softmax(_logits(topic_dir, texts))
    np.testing.assert_allclose(out["hf-classifier.prob.news"], p[:, 0], atol=1e-4)
    np.testing.assert_allclose(out["hf-classifier.prob.source_code"], p[:, 1], atol=1e-4)
    np.testing.assert_allclose(out["hf-classifier.prob.legal"], p[:, 2], atol=1e-4)
    names = np.array(["news", "source code", "legal"], dtype=object)
    assert list(out["hf-classifier.label"]) == list(names[p.argmax(axis=1)])
    np.testing.assert_allclose(out["hf-classifier.label.prob"], p.max(axis=1), atol=1e-4)
    assert "hf-classifier.expected" not in out  # the labels are not numbers
    info = rater.describe()["hf_classifier"]
    assert info["problem_type"] == "single_label_classification"
    assert info["columns"]["prob.source_code"] == "source code"


def test_ordinal_labels_give_an_expected_score(tmp_path, demo_sample):
    folder = _save_classifier(tmp_path, 6, {k: str(k) for k in range(6)}, seed=1)
    texts = [r["text"] for r in demo_sample[:10]]
    cols = build_rater(f"edu={folder}", max_tokens=MAX_TOKENS).score(texts)
    p = _softmax(_logits(folder, texts))
    np.testing.assert_allclose(cols["expected"], p @ np.arange(6), atol=1e-3)
    assert set(cols["label"]) <= {str(k) for k in range(6)}


def test_regression_head_gives_the_raw_value(tmp_path, demo_sample):
    folder = _save_classifier(tmp_path, 1, seed=2)  # num_labels=1: transformers' regression
    texts = [r["text"] for r in demo_sample[:10]]
    rater = build_rater(f"hf-classifier={folder}", max_tokens=MAX_TOKENS)
    cols = rater.score(texts)
    assert set(cols) == {"score", "scored_fraction", "n_tokens"}
    np.testing.assert_allclose(cols["score"], _logits(folder, texts)[:, 0], atol=1e-4)
    assert rater.describe()["hf_classifier"]["problem_type"] == "regression"


def test_multi_label_head_is_a_sigmoid_per_label(tmp_path, demo_sample):
    labels = {0: "toxic", 1: "insult", 2: "threat"}
    folder = _save_classifier(tmp_path, 3, labels, "multi_label_classification", seed=3)
    texts = [r["text"] for r in demo_sample[:12]]
    cols = build_rater(f"tox={folder}", max_tokens=MAX_TOKENS).score(texts)
    p = 1 / (1 + np.exp(-_logits(folder, texts)))
    for k, label in labels.items():
        np.testing.assert_allclose(cols[f"prob.{label}"], p[:, k], atol=1e-4)
    on = [",".join(lab for k, lab in labels.items() if row[k] >= 0.5) for row in p]
    assert list(cols["labels"]) == on


def test_bad_input_is_scored_or_refused(topic_dir):
    rater = build_rater(f"hf-classifier={topic_dir}", max_tokens=MAX_TOKENS, long_doc="chunks")
    huge = "Alle Menschen sind frei und gleich an Würde und Rechten geboren. " * 30_000
    cols = rater.score(["", "\x00\x01\x02\ufffd" * 20, huge])
    assert len(cols["label"]) == 3
    assert np.isfinite(cols["label.prob"]).all()
    assert 0 < cols["scored_fraction"][2] < 0.01  # max_chunks windows of a 2M-char text
    with pytest.raises(AssayError, match="text 1 is NoneType"):
        rater.score(["fine", None])


def test_bad_folders_and_references_say_what_is_wrong(tmp_path, topic_dir):
    from transformers import BertConfig, BertModel

    with pytest.raises(ConfigError, match="needs a model folder"):
        build_rater("hf-classifier")
    with pytest.raises(ConfigError, match=r"has no config\.json"):
        build_rater(f"hf-classifier={tmp_path}")
    base = tmp_path / "base"
    BertModel(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(base)  # fmt: skip
    with pytest.raises(ConfigError, match="not a sequence classifier"):
        build_rater(f"hf-classifier={base}")
    with pytest.raises(ConfigError, match="unknown rater"):
        build_rater(f"mine={base}")  # a base model is not picked up as a classifier
    with pytest.raises(ConfigError, match="bad option"):
        build_rater(f"hf-classifier={topic_dir}", temperature=2)
    with pytest.raises(ConfigError, match="exceeds the model's 128 positions"):
        build_rater(f"hf-classifier={topic_dir}", max_tokens=512)


class Crash(Exception):
    pass


def test_interrupted_annotate_resumes_to_the_clean_rows(tmp_path, topic_dir, demo_records):
    src = tmp_path / "pool.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in demo_records[:150]))

    def rater():
        return build_rater(f"topic={topic_dir}", max_tokens=MAX_TOKENS)

    clean = tmp_path / "clean"
    annotate([str(src)], clean, [rater()], shard_size=50)
    calls = {"n": 0}

    def crash_after_two(progress):
        calls["n"] += 1
        if calls["n"] == 2:
            raise Crash

    out = tmp_path / "resumed"
    with pytest.raises(Crash):
        annotate([str(src)], out, [rater()], shard_size=50, on_progress=crash_after_two)
    assert len(list(out.glob("part-*.parquet"))) == 2
    annotate([str(src)], out, [rater()], shard_size=50)
    a, b = read_annotations(clean), read_annotations(out)
    assert b.num_rows == a.num_rows == 150
    assert b.column("id").to_pylist() == a.column("id").to_pylist()
    for column in ("topic.label", "topic.prob.news", "topic.label.prob"):
        assert b.column(column).to_pylist() == a.column(column).to_pylist()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["models"][0]["hf_classifier"]["problem_type"].startswith("single")


@pytest.mark.slow
@pytest.mark.usefixtures("release_vllm_engines")
def test_multi_label_classifier_agrees_across_engines(tmp_path, demo_sample):
    """vLLM's pooling runner hands back raw logits; the sigmoid heads read them as the
    transformers engine does (MiniLM: vLLM's CPU attention needs head_dim >= 32)."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    from raters import vllm_engine
    from raters.hub import resolve_model

    if not vllm_engine.installed():
        pytest.skip("vLLM is not installed")
    torch.manual_seed(0)
    labels = {0: "toxic", 1: "insult", 2: "threat"}
    model = BertForSequenceClassification.from_pretrained(
        resolve_model("all-minilm-l6-v2"),
        num_labels=3,
        id2label=labels,
        problem_type="multi_label_classification",
    )
    with torch.no_grad():  # a head that separates texts (the fresh one is near zero)
        model.classifier.weight.normal_(0, 1.0)
    model.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(resolve_model("all-minilm-l6-v2")).save_pretrained(tmp_path)
    texts = [r["text"] for r in demo_sample[1::12][:3]]
    hf = build_rater(f"tox={tmp_path}", backend="hf", max_tokens=128).score(texts)
    vl_rater = build_rater(f"tox={tmp_path}", backend="vllm", max_tokens=128)
    assert vl_rater.describe()["backend"] == "vllm"
    vl = vl_rater.score(texts)
    assert set(hf) == set(vl) and list(hf["labels"]) == list(vl["labels"])
    for label in labels.values():
        np.testing.assert_allclose(hf[f"prob.{label}"], vl[f"prob.{label}"], atol=1e-4)
    assert np.ptp(hf["prob.toxic"]) > 0.01
