"""assay embed --engine ray on a local Ray instance: same vectors, same files, resume."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest

from assay.annotate import annotate
from assay.errors import ConfigError
from assay.ray_engine import RayConfig
from clustering.aligned import load_embeddings
from clustering.embed import Embedder, embed_corpus
from raters.heuristics import HeuristicRater

ray = pytest.importorskip("ray")

MINILM = functools.partial(Embedder, "all-minilm-l6-v2", device="cpu", max_tokens=64)


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def annotated(tmp_path_factory, demo_records) -> Path:
    root = tmp_path_factory.mktemp("embed_ray")
    src = root / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in demo_records[:120]))
    annotate([src], root / "ann", [HeuristicRater()], shard_size=40)
    return root / "ann"


@pytest.mark.slow
def test_ray_embeddings_match_local_and_resume(tmp_path, annotated):
    local = embed_corpus(annotated, tmp_path / "local", MINILM())
    config = RayConfig(concurrency=1)
    remote = embed_corpus(annotated, tmp_path / "ray", MINILM(), ray=config, make_embedder=MINILM)
    assert remote["shards"] == local["shards"] and remote["counts"] == local["counts"]
    assert remote["run"] == local["run"] and remote["engine"]["engine"] == "ray"
    _, a = load_embeddings(tmp_path / "local")
    _, b = load_embeddings(tmp_path / "ray")
    assert [x.shape for x in a] == [y.shape for y in b] == [(40, 384)] * 3
    for x, y in zip(a, b, strict=True):  # float16 storage; the same model on CPU
        np.testing.assert_allclose(x.astype(np.float32), y.astype(np.float32), atol=2e-3)

    # An interrupted Ray run keeps its committed shards and resumes from them.
    class Interrupt(Exception):
        pass

    def stop(progress):
        raise Interrupt

    with pytest.raises(Interrupt):
        embed_corpus(
            annotated, tmp_path / "r2", MINILM(), ray=config, make_embedder=MINILM, on_progress=stop
        )
    assert len(list((tmp_path / "r2").glob("part-*.npy"))) == 1
    resumed = embed_corpus(annotated, tmp_path / "r2", MINILM(), ray=config, make_embedder=MINILM)
    assert resumed["timings"]["resumed_from_shard"] == 1
    _, c = load_embeddings(tmp_path / "r2")
    for x, y in zip(b, c, strict=True):
        np.testing.assert_array_equal(x, y)


def test_manifest_describes_the_model_as_the_actors_load_it(tmp_path, annotated):
    # The driver's embedder is never loaded on Ray: a Ray task with an actor's resources
    # describes the model (on a GPU cluster: its device and dtype, not the head node's).
    driver = Embedder("all-minilm-l6-v2", device="cpu", max_tokens=64)
    actors = functools.partial(Embedder, "all-minilm-l6-v2", device="cpu", max_tokens=32)
    manifest = embed_corpus(
        annotated, tmp_path / "e", driver, ray=RayConfig(concurrency=2), make_embedder=actors
    )
    assert manifest["models"][0]["max_seq_length"] == 32
    assert driver._model is None
    assert manifest["counts"]["rows"] == 120


def test_actors_that_load_another_model_than_described_are_refused():
    from assay.ray_engine import _check_same_models

    described = [{"name": "m", "dtype": "float32", "model_path": "/a"}]
    _check_same_models(described, [{"name": "m", "dtype": "float32", "model_path": "/b"}])
    with pytest.raises(ConfigError, match=r"differs in: m\.dtype"):
        _check_same_models(described, [{"name": "m", "dtype": "bfloat16", "model_path": "/a"}])
