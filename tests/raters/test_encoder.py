"""The encoder rater on real text with a real encoder (all-MiniLM-L6-v2, fresh heads).

One model, 11 outputs: a regression head [0, 1), a 6-way classification head [1, 7) and
a 4-label domain head [7, 11). Every score is checked against the model's own logits,
computed here one text at a time without the engine.
"""

from __future__ import annotations

import dataclasses
import json
import random

import numpy as np
import pytest

from assay.errors import AssayError, ConfigError
from raters.encoder import EncoderRater, load_rater_dir
from raters.hub import weights_sha256
from raters.spec import RaterSpec

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

MAX_TOKENS = 64
BODY = MAX_TOKENS - 2  # [CLS] ... [SEP]
LABELS = ["code", "legal", "prose", "other"]
SPEC = {
    "name": "mini",
    "version": "1",
    "criteria": [
        {"name": "edu", "type": "regression", "logits": [0, 1], "scale": [0, 5]},
        {"name": "quality", "type": "classification", "logits": [1, 7], "scale": [0, 5]},
    ],
    "domain": {"labels": LABELS, "logits": [7, 11]},
    "max_tokens": MAX_TOKENS,
    "long_doc": "head",
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from raters.hub import resolve_model

    base = resolve_model("all-minilm-l6-v2")
    folder = tmp_path_factory.mktemp("mini-rater")
    torch.manual_seed(0)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(base, num_labels=11)
    # Wider than the default init, so that outputs differ between texts.
    torch.nn.init.normal_(model.classifier.weight, std=0.5)
    model.save_pretrained(folder)
    transformers.AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    (folder / "rater.json").write_text(json.dumps(SPEC))
    return folder


@pytest.fixture(scope="module")
def rater(model_dir) -> EncoderRater:
    return load_rater_dir(model_dir, device="cpu")


@pytest.fixture(scope="module")
def reference(model_dir):
    """Logits of explicit token-id windows, one window per forward pass (no padding)."""
    model = transformers.AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)

    def logits(windows: list[list[int]]) -> np.ndarray:
        with torch.inference_mode():
            rows = [model(input_ids=torch.tensor([[101, *w, 102]])).logits[0] for w in windows]
        return torch.stack(rows).double().numpy()

    return tok, logits


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def texts_of(demo_sample, n: int) -> list[str]:
    return [d["text"] for d in demo_sample[:n]]


def test_columns_dtypes_and_ranges(rater, demo_sample):
    texts = texts_of(demo_sample, 24)
    out = rater.score(texts)
    assert set(out) == {
        "edu",
        "quality",
        "quality.conf",
        "domain",
        "domain.prob",
        "scored_fraction",
        "n_tokens",
    }
    for name in ("edu", "quality", "quality.conf", "domain.prob", "scored_fraction"):
        assert out[name].dtype == np.float32 and out[name].shape == (24,)
        assert np.isfinite(out[name]).all()
    assert out["n_tokens"].dtype == np.int64
    assert out["domain"].dtype == object and set(out["domain"]) <= set(LABELS)
    assert ((out["edu"] >= 0) & (out["edu"] <= 5)).all()
    assert ((out["quality"] >= 0) & (out["quality"] <= 5)).all()
    assert ((out["quality.conf"] >= 1 / 6) & (out["quality.conf"] <= 1)).all()
    assert ((out["domain.prob"] >= 1 / 4) & (out["domain.prob"] <= 1)).all()
    assert ((out["scored_fraction"] > 0) & (out["scored_fraction"] <= 1)).all()
    assert out["quality"].std() > 0.01  # the heads respond to the text
    batch = rater({"text": texts[:3], "id": ["a", "b", "c"]})
    assert batch["id"] == ["a", "b", "c"]
    np.testing.assert_allclose(batch["mini.edu"], out["edu"][:3], atol=1e-5)
    assert "mini.domain.prob" in batch and "mini.n_tokens" in batch


