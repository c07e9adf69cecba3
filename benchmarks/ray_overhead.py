"""Docs/s of ``annotate`` on the local engine vs the Ray engine on this one machine.

Baseline: the local engine (raters in this process) on the same files in the same run.
The Ray engine runs the same command through Ray Data (read tasks -> rater actor pool ->
driver writes shards), so on one machine the ratio is its overhead: actor start and model
load per actor, pickling rows through the object store, and the scheduler's own CPU.

Two raters: ``heuristics`` (cheap: overhead dominates) and the shipped default
``assay-mini-v1`` (MiniLM encoder: model time dominates). Ray is started once before the
timed runs (a cluster is already up when you point assay at one); its start time is
printed separately. Each engine's output is checked equal to the other's.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/ray_overhead.py [--docs 2000 --model-docs 240]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _corpus(folder: Path, n: int, files: int) -> Path:
    from assay.corpus import read_documents

    records = []
    for r in read_documents([Path(__file__).resolve().parents[1] / "data" / "demo"]):
        records.append(r)
        if len(records) == n:
            break
    folder.mkdir(parents=True)
    per = -(-len(records) // files)
    for k in range(files):
        with open(folder / f"part-{k}.jsonl", "w", encoding="utf-8") as f:
            for r in records[k * per : (k + 1) * per]:
                f.write(json.dumps(r) + "\n")
    return folder


def _timed(fn) -> tuple[float, dict]:
    t = time.perf_counter()
    manifest = fn()
    return time.perf_counter() - t, manifest


def bench(rater_ref: str, n: int, files: int, root: Path, pools: list[tuple[int, int]]) -> None:
    """Local engine, then the Ray engine with each (actors, CPUs per actor) of ``pools``."""
    import numpy as np
    import pyarrow as pa

    from assay.annotate import annotate, read_annotations
    from assay.ray_engine import RayConfig, RayEngine
    from raters.registry import build_rater

    kwargs = {"device": "cpu"} if rater_ref != "heuristics" else {}
    src = _corpus(root / f"in-{rater_ref}", n, files)
    n = sum(f.read_bytes().count(b"\n") for f in src.iterdir())  # the demo has ~6k docs
    rater = build_rater(rater_ref, **kwargs)
    shard = max(n // 4, 1)
    secs, _ = _timed(
        lambda: annotate([src], root / f"{rater_ref}-local", [rater], shard_size=shard)
    )
    base = n / secs
    print(
        f"{rater_ref:14s} local engine (2 threads)   {n:5d} docs {secs:7.1f} s"
        f" {base:8.1f} docs/s  1.00x"
    )
    reference = read_annotations(root / f"{rater_ref}-local")
    for c, cpus in pools:
        engine = RayEngine(
            [functools.partial(build_rater, rater_ref, **kwargs)],
            config=RayConfig(concurrency=c, num_cpus=cpus, batch_size=64),
        )
        out = root / f"{rater_ref}-ray{c}x{cpus}"
        secs, manifest = _timed(
            lambda out=out, engine=engine: annotate(
                [src], out, [rater], shard_size=shard, engine=engine
            )
        )
        table = read_annotations(out)
        assert table.column("id").equals(reference.column("id")), "rows differ"
        diff = max(
            float(np.max(np.abs(table.column(f).to_numpy() - reference.column(f).to_numpy())))
            for f in table.column_names
            if f.startswith(rater.name + ".") and pa.types.is_floating(table.schema.field(f).type)
        )
        rate = n / secs
        actor_s = manifest["timings"]["rater_seconds_this_run"][rater.name]
        print(
            f"{rater_ref:14s} ray, {c} actor(s) x {cpus} CPU {n:5d} docs {secs:7.1f} s"
            f" {rate:8.1f} docs/s"
            f"  {rate / base:.2f}x   (rater time in actors {actor_s:.1f} s; "
            f"max |score diff| vs local {diff:.1e})"
        )


def _warm_up(root: Path) -> None:
    """One tiny Ray run first, so the first timed run does not pay for Ray starting its
    worker processes (a long-lived cluster has them already)."""
    from assay.annotate import annotate
    from assay.ray_engine import RayConfig, RayEngine
    from raters.registry import build_rater

    src = _corpus(root / "warm", 50, 1)
    engine = RayEngine([functools.partial(build_rater, "heuristics")], config=RayConfig())
    annotate([src], root / "warm-out", [build_rater("heuristics")], engine=engine)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2000, help="documents for heuristics")
    parser.add_argument("--model-docs", type=int, default=240, help="documents for the model")
    parser.add_argument("--files", type=int, default=4)
    args = parser.parse_args()
    import ray
    import torch

    torch.set_num_threads(2)
    t = time.perf_counter()
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    print(f"ray.init (local, 4 logical CPUs): {time.perf_counter() - t:.1f} s (not counted)")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            _warm_up(Path(tmp))
            print(f"warm-up run (worker processes import assay): {time.perf_counter() - t:.1f} s")
            # Ray sets OMP_NUM_THREADS to an actor's CPUs: x 2 gives torch both cores.
            pools = [(1, 1), (2, 1), (1, 2)]
            bench("heuristics", args.docs, args.files, Path(tmp), pools)
            bench("assay-mini-v1", args.model_docs, args.files, Path(tmp), pools)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
