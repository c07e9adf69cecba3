"""DSIR importance weights: hand values on a toy corpus, the target's own domain first on
real demo text, and an interrupted annotate run that resumes to the clean rows."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from assay.annotate import annotate, read_annotations
from assay.errors import ConfigError
from raters.dsir import DSIRRater, log_ratio
from raters.registry import build_rater


def _jsonl(path, texts):
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return str(path)


def test_weights_match_hand_values(tmp_path):
    # features: unigrams + bigrams; 2**18 buckets, so these six do not collide
    target = _jsonl(tmp_path / "t.jsonl", ["a b"])
    raw = _jsonl(tmp_path / "r.jsonl", ["a b", "c d"])
    B = 2**18
    r = DSIRRater(target, raw, buckets=B)
    assert r.target_counts_.sum() == 3 and r.raw_counts_.sum() == 6
    cols = r.score(["a b", "c d", "A B a b", ""])
    up = math.log((6 + B) / (3 + B))  # a, b, "a b": 2/(3+B) in the target vs 2/(6+B) raw
    down = math.log((6 + B) / (2 * (3 + B)))  # c, d, "c d": 1/(3+B) vs 2/(6+B)
    assert cols["score"][0] == pytest.approx(3 * up, rel=1e-5)
    assert cols["score"][1] == pytest.approx(3 * down, rel=1e-5)
    # lower-cased, counts add up: a, b twice, "a b" twice, "b a" (unseen: ratio of +1s)
    unseen = math.log((6 + B) / (3 + B))
    assert cols["score"][2] == pytest.approx(6 * up + unseen, rel=1e-5)
    assert cols["per_ngram"][0] == pytest.approx(up, rel=1e-5)
    assert cols["score"][3] == 0 and cols["per_ngram"][3] == 0


def test_same_target_and_raw_gives_zero_everywhere(tmp_path):
    texts = ["the cat sat", "stocks fell sharply", "the cat ran"]
    path = _jsonl(tmp_path / "x.jsonl", texts)
    cols = DSIRRater(path, path, buckets=1000).score([*texts, "anything else"])
    assert np.allclose(cols["score"], 0)
    assert np.allclose(log_ratio(np.array([3.0, 1.0]), np.array([3.0, 1.0])), 0)


def test_target_domain_ranks_first_on_demo_text(tmp_path, demo_records):
    rng = random.Random(0)
    wiki = [r for r in demo_records if r["domain"] == "encyclopedic"]
    held = rng.sample(wiki, 100)
    held_ids = {r["id"] for r in held}
    pool = [r for r in demo_records if r["id"] not in held_ids]
    target = _jsonl(tmp_path / "target.jsonl", [r["text"] for r in held])
    raw = tmp_path / "pool.jsonl"
    raw.write_text("".join(json.dumps(r) + "\n" for r in pool))
    rater = build_rater(f"dsir={target}", raw=str(raw), dtype="float32")  # dtype is dropped
    sample = rng.sample(pool, 600)
    cols = rater.score([r["text"] for r in sample])
    by = {}
    for r, s in zip(sample, cols["per_ngram"], strict=True):
        by.setdefault(r["domain"], []).append(float(s))
    med = {d: float(np.median(v)) for d, v in by.items()}
    assert max(med, key=med.get) == "encyclopedic", med
    assert med["encyclopedic"] > 0 > med["code"]
    d = rater.describe()
    assert d["target"]["docs"] == 100 and d["raw"]["docs"] == len(pool)
    assert len(d["weights_sha256"]) == 64


def test_needs_a_target_and_a_raw_pool(tmp_path):
    path = _jsonl(tmp_path / "x.jsonl", ["a"])
    with pytest.raises(ConfigError, match="target corpus and the raw pool"):
        build_rater(f"dsir={path}")
    with pytest.raises(ConfigError, match="buckets"):
        DSIRRater(path, path, buckets=1)


class Crash(Exception):
    pass


def test_interrupted_annotate_resumes_to_the_clean_rows(tmp_path, demo_records):
    texts = list(demo_records[:900])
    src = tmp_path / "pool.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in texts))
    target = _jsonl(tmp_path / "t.jsonl", [r["text"] for r in texts if r["domain"] == "recipe"])

    def rater():
        return DSIRRater(target, str(src), buckets=4096)

    clean = tmp_path / "clean"
    annotate([str(src)], clean, [rater()], shard_size=200, count_tokens=None)
    calls = {"n": 0}

    def crash_after_two(progress):
        calls["n"] += 1
        if calls["n"] == 2:
            raise Crash

    out = tmp_path / "resumed"
    with pytest.raises(Crash):
        annotate([str(src)], out, [rater()], shard_size=200, on_progress=crash_after_two,
                 count_tokens=None)  # fmt: skip
    assert len(list(out.glob("part-*.parquet"))) == 2
    annotate([str(src)], out, [rater()], shard_size=200, count_tokens=None)
    a, b = read_annotations(clean), read_annotations(out)
    assert b.column("id").to_pylist() == a.column("id").to_pylist()
    assert b.column("dsir.score").to_pylist() == a.column("dsir.score").to_pylist()