def test_scores_are_the_models_own_logits(rater, reference, demo_sample):
    tok, logits = reference
    texts = texts_of(demo_sample, 16)
    out = rater.score(texts)
    windows = [tok(t, add_special_tokens=False)["input_ids"][:BODY] for t in texts]
    x = logits(windows)
    p, d = softmax(x[:, 1:7]), softmax(x[:, 7:11])
    np.testing.assert_allclose(out["edu"], np.clip(x[:, 0], 0, 5), atol=1e-5)
    np.testing.assert_allclose(out["quality"], p @ np.arange(6), atol=1e-5)
    np.testing.assert_allclose(out["quality.conf"], p.max(1), atol=1e-5)
    np.testing.assert_allclose(out["domain.prob"], d.max(1), atol=1e-5)
    assert list(out["domain"]) == [LABELS[k] for k in d.argmax(1)]
    full = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
    short = [i for i, t in enumerate(texts) if len(t) <= rater.max_chars]
    assert all(out["n_tokens"][i] == full[i] for i in short)  # not pre-cut: exact


def test_chunks_are_a_length_weighted_mean_of_windows(model_dir, reference, demo_sample):
    tok, logits = reference
    words = " ".join(d["text"] for d in demo_sample).split()
    text = " ".join(words[:120])
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert 2 * BODY < len(ids) <= 8 * BODY
    spec = dataclasses.replace(RaterSpec.load(model_dir), long_doc="chunks", max_chunks=8)
    out = EncoderRater.from_spec(spec, device="cpu").score([text])
    chunks = [ids[i : i + BODY] for i in range(0, len(ids), BODY)]
    w = np.array([len(c) for c in chunks], dtype=float)[:, None]
    x = logits(chunks)
    p = (softmax(x[:, 1:7]) * w).sum(0) / w.sum()
    d = (softmax(x[:, 7:11]) * w).sum(0) / w.sum()
    edu = (np.clip(x[:, :1], 0, 5) * w).sum() / w.sum()
    np.testing.assert_allclose(out["quality"][0], p @ np.arange(6), atol=1e-5)
    np.testing.assert_allclose(out["quality.conf"][0], p.max(), atol=1e-5)
    np.testing.assert_allclose(out["domain.prob"][0], d.max(), atol=1e-5)
    np.testing.assert_allclose(out["edu"][0], edu, atol=1e-5)
    assert out["scored_fraction"][0] == 1.0
    assert out["n_tokens"][0] == len(ids)


def test_head_tail_reads_both_ends_of_a_long_text(model_dir, reference, demo_sample):
    tok, logits = reference
    text = max((d["text"] for d in demo_sample), key=len)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > 4 * BODY and len(text) > 640  # pre-cut at both ends (640 chars)
    spec = dataclasses.replace(RaterSpec.load(model_dir), long_doc="head_tail")
    out = EncoderRater.from_spec(spec, device="cpu").score([text])
    half = (BODY + 1) // 2
    x = logits([ids[:half] + ids[len(ids) - (BODY - half) :]])
    np.testing.assert_allclose(out["quality"][0], softmax(x[0, 1:7]) @ np.arange(6), atol=1e-5)
    assert 0 < out["scored_fraction"][0] < 640 / len(text)


def test_policies_agree_on_a_short_text(model_dir, demo_sample):
    short = [d["text"] for d in demo_sample if 20 < len(d["text"]) < 120][:3]
    short.append("A short sentence about rivers, written by someone.")
    base = RaterSpec.load(model_dir)
    outs = {}
    for policy in ("head", "head_tail", "chunks"):
        spec = dataclasses.replace(base, long_doc=policy, max_chunks=4)
        outs[policy] = EncoderRater.from_spec(spec, device="cpu").score(short)
    for policy in ("head_tail", "chunks"):
        for name in ("edu", "quality", "quality.conf", "domain.prob"):
            np.testing.assert_allclose(outs[policy][name], outs["head"][name], atol=1e-6)
        assert (outs[policy]["scored_fraction"] == 1.0).all()


