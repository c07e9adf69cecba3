"""assay embed with the real MiniLM on demo text: vectors that mean something, a pre-cut
that changes nothing, aligned float16 shards + manifest, refusal, resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from assay.annotate import annotate
from assay.errors import ManifestMismatchError
from clustering.aligned import annotation_shards
from clustering.embed import Embedder, embed_corpus

REPO = Path(__file__).resolve().parents[2]


def _annotated(tmp_path: Path, records: list[dict], shard_size: int, name: str = "ann") -> Path:
    src = tmp_path / f"{name}.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    annotate([src], tmp_path / name, [], shard_size=shard_size, hash_inputs=False)
    return tmp_path / name


@pytest.fixture(scope="module")
def minilm() -> Embedder:
    return Embedder("all-minilm-l6-v2", max_tokens=128).load()


def test_vectors_are_unit_length_and_group_by_domain(minilm, demo_sample):
    texts = [r["text"] for r in demo_sample]
    domains = np.array([r["domain"] for r in demo_sample])
    v = minilm.encode(texts)
    assert v.shape == (len(texts), 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    sim = v @ v.T
    np.fill_diagonal(sim, -np.inf)
    nn_same = (domains[sim.argmax(1)] == domains).mean()
    # measured 0.65 on this sample (10 domains: chance ~0.1)
    assert nn_same > 0.4, nn_same


def test_character_precut_does_not_change_long_documents(demo_records):
    longest = sorted(demo_records, key=lambda r: -len(r["text"]))[:4]
    assert len(longest[-1]["text"]) > 20_000
    texts = [r["text"] for r in longest]
    cut = Embedder(max_tokens=256).encode(texts)  # default pre-cut: 16 x 256 chars
    full = Embedder(max_tokens=256, max_chars=10**9).encode(texts)
    assert ((cut * full).sum(1) > 0.9999).all()


def test_embed_writes_aligned_float16_shards_and_a_manifest(tmp_path, demo_records, minilm):
    ann = _annotated(tmp_path, demo_records[:70], shard_size=30)
    manifest = embed_corpus(ann, tmp_path / "emb", minilm)
    files = sorted(p.name for p in (tmp_path / "emb").glob("part-*.npy"))
    assert files == ["part-00000.npy", "part-00001.npy", "part-00002.npy"]
    arrays = [np.load(tmp_path / "emb" / f) for f in files]
    assert [a.shape for a in arrays] == [(30, 384), (30, 384), (10, 384)]
    assert all(a.dtype == np.float16 for a in arrays)
    # row i of the shards is document i, in order
    again = minilm.encode([r["text"] for r in demo_records[30:60]])
    assert np.allclose(arrays[1].astype(np.float32), again, atol=2e-3)
    assert manifest["kind"] == "embeddings" and manifest["counts"]["rows"] == 70
    m = manifest["models"][0]
    assert m["name"] == "all-minilm-l6-v2" and m["dim"] == 384 and len(m["weights_sha256"]) == 64
    assert m["max_seq_length"] == 128 and m["normalize"] is True
    recorded = [(s["name"], s["rows"], s["ids_sha1"]) for s in manifest["shards"]]
    assert recorded == [(s.name, s.rows, s.ids_sha1) for s in annotation_shards(ann)]
    assert not (tmp_path / "emb" / "_run.json").exists()

    # the same command again is a no-op; another model setting is refused
    mtime = (tmp_path / "emb" / "part-00000.npy").stat().st_mtime_ns
    assert embed_corpus(ann, tmp_path / "emb", minilm)["created"] == manifest["created"]
    assert (tmp_path / "emb" / "part-00000.npy").stat().st_mtime_ns == mtime
    with pytest.raises(ManifestMismatchError, match="differs in: model"):
        embed_corpus(ann, tmp_path / "emb", Embedder(max_tokens=64))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ManifestMismatchError, match="not an assay embeddings run"):
        embed_corpus(ann, tmp_path / "other", minilm, overwrite=True)
    assert (tmp_path / "other" / "notes.txt").exists()


@pytest.mark.slow
def test_resume_after_sigkill_gives_the_uninterrupted_vectors(tmp_path, demo_records):
    ann = _annotated(tmp_path, demo_records[:120], shard_size=10)  # 12 shards
    code = (
        "import sys\n"
        "from clustering.embed import Embedder, embed_corpus\n"
        "embed_corpus(sys.argv[1], sys.argv[2], Embedder(max_tokens=32, batch_size=16))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}

    def run(out: Path) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", code, str(ann), str(out)], env=env, cwd=REPO)

    clean = tmp_path / "clean"
    assert run(clean).wait(timeout=600) == 0
    resumed = tmp_path / "resumed"
    proc = run(resumed)
    deadline = time.time() + 300
    while not (resumed / "part-00002.npy").exists():
        assert proc.poll() is None, "embed finished or failed before it could be killed"
        assert time.time() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = sorted(p.name for p in resumed.glob("part-*.npy"))
    assert 3 <= len(done_before) < 12 and not (resumed / "manifest.json").exists()
    assert run(resumed).wait(timeout=600) == 0
    manifest = json.loads((resumed / "manifest.json").read_text())
    assert manifest["timings"]["resumed_from_shard"] == len(done_before)
    assert not list(resumed.glob(".*.tmp"))
    for i in range(12):
        a = np.load(clean / f"part-{i:05d}.npy")
        b = np.load(resumed / f"part-{i:05d}.npy")
        assert np.array_equal(a, b), f"shard {i} differs"
