"""Batched probing (torch.func) equals the one-at-a-time path on a tiny real proxy and demo
text, for SGD, fresh AdamW and a checkpoint's AdamW state.

Tolerance: 1e-5 absolute on ``influence`` and ``doc_loss``. Both are float32 losses near 6-7
(ulp ~5e-7); the batched gradients are reduced in a different order (vmap'd, padded
matmuls), which moves the losses by a few ulp (~1.5e-6 measured); the influences here are
>= 5e-3 in size, and a wrong step (e.g. Adam state drifting between probes) moves them by
~3e-3, so 1e-5 separates rounding from error by two orders of magnitude each way.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from assay.errors import ConfigError
from selector.influence_probe import ProbeConfig, Prober, probe_corpus, read_probes

FAST = dict(max_tokens=48, ref_tokens=48)
ATOL = 1e-5


@pytest.fixture(scope="module")
def texts(demo_records):
    by: dict[str, list[str]] = {}
    for r in demo_records:
        by.setdefault(r["domain"], []).append(r["text"])
    reference = by["encyclopedic"][:3]
    docs = [t for d in sorted(by) for t in by[d][3:5]]  # every domain, varied lengths
    docs.insert(3, "")  # too short to step on: NaN on both paths
    docs.insert(7, docs[0][:12])  # a few tokens: heavy padding in its batch
    return reference, docs


@pytest.fixture(scope="module")
def adam_ckpt(proxy_ckpt, tmp_path_factory):
    """The proxy with an AdamW state after 3 steps (weight decay on, so every term of the
    closed-form step matters) saved as ``optimizer.pt``."""
    import torch
    from transformers import AutoModelForCausalLM

    path = tmp_path_factory.mktemp("adam") / "ckpt"
    shutil.copytree(proxy_ckpt, path)
    model = AutoModelForCausalLM.from_pretrained(path)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        x = torch.randint(0, 1000, (2, 16), generator=gen)
        model(input_ids=x, labels=x).loss.backward()
        opt.step()
        opt.zero_grad()
    torch.save(opt.state_dict(), path / "optimizer.pt")
    return path


def _both(prober: Prober, docs: list[str]) -> tuple[np.ndarray, np.ndarray]:
    seq = np.array([prober.probe(d) for d in docs])
    bat = np.array(prober.probe_many(docs))
    assert prober.reference_loss() == prober.loss_before  # neither path left the weights moved
    return seq, bat


def _assert_equal(seq: np.ndarray, bat: np.ndarray) -> None:
    assert np.array_equal(np.isnan(seq), np.isnan(bat))
    assert np.isnan(seq).sum() == 2  # the empty document, both columns
    ok = ~np.isnan(seq)
    assert np.allclose(bat[ok], seq[ok], rtol=0, atol=ATOL), np.abs(bat - seq)[ok].max()


@pytest.mark.parametrize("vmap_reference", [True, False])
@pytest.mark.parametrize("optimizer,lr", [("sgd", 1.0), ("adamw", 1e-3)])
def test_batched_equals_sequential(proxy_ckpt, texts, optimizer, lr, vmap_reference, monkeypatch):
    import selector.influence_probe_batched as fb

    # the reference here is ~140 tokens: vmap'd unless the threshold is moved below it
    monkeypatch.setattr(fb, "VMAP_REF_TOKENS", 10**9 if vmap_reference else 0)
    reference, docs = texts
    prober = Prober(proxy_ckpt, reference, ProbeConfig(**FAST, lr=lr, optimizer=optimizer, batch=4))
    assert prober.describe()["optimizer"] == optimizer and not prober.opt_state
    seq, bat = _both(prober, docs)
    _assert_equal(seq, bat)
    assert np.nanstd(seq[:, 0]) > 100 * ATOL  # the documents differ far beyond the tolerance


def test_batched_equals_sequential_checkpoint_adamw(adam_ckpt, texts):
    reference, docs = texts
    prober = Prober(adam_ckpt, reference, ProbeConfig(**FAST, lr=1e-3, batch=3))
    assert prober.describe()["optimizer_state"]
    seq, bat = _both(prober, docs)
    _assert_equal(seq, bat)
    # every probe starts from the checkpoint's state, not from what earlier probes left
    assert prober.probe(docs[0]) == tuple(seq[0])


@pytest.mark.parametrize(
    "kw",
    [
        dict(weight_decay=0.1, decoupled_weight_decay=True),  # AdamW
        dict(weight_decay=0.1, decoupled_weight_decay=False),
        dict(amsgrad=True, maximize=True),
    ],
)
def test_adam_closed_form_matches_torch(kw):
    """One step of torch's Adam from a state several steps in, per document."""
    import torch

    from selector.influence_probe_batched import adam_plan, adam_steps

    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(5, 3, generator=gen), torch.randn(4, generator=gen)]
    live = [torch.nn.Parameter(p.clone()) for p in params]
    opt = torch.optim.Adam(live, lr=0.01, betas=(0.8, 0.95), **kw)
    for _ in range(4):
        for p in live:
            p.grad = torch.randn(p.shape, generator=gen)
        opt.step()
    start = [p.detach().clone() for p in live]
    plan = adam_plan(opt, live)
    grads = [torch.randn(2, *p.shape, generator=gen) for p in live]
    stepped = adam_steps(start, grads, plan, [True, False])
    saved = {k: {n: t.clone() for n, t in v.items()} for k, v in opt.state_dict()["state"].items()}
    for doc in range(2):
        with torch.no_grad():
            for p, p0 in zip(live, start, strict=True):
                p.copy_(p0)
        for k, p in enumerate(live):
            for n, t in saved[k].items():
                opt.state[p][n] = t.clone()
        live[0].grad, live[1].grad = grads[0][doc].clone(), None  # torch skips a None grad
        opt.step()
        assert torch.allclose(stepped[0][doc], live[0].detach(), rtol=0, atol=1e-7)
        assert torch.equal(stepped[1][doc], start[1])


