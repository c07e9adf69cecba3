"""Influence probing on a tiny real Llama (signs on constructed cases, exact restore,
resume) and the influence model (held-out Spearman > 0 on demo probes, save -> annotate)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from assay.errors import AssayError, ConfigError
from selector.influence_probe import (
    ProbeConfig,
    Prober,
    probe_corpus,
    read_probes,
    sample_documents,
)

FAST = dict(max_tokens=64, ref_tokens=64, lr=1.0)


@pytest.fixture(scope="module")
def tiny_lm(proxy_ckpt):
    return proxy_ckpt


@pytest.fixture(scope="module")
def by_domain(demo_records):
    out: dict[str, list[dict]] = {}
    for r in demo_records:
        out.setdefault(r["domain"], []).append(r)
    return out


def test_probe_signs_on_constructed_cases(tiny_lm, by_domain):
    reference = [r["text"] for r in by_domain["encyclopedic"][:4]]
    prober = Prober(tiny_lm, reference, ProbeConfig(**FAST))
    before = prober.loss_before
    own, _ = prober.probe(reference[0])  # a reference document helps the reference
    assert own < 0
    chars = list(by_domain["junk"][0]["text"])
    random.Random(0).shuffle(chars)
    junk, _ = prober.probe("".join(chars))  # shuffled junk does not
    assert junk > 0 and own < junk
    assert prober.reference_loss() == before  # the model was restored exactly
    assert np.isnan(prober.probe("")[0])  # nothing to step on: NaN, never a made-up value


def test_checkpoint_optimizer_state_is_used(tiny_lm, by_domain, tmp_path):
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    shutil.copytree(tiny_lm, tmp_path / "ckpt")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "ckpt")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.tensor([[5, 6, 7, 8]])
    model(input_ids=x, labels=x).loss.backward()
    opt.step()
    torch.save(opt.state_dict(), tmp_path / "ckpt" / "optimizer.pt")
    reference = [r["text"] for r in by_domain["encyclopedic"][:2]]
    prober = Prober(tmp_path / "ckpt", reference, ProbeConfig(**{**FAST, "lr": 1e-3}))
    assert prober.describe()["optimizer"] == "adamw" and prober.describe()["optimizer_state"]
    assert prober.probe(reference[0])[0] < 0
    sgd = Prober(tmp_path / "ckpt", reference, ProbeConfig(**FAST, optimizer="sgd"))
    assert sgd.describe()["optimizer"] == "sgd"


def test_probe_corpus_resumes(tiny_lm, by_domain, tmp_path):
    reference = [r["text"] for r in by_domain["encyclopedic"][:2]]
    docs = [*by_domain["code"][:2], *by_domain["recipe"][:2], by_domain["quote"][0]]
    cfg = ProbeConfig(**FAST, shard_size=2)
    m = probe_corpus(docs, reference, tiny_lm, tmp_path / "p", cfg)
    assert m["counts"]["probes"] == 5 and len(m["shards"]) == 3
    full = read_probes(tmp_path / "p")
    # a crash after the first shard: manifest and later shards gone, the run file kept
    (tmp_path / "p" / "manifest.json").unlink()
    for name in m["shards"][1:]:
        (tmp_path / "p" / name).unlink()
    (tmp_path / "p" / "_run.json").write_text(__import__("json").dumps(m["run"]))
    probe_corpus(docs, reference, tiny_lm, tmp_path / "p", cfg)
    again = read_probes(tmp_path / "p")
    assert again.column("id").to_pylist() == full.column("id").to_pylist()
    assert np.allclose(again["influence"].to_numpy(), full["influence"].to_numpy())
    with pytest.raises(AssayError, match="different command"):
        probe_corpus(docs[:3], reference, tiny_lm, tmp_path / "p", cfg)
    with pytest.raises(ConfigError, match="--optimizer"):
        ProbeConfig(optimizer="lion")


@pytest.mark.slow
def test_influence_model_learns_demo_probes(tiny_lm, by_domain, demo_records, tmp_path):
    """160 demo documents probed against an encyclopedic reference; a frozen-MiniLM head
    predicts held-out influence better than chance; the saved folder is a rater."""
    from assay.annotate import annotate, read_annotations
    from raters.registry import build_rater
    from selector.influence_model import InfluenceModel

    ref_docs = by_domain["encyclopedic"][:4]
    reference = [r["text"] for r in ref_docs]
    docs = sample_documents(demo_records, 160, seed=0, exclude={r["id"] for r in ref_docs})
    m = probe_corpus(
        docs, reference, tiny_lm, tmp_path / "probes", ProbeConfig(**{**FAST, "lr": 0.1})
    )
    probes = read_probes(tmp_path / "probes")
    assert m["counts"]["nan"] == 0
    texts, y = probes["text"].to_pylist(), probes["influence"].to_numpy()
    model = InfluenceModel(method="head", max_tokens=128, max_chunks=1, val_fraction=0.25).fit(
        texts, y
    )
    assert model.val_spearman_ > 0.0
    model.save(tmp_path / "im")
    loaded = InfluenceModel.load(tmp_path / "im")
    assert np.allclose(loaded.predict(texts[:6]), model.predict(texts[:6]), atol=1e-5)
    # the head on the raw MiniLM vectors (what the pipeline's embed step stores) = on texts
    from clustering.embed import Embedder

    vectors = Embedder(dtype="float32", max_tokens=128, normalize=False).encode(texts)
    assert np.allclose(loaded.predict_features(vectors[:6]), model.predict(texts[:6]), atol=1e-4)
    # and fitted on those vectors instead of the texts, it is the same model
    again = InfluenceModel(method="head", max_tokens=128, max_chunks=1, val_fraction=0.25)
    again.fit(texts, y, features=vectors)
    assert np.allclose(again.predict(texts[:6]), model.predict(texts[:6]), atol=1e-3)
    assert again.val_spearman_ == pytest.approx(model.val_spearman_, abs=1e-6)
    with pytest.raises(ConfigError, match="method='head'"):
        InfluenceModel(method="full").fit(texts, y, features=vectors)
    # the saved folder is a rater like any other: annotate adds influence.score
    import gzip
    import json

    src = tmp_path / "few.jsonl.gz"
    with gzip.open(src, "wt") as f:
        for r in docs[:6]:
            f.write(json.dumps(r) + "\n")
    annotate([src], tmp_path / "ann", [build_rater(str(tmp_path / "im"))])
    table = read_annotations(tmp_path / "ann")
    assert np.allclose(table["influence.score"].to_numpy(), model.predict(texts[:6]), atol=1e-4)


@pytest.mark.slow
def test_full_fine_tune_round_trip(by_domain, tmp_path):
    from selector.influence_model import InfluenceModel

    docs = [r["text"] for d in ("code", "encyclopedic") for r in by_domain[d][:8]]
    y = np.array([1.0] * 8 + [-1.0] * 8)  # a label a fine-tuned encoder can learn fast
    model = InfluenceModel(
        method="full", max_tokens=64, max_chunks=1, epochs=2, batch_size=8, val_fraction=0.25
    ).fit(docs, y)
    assert len(model.history_) == 2 and model.val_spearman_ > 0
    model.save(tmp_path / "full")
    assert (tmp_path / "full" / "backbone" / "config.json").is_file()
    loaded = InfluenceModel.load(tmp_path / "full")
    assert np.allclose(loaded.predict(docs[:3]), model.predict(docs[:3]), atol=1e-5)
    with pytest.raises(AssayError, match="not fitted"):
        InfluenceModel().predict(["x"])
