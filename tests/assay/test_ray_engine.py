"""annotate --engine ray on a local Ray instance: same rows as the local engine, retries,
clear failures, bad records and resume."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from assay.annotate import annotate, read_annotations
from assay.errors import AssayError, BadRecordError
from assay.ray_engine import RayConfig, RayEngine
from raters.base import Rater
from raters.heuristics import HeuristicRater
from raters.registry import build_rater

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    # The test-only raters below live in a module Ray's workers cannot import by name
    # (pytest's importlib mode): ship them by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _corpus(tmp_path: Path, demo_records: list[dict], n: int = 300, files: int = 2) -> Path:
    """``n`` demo documents spread over ``files`` JSONL files."""
    folder = tmp_path / "in"
    folder.mkdir()
    per = n // files
    for k in range(files):
        with open(folder / f"part-{k}.jsonl", "w", encoding="utf-8") as f:
            for r in demo_records[k * per : (k + 1) * per]:
                f.write(json.dumps(r) + "\n")
    return folder


def _ray(factories, **config) -> RayEngine:
    return RayEngine(list(factories), config=RayConfig(**{"batch_size": 64, **config}))


class FlakyRater(Rater):
    """Fails on the first batch each instance (each actor) sees, then rates word counts."""

    name = "flaky"

    def __init__(self, failures: int = 1) -> None:
        self.failures = failures

    def score(self, texts):
        if self.failures != 0:
            self.failures -= 1
            raise RuntimeError("injected worker failure")
        return {"words": np.asarray([len(t.split()) for t in texts], dtype=np.int64)}


def test_heuristics_same_rows_and_manifest_as_local(tmp_path, demo_records):
    src = _corpus(tmp_path, demo_records)
    local = annotate([src], tmp_path / "local", [HeuristicRater()], shard_size=100)
    engine = _ray([functools.partial(build_rater, "heuristics")], concurrency=2)
    remote = annotate([src], tmp_path / "ray", [HeuristicRater()], shard_size=100, engine=engine)
    a, b = read_annotations(tmp_path / "local"), read_annotations(tmp_path / "ray")
    assert b.num_rows == 300
    assert a.schema == b.schema
    assert a.equals(b)  # heuristics are exact: same rows, order, columns and values
    assert remote["shards"] == local["shards"] and remote["counts"] == local["counts"]
    assert remote["run"] == local["run"]  # same fingerprint: either engine resumes the other
    assert remote["engine"]["engine"] == "ray" and local["engine"] == {"engine": "local"}
    assert remote["timings"]["rater_seconds_this_run"]["heuristics"] > 0


@pytest.mark.slow
def test_default_rater_assay_mini_same_scores_as_local(tmp_path, demo_records):
    from raters.tokens import TokenCounter

    src = _corpus(tmp_path, demo_records, n=120)
    rater = build_rater("assay-mini-v1", device="cpu")
    local = annotate([src], tmp_path / "local", [rater], shard_size=50, count_tokens=TokenCounter())
    engine = RayEngine(
        [functools.partial(build_rater, "assay-mini-v1", device="cpu")],
        token_counter_factory=TokenCounter,
        config=RayConfig(batch_size=32, concurrency=1, token_actors=1),  # n_tokens stage
    )
    remote = annotate([src], tmp_path / "ray", [rater], shard_size=50, engine=engine)
    a, b = read_annotations(tmp_path / "local"), read_annotations(tmp_path / "ray")
    assert a.schema == b.schema and a.num_rows == b.num_rows == 120
    assert remote["counts"] == local["counts"] and local["counts"]["tokens"] > 0
    for name in a.column_names:
        x, y = a.column(name), b.column(name)
        if pa.types.is_floating(x.type):
            # Actors batch differently (padding), so encoder scores agree to float noise.
            np.testing.assert_allclose(x.to_numpy(), y.to_numpy(), rtol=1e-4, atol=1e-4)
        else:
            assert x.equals(y), name


def test_injected_worker_failure_is_retried_without_loss_or_duplicates(tmp_path, demo_records):
    src = _corpus(tmp_path, demo_records)
    annotate([src], tmp_path / "local", [FlakyRater(failures=0)], shard_size=100)
    engine = _ray([FlakyRater], concurrency=2, max_retries=2)
    annotate([src], tmp_path / "ray", [FlakyRater(failures=0)], shard_size=100, engine=engine)
    a, b = read_annotations(tmp_path / "local"), read_annotations(tmp_path / "ray")
    ids = b.column("id").to_pylist()
    assert len(ids) == len(set(ids)) == 300
    assert a.equals(b)


@pytest.mark.parametrize(
    ("failures", "retries"), [(-1, 1), (1, 0)], ids=["always-fails", "flaky-without-retries"]
)
def test_rater_that_keeps_failing_stops_with_its_name(tmp_path, demo_records, failures, retries):
    src = _corpus(tmp_path, demo_records, n=100)
    engine = _ray([functools.partial(FlakyRater, failures=failures)], max_retries=retries)
    with pytest.raises(AssayError, match=r"rater 'flaky' failed on .*injected worker failure"):
        annotate([src], tmp_path / "ray", [FlakyRater(failures=0)], shard_size=50, engine=engine)


def test_bad_records_raise_with_file_and_line_or_quarantine_like_local(tmp_path, demo_records):
    lines = [json.dumps(r) + "\n" for r in demo_records[:40]]
    lines[25] = '{"id": 1, "text": "unterminated\n'
    src = tmp_path / "in.jsonl"
    src.write_text("".join(lines))
    engine = _ray([functools.partial(build_rater, "heuristics")])
    with pytest.raises(BadRecordError) as ray_err:
        annotate([src], tmp_path / "r1", [HeuristicRater()], shard_size=10, engine=engine)
    with pytest.raises(BadRecordError) as local_err:
        annotate([src], tmp_path / "l1", [HeuristicRater()], shard_size=10)
    assert str(ray_err.value) == str(local_err.value) and "26" in str(ray_err.value)
    # Shards before the bad line were committed on both engines.
    assert sorted(p.name for p in (tmp_path / "r1").glob("part-*")) == sorted(
        p.name for p in (tmp_path / "l1").glob("part-*")
    )
    kw = {"shard_size": 10, "on_error": "quarantine"}
    m_ray = annotate([src], tmp_path / "r2", [HeuristicRater()], engine=engine, **kw)
    m_local = annotate([src], tmp_path / "l2", [HeuristicRater()], **kw)
    assert m_ray["counts"] == m_local["counts"] and m_ray["counts"]["quarantined"] == 1
    for q in sorted((tmp_path / "l2" / "_quarantine").iterdir()):
        assert (tmp_path / "r2" / "_quarantine" / q.name).read_text() == q.read_text()
    assert read_annotations(tmp_path / "r2").equals(read_annotations(tmp_path / "l2"))


def test_interrupted_ray_run_resumes_to_the_same_rows(tmp_path, demo_records):
    src = _corpus(tmp_path, demo_records)
    annotate([src], tmp_path / "local", [HeuristicRater()], shard_size=60)

    class Interrupt(Exception):
        pass

    def stop_after_two(progress):
        if progress.docs >= 120:
            raise Interrupt

    engine = _ray([functools.partial(build_rater, "heuristics")])
    with pytest.raises(Interrupt):
        annotate(
            [src],
            tmp_path / "ray",
            [HeuristicRater()],
            shard_size=60,
            engine=engine,
            on_progress=stop_after_two,
        )
    assert len(list((tmp_path / "ray").glob("part-*.parquet"))) == 2
    manifest = annotate([src], tmp_path / "ray", [HeuristicRater()], shard_size=60, engine=engine)
    # The resumed run reads the second file only from the cursor on (file 0 is complete).
    assert manifest["timings"]["resumed_from_shard"] == 2
    assert read_annotations(tmp_path / "ray").equals(read_annotations(tmp_path / "local"))


def test_bad_config_names_the_flag():
    from assay.errors import ConfigError

    with pytest.raises(ConfigError, match="--concurrency"):
        RayConfig(concurrency=0).validate()
    with pytest.raises(ConfigError, match="--ray-batch-size"):
        RayConfig(batch_size=0).validate()


@pytest.mark.slow  # two CLI subprocesses (imports, tokenizer) on busy cores
def test_cli_engine_ray_joins_a_running_cluster(tmp_path, demo_records):
    import os
    import subprocess

    src = _corpus(tmp_path, demo_records, n=100)
    address = ray.get_runtime_context().gcs_address
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}

    def cli(out: str, *extra: str) -> subprocess.CompletedProcess:
        args = ["annotate", str(src), "-o", str(tmp_path / out), "-r", "heuristics"]
        return subprocess.run(
            [sys.executable, "-m", "assay", *args, "--shard-size", "40", *extra],
            capture_output=True,
            text=True,
            env=env,
        )

    flags = ["--engine", "ray", "--address", address, "--concurrency", "2"]
    proc = cli("ray", *flags, "--ray-batch-size", "32")
    assert proc.returncode == 0, proc.stderr
    assert "annotated 100 documents" in proc.stdout
    assert cli("local").returncode == 0
    a, b = read_annotations(tmp_path / "local"), read_annotations(tmp_path / "ray")
    assert a.equals(b) and b.column("n_tokens").to_pylist() == a.column("n_tokens").to_pylist()
    proc = cli("bad", "--engine", "ray", "--concurrency", "0")
    assert proc.returncode == 2 and "--concurrency must be >= 1" in proc.stderr


def test_raters_are_described_by_a_ray_task_and_bad_refs_are_clean_errors():
    from assay.errors import ConfigError

    described = _ray([functools.partial(build_rater, "heuristics")]).describe_raters()
    assert [r.name for r in described] == ["heuristics"]
    assert described[0].describe() == HeuristicRater().describe()
    with pytest.raises(ConfigError, match="unknown rater 'nosuch'"):
        _ray([functools.partial(build_rater, "nosuch")]).describe_raters()