def test_probe_corpus_same_rows_batched_or_not(proxy_ckpt, texts, tmp_path):
    reference, docs = texts
    rows = [{"id": f"d{i}", "text": t} for i, t in enumerate(docs)]
    cfg = ProbeConfig(**FAST, lr=1.0, shard_size=5)
    probe_corpus(
        rows, reference, proxy_ckpt, tmp_path / "seq", ProbeConfig(**{**vars(cfg), "batch": 1})
    )
    probe_corpus(rows, reference, proxy_ckpt, tmp_path / "bat", cfg)
    seq, bat = read_probes(tmp_path / "seq"), read_probes(tmp_path / "bat")
    assert seq.column("id").to_pylist() == bat.column("id").to_pylist()
    for col in ("influence", "doc_loss"):
        a, b = seq[col].to_numpy(), bat[col].to_numpy()
        assert np.array_equal(np.isnan(a), np.isnan(b))
        assert np.allclose(a[~np.isnan(a)], b[~np.isnan(b)], rtol=0, atol=ATOL)
    with pytest.raises(ConfigError, match="--probe-batch"):
        ProbeConfig(batch=0)


def test_batch_capped_by_model_size(proxy_ckpt, texts, monkeypatch):
    import selector.influence_probe as ip

    reference, docs = texts
    assert Prober(proxy_ckpt, reference, ProbeConfig(**FAST)).describe()["batch"] == 8
    monkeypatch.setattr(ip, "BATCH_PARAMS", 1 << 18)  # room for one copy of the 172k weights
    prober = Prober(proxy_ckpt, reference, ProbeConfig(**FAST, batch=8))
    assert prober.describe()["batch"] == 1
    assert prober.probe_many(docs[:3]) == [prober.probe(d) for d in docs[:3]]  # sequential