def test_long_text_is_cut_and_reported(rater, reference, demo_sample):
    tok, _ = reference
    seed = " ".join(d["text"] for d in demo_sample)
    text = (seed * (775_000 // len(seed) + 1))[:775_000]
    out = rater.score([text, "Short text."])
    assert out["scored_fraction"][0] < 0.01
    exact = len(tok(text, add_special_tokens=False)["input_ids"])
    assert abs(out["n_tokens"][0] - exact) / exact < 0.15  # estimated past the pre-cut
    assert out["scored_fraction"][1] == 1.0


def test_order_and_batching_do_not_change_scores(model_dir, demo_sample):
    # Texts whose token counts do not follow their lengths in characters (one 350-char
    # word is one [UNK]; punctuation is a token per character), so that sorting windows
    # by tokens reorders them and the engine has to put the results back.
    odd = ["pneumono" * 44, ". , ; : ! ?" * 6, "x", "ab " * 30]
    texts = texts_of(demo_sample, 16) + odd
    perm = list(range(len(texts)))
    random.Random(0).shuffle(perm)
    small = load_rater_dir(model_dir, device="cpu", batch_tokens=200, max_batch_size=3)
    small.group_docs = 7  # several groups: the background tokeniser runs ahead
    big = load_rater_dir(model_dir, device="cpu")
    a = big.score(texts)
    b = small.score([texts[i] for i in perm])
    one = [big.score([t]) for t in texts[-6:]]  # alone: nothing to reorder
    for name in ("edu", "quality", "quality.conf", "domain.prob", "scored_fraction"):
        np.testing.assert_allclose(b[name], a[name][perm], atol=1e-5)
        np.testing.assert_allclose([o[name][0] for o in one], a[name][-6:], atol=1e-5)
    assert list(b["domain"]) == list(a["domain"][perm])
    assert (b["n_tokens"] == a["n_tokens"][perm]).all()


def test_empty_texts(rater, reference):
    _, logits = reference
    out = rater.score(["", "   ", "word"])
    assert out["n_tokens"].tolist() == [0, 0, 1]
    assert out["scored_fraction"].tolist() == [1.0, 1.0, 1.0]
    x = logits([[]])[0]  # what the model says about [CLS] [SEP]
    np.testing.assert_allclose(out["quality"][:2], softmax(x[1:7]) @ np.arange(6), atol=1e-5)
    empty = rater.score([])
    assert set(empty) == set(out) and all(len(v) == 0 for v in empty.values())


def test_describe(rater, model_dir):
    info = rater.describe()
    assert info["name"] == "mini" and info["version"] == "1"
    assert info["spec"]["criteria"][1]["name"] == "quality"
    assert info["weights_sha256"] == weights_sha256(model_dir)
    assert len(info["weights_sha256"]) == 64
    assert (info["dtype"], info["device"]) == ("float32", "cpu")
    assert info["model_path"] == str(model_dir)


def test_bfloat16_is_close_to_float32(model_dir, rater, demo_sample):
    texts = texts_of(demo_sample, 8)
    bf16 = load_rater_dir(model_dir, device="cpu", dtype="bfloat16")
    assert bf16.describe()["dtype"] == "bfloat16"
    a, b = rater.score(texts), bf16.score(texts)
    np.testing.assert_allclose(b["quality"], a["quality"], atol=0.1)
    np.testing.assert_allclose(b["edu"], a["edu"], atol=0.1)


def test_a_model_without_trained_heads_is_refused(tmp_path):
    spec = RaterSpec.from_dict(SPEC).with_model("all-minilm-l6-v2")
    with pytest.raises(AssayError, match="lacks 2 weight"):
        EncoderRater.from_spec(spec, device="cpu")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"domain": {"labels": [*LABELS, "x"], "logits": [7, 12]}}, "out of range"),
        ({"max_tokens": 1024}, "max_tokens: 1024 exceeds the model's 512 positions"),
    ],
)
def test_spec_is_checked_against_the_model(model_dir, changes, message):
    spec = RaterSpec.from_dict({**SPEC, **changes}).with_model(model_dir)
    with pytest.raises(ConfigError, match=message):
        EncoderRater.from_spec(spec, device="cpu")


def test_engine_flags_are_checked(model_dir):
    with pytest.raises(ConfigError, match="--batch-tokens must be > 0"):
        load_rater_dir(model_dir, device="cpu", batch_tokens=0)
    with pytest.raises(ConfigError, match="--dtype"):
        load_rater_dir(model_dir, device="cpu", dtype="int3")
