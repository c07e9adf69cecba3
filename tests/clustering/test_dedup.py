"""Near-duplicate clusters (MinHash LSH): hand values of the pieces, planted near-duplicates
of real demo text found and nothing else, bad input, and an interrupted run that resumes
to the clean result."""

from __future__ import annotations

import gzip
import json
import random

import numpy as np
import pyarrow.parquet as pq
import pytest

from assay.annotate import annotate
from assay.errors import ConfigError, ManifestMismatchError
from clustering.dedup import DedupConfig, dedup_columns, dedup_corpus
from clustering.minhash import (
    EMPTY,
    band_keys,
    candidate_pairs,
    components,
    lsh_params,
    shingles,
    signatures,
    similarity,
)
from raters.heuristics import HeuristicRater


def test_shingles_ignore_case_punctuation_and_spacing():
    assert shingles("The cat sat. The CAT  sat!", 2) == {b"the cat", b"cat sat", b"sat the"}
    assert shingles("Hello, world", 5) == {b"hello world"}  # short: one shingle of all words
    assert shingles("  ... !!! ", 5) == set()


def test_signatures_estimate_jaccard_and_lsh_parameters_fit_the_threshold():
    words = [f"w{i}" for i in range(400)]
    a = set(words[:300])
    b = set(words[60:360])  # |a & b| = 240, |a | b| = 360: Jaccard 2/3
    sig = signatures([{w.encode() for w in a}, {w.encode() for w in b}, set()], 256, seed=1)
    assert sig.dtype == np.uint32 and sig.shape == (3, 256)
    assert abs(similarity(sig[:1], sig[1:2])[0] - 2 / 3) < 0.08
    assert (sig[2] == EMPTY).all()  # no shingle: datasketch's empty signature
    assert lsh_params(0.8, 128) == (9, 13)
    bands, rows = lsh_params(0.5, 128)
    assert bands * rows <= 128 and (1 / bands) ** (1 / rows) < 0.6


def test_candidate_pairs_and_components_by_hand():
    keys = np.array([7, 3, 7, 9, 7, 3], dtype=np.uint64)
    a, b = candidate_pairs(keys)
    pairs = {tuple(sorted(p)) for p in zip(a.tolist(), b.tolist(), strict=True)}
    assert pairs == {(0, 2), (0, 4), (2, 4), (1, 5)}
    assert candidate_pairs(np.array([1, 2, 3], dtype=np.uint64))[0].size == 0
    cluster, size = components(5, [0, 3], [2, 4])
    assert cluster.tolist() == [0, 1, 0, 3, 3] and size.tolist() == [2, 1, 2, 2, 2]
    sig = np.array([[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 9, 9]], dtype=np.uint32)
    keys = band_keys(sig, 2, 2)
    assert keys[0, 0] == keys[1, 0] == keys[2, 0] and keys[0, 1] == keys[1, 1] != keys[2, 1]


def _edit(text: str, rng: random.Random, fraction: float) -> str:
    """The text with ``fraction`` of its words replaced: a near-duplicate."""
    words = text.split()
    for i in rng.sample(range(len(words)), int(len(words) * fraction)):
        words[i] = "zzz" + words[i][::-1]
    return " ".join(words)


