"""annotate: shards + manifest, quarantine, refusal of a different run, resume after SIGKILL."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from assay.annotate import annotate, read_annotations
from assay.errors import BadRecordError, ConfigError, ManifestMismatchError
from raters.heuristics import HeuristicRater

REPO = Path(__file__).resolve().parents[2]


def _write_jsonl(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(lines))
    return path


def _corpus(tmp_path: Path, demo_records: list[dict], n: int = 120) -> Path:
    lines = [(json.dumps(r) + "\n").encode() for r in demo_records[:n]]
    return _write_jsonl(tmp_path / "in.jsonl", lines)


def test_shards_manifest_and_columns(tmp_path, demo_records):
    src = _corpus(tmp_path, demo_records, 120)
    manifest = annotate([src], tmp_path / "out", [HeuristicRater()], shard_size=50)
    assert manifest["counts"] == {"rows": 120, "quarantined": 0, "tokens": 0, "shards": 3}
    assert [p.name for p in sorted((tmp_path / "out").glob("part-*.parquet"))] == [
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.parquet",
    ]
    table = read_annotations(tmp_path / "out")
    assert table.column("id").to_pylist() == [r["id"] for r in demo_records[:120]]
    assert table.column("domain").to_pylist() == [r["domain"] for r in demo_records[:120]]
    assert "heuristics.rps_doc_word_count" in table.column_names
    assert manifest["inputs"][0]["sha256"] and manifest["inputs"][0]["size"] == src.stat().st_size
    assert manifest["models"][0]["name"] == "heuristics"
    assert manifest["packages"]["pyarrow"]
    assert not (tmp_path / "out" / "_run.json").exists()


def test_bad_record_stops_by_default_and_quarantines_on_request(tmp_path, demo_records):
    good = [(json.dumps(r) + "\n").encode() for r in demo_records[:30]]
    lines = [
        *good[:10],
        b'{"id": 1, "text": "unterminated\n',
        *good[10:20],
        b'{"id": 2}\n',
        *good[20:],
    ]
    src = _write_jsonl(tmp_path / "bad.jsonl", lines)
    with pytest.raises(BadRecordError, match=r"bad\.jsonl:11: invalid JSON"):
        annotate([src], tmp_path / "strict", [HeuristicRater()], shard_size=8)
    manifest = annotate(
        [src], tmp_path / "q", [HeuristicRater()], shard_size=8, on_error="quarantine"
    )
    assert manifest["counts"]["rows"] == 30 and manifest["counts"]["quarantined"] == 2
    quarantined = [
        json.loads(line)
        for f in sorted((tmp_path / "q" / "_quarantine").glob("*.jsonl"))
        for line in f.read_text().splitlines()
    ]
    assert [(q["line"], q["reason"].split(":")[0]) for q in quarantined] == [
        (11, "invalid JSON"),
        (22, "missing text field 'text'"),
    ]
    assert quarantined[0]["raw"].startswith('{"id": 1')
    assert read_annotations(tmp_path / "q").num_rows == 30


def test_rerun_of_finished_run_is_a_no_op_and_other_runs_are_refused(tmp_path, demo_records):
    src = _corpus(tmp_path, demo_records, 20)
    out = tmp_path / "out"
    first = annotate([src], out, [HeuristicRater()], shard_size=8)
    mtime = (out / "part-00000.parquet").stat().st_mtime_ns
    again = annotate([src], out, [HeuristicRater()], shard_size=8)
    assert again["created"] == first["created"]
    assert (out / "part-00000.parquet").stat().st_mtime_ns == mtime
    with pytest.raises(ManifestMismatchError, match="shard_size"):
        annotate([src], out, [HeuristicRater()], shard_size=5)
    annotate([src], out, [HeuristicRater()], shard_size=5, overwrite=True)
    assert len(list(out.glob("part-*.parquet"))) == 4
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("precious")
    with pytest.raises(ManifestMismatchError, match="not an assay annotation run"):
        annotate([src], foreign, [HeuristicRater()], overwrite=True)
    assert (foreign / "keep.txt").read_text() == "precious"


def test_bad_flags_name_the_flag(tmp_path, demo_records):
    src = _corpus(tmp_path, demo_records, 3)
    with pytest.raises(ConfigError, match="--shard-size must be > 0, got 0"):
        annotate([src], tmp_path / "o", [HeuristicRater()], shard_size=0)
    with pytest.raises(ConfigError, match="--on-error"):
        annotate([src], tmp_path / "o", [HeuristicRater()], on_error="ignore")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "assay", *args]


@pytest.mark.slow
def test_resume_after_sigkill_gives_exactly_the_clean_rows(tmp_path, demo_dir):
    """Kill `assay annotate` at random moments, rerun, compare with an uninterrupted run."""
    args = ["annotate", str(demo_dir), "--rater", "heuristics", "--shard-size", "400"]
    args += ["--tokenizer", "none"]
    clean, resumed = tmp_path / "clean", tmp_path / "resumed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run(_cli(*args, "-o", str(clean)), check=True, env=env, cwd=REPO)
    rng = random.Random(1234)
    kills = 0
    for _ in range(3):
        proc = subprocess.Popen(_cli(*args, "-o", str(resumed)), env=env, cwd=REPO)
        deadline = time.monotonic() + 60
        while not list(resumed.glob("part-*.parquet")) and time.monotonic() < deadline:
            time.sleep(0.05)  # wait for real progress, then kill somewhere after it
        time.sleep(rng.uniform(0.0, 1.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 1, "the run finished before it could be killed; use smaller shards"
    subprocess.run(_cli(*args, "-o", str(resumed)), check=True, env=env, cwd=REPO)
    a, b = read_annotations(clean), read_annotations(resumed)
    assert b.num_rows == a.num_rows
    assert b.column("id").to_pylist() == a.column("id").to_pylist()
    assert len(set(b.column("id").to_pylist())) == b.num_rows
    assert b.drop_columns([]).equals(a)
    assert not list(resumed.glob(".*tmp"))
    meta = json.loads((resumed / "manifest.json").read_text())
    assert meta["counts"]["rows"] == a.num_rows
    assert pq.read_schema(resumed / "part-00000.parquet").metadata[b"assay"]