@pytest.fixture(scope="module")
def planted(tmp_path_factory, demo_records):
    """300 demo documents + 10 light edits (1 word in 100) of 10 long ones + an exact copy
    of one, annotated; returns (folder, records, {copy index: original index})."""
    rng = random.Random(0)
    base = [r for r in demo_records[::19] if len(r["text"]) > 500][:300]
    records = [dict(r) for r in base]
    twins = {}
    for j, i in enumerate(rng.sample(range(len(base)), 10)):
        twin = dict(base[i], id=f"twin-{j}", text=_edit(base[i]["text"], rng, 0.01))
        twins[len(records)] = i
        records.append(twin)
    twins[len(records)] = 5
    records.append(dict(base[5], id="copy-5"))
    root = tmp_path_factory.mktemp("dedup")
    src = root / "pool.jsonl.gz"
    with gzip.open(src, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    annotate([src], root / "annotated", [HeuristicRater()], shard_size=64)
    return root / "annotated", records, twins


def test_planted_near_duplicates_are_found_on_demo_text(planted, tmp_path):
    annotated, records, twins = planted
    m = dedup_corpus(annotated, tmp_path / "dedup")
    cols = dedup_columns(annotated, tmp_path / "dedup")
    cluster, size = cols["dedup.cluster"], cols["dedup.size"]
    assert len(cluster) == len(records)
    for copy, original in twins.items():
        assert cluster[copy] == cluster[original] == min(copy, original)
    # everything else the LSH joins is a real near-duplicate: check Jaccard exactly
    for i in np.flatnonzero(size > 1):
        if i in twins or i in twins.values():
            continue
        j = int(cluster[i]) if cluster[i] != i else int(np.flatnonzero(cluster == i)[1])
        a, b = shingles(records[i]["text"], 5), shingles(records[j]["text"], 5)
        assert len(a & b) / len(a | b) > 0.6, (records[i]["text"][:80], records[j]["text"][:80])
    c = m["counts"]
    assert c["rows"] == len(records) and c["docs_in_duplicate_clusters"] >= 21
    assert c["duplicates"] == c["docs_in_duplicate_clusters"] - c["duplicate_clusters"]
    assert m["config"]["bands"] == 9 and m["config"]["rows_per_band"] == 13
    table = pq.read_table(tmp_path / "dedup" / "part-00000.parquet")
    assert table.column_names == ["id", "dedup.cluster", "dedup.size"]
    # a finished run is reused; other settings in the same folder are refused
    assert dedup_corpus(annotated, tmp_path / "dedup")["created"] == m["created"]
    with pytest.raises(ManifestMismatchError, match="config"):
        dedup_corpus(annotated, tmp_path / "dedup", DedupConfig(threshold=0.9))


def test_bad_documents_are_kept_as_their_own_cluster(tmp_path, demo_records):
    huge = demo_records[0]["text"] * 400
    texts = ["", "   \n", "\x00\x01\x02 \ufffd", "!!! ??? ...", huge, huge, "one two"]
    src = tmp_path / "bad.jsonl"
    src.write_text(
        "".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(texts))
    )
    annotate([src], tmp_path / "ann", [HeuristicRater()], shard_size=3)
    m = dedup_corpus(tmp_path / "ann", tmp_path / "dedup")
    cols = dedup_columns(tmp_path / "ann", tmp_path / "dedup")
    assert m["counts"]["no_shingles"] == 4  # no word: not a duplicate of each other
    assert cols["dedup.size"].tolist() == [1, 1, 1, 1, 2, 2, 1]
    assert cols["dedup.cluster"].tolist() == [0, 1, 2, 3, 4, 4, 6]


def test_settings_are_checked_and_a_foreign_dedup_folder_is_refused(
    planted, tmp_path, demo_records
):
    with pytest.raises(ConfigError, match="--threshold must be in"):
        DedupConfig(threshold=1.5)
    with pytest.raises(ConfigError, match="--num-perm"):
        DedupConfig(num_perm=1)
    with pytest.raises(ConfigError, match="--ngram"):
        DedupConfig(ngram=0)
    with pytest.raises(ConfigError, match="no LSH banding fits"):
        lsh_params(0.99, 128)
    src = tmp_path / "other.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in demo_records[:40]))
    annotate([src], tmp_path / "other", [HeuristicRater()], shard_size=64)
    dedup_corpus(tmp_path / "other", tmp_path / "dedup-other")
    with pytest.raises(ManifestMismatchError, match=r"annotation shards|does not match"):
        dedup_columns(planted[0], tmp_path / "dedup-other")


class Crash(Exception):
    pass


def test_interrupted_run_resumes_to_the_clean_result(planted, tmp_path):
    annotated = planted[0]
    clean = dedup_corpus(annotated, tmp_path / "clean")
    calls = {"n": 0}

    def crash_after_two(progress):
        calls["n"] += 1
        if calls["n"] == 2:
            raise Crash

    out = tmp_path / "resumed"
    with pytest.raises(Crash):
        dedup_corpus(annotated, out, on_progress=crash_after_two)
    assert len(list((out / "signatures").glob("part-*.npy"))) == 2
    assert not (out / "manifest.json").exists()
    resumed = dedup_corpus(annotated, out)
    assert resumed["timings"]["resumed_from_shard"] == 2
    a, b = dedup_columns(annotated, tmp_path / "clean"), dedup_columns(annotated, out)
    for column in ("dedup.cluster", "dedup.size"):
        assert a[column].tolist() == b[column].tolist()
    assert resumed["counts"] == clean["counts"]
