"""Load test of the rating service: throughput and latency, batching on vs off, a soak.

Starts ``assay serve`` (the shipped default raters, assay-mini-v1 + heuristics, and the
shipped limits; embed off) on 127.0.0.1 twice, side by side: with adaptive batching
(``--max-batch-size 64``) and without (``--max-batch-size 1``, the baseline: one model
call per text). At each concurrency (1, 8, 32, 64 asyncio + httpx clients, each posting
one real demo document per request in a closed loop) the two take turns in ABBA order
for ``--seconds`` each, so that other jobs' load on a shared machine falls on both
alike; prints docs/s, p50/p99 latency, errors and the ratio batching/baseline. Before
that, the same raters in-process at batch 1 vs 64 give the ceiling batching can reach.
Then a soak: batching on, 32 clients for ``--soak-seconds``, the server's resident
memory (all its processes) sampled every 5 s, errors counted.

    python benchmarks/serve_load.py                       # ~7 min on 2 cores
    python benchmarks/serve_load.py --soak-seconds 300    # the full 5-minute soak

Clients and server share the machine: on 2 cores the clients' own CPU time (JSON,
HTTP) is part of every figure, as it would be for a co-located pipeline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def load_texts(n: int, seed: int) -> list[str]:
    from assay.corpus import read_documents

    # Cut at the service's max_chars (100,000), as its 413 answer tells clients to: the
    # raters read only the head, and a refused request would count as an error here.
    docs = [d["text"][:100_000] for d in read_documents([REPO / "data" / "demo"])]
    random.Random(seed).shuffle(docs)
    return docs[:n]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(
        self, max_batch_size: int, args: argparse.Namespace, log: Path, workers: int = 1
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log, "w")  # noqa: SIM115 - closed in stop()
        command = [sys.executable, "-m", "assay", "serve", "--port", str(self.port)]
        command += ["--max-batch-size", str(max_batch_size), "--threads", str(args.threads)]
        command += ["--dtype", args.dtype, "--workers", str(workers)]
        command += ["--embed-model", "none"]  # the shipped limits and timeouts
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "BENTOML_DO_NOT_TRACK": "True"}
        env.pop("ASSAY_API_KEY", None)
        self.proc = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 300) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited with {self.proc.returncode}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise SystemExit("server not ready")

    def rss_mb(self) -> float:
        import psutil

        try:
            root = psutil.Process(self.proc.pid)
            procs = [root, *root.children(recursive=True)]
            return sum(p.memory_info().rss for p in procs) / 2**20
        except psutil.NoSuchProcess:
            return float("nan")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()


async def closed_loop(url: str, texts: list[str], clients: int, seconds: float) -> dict[str, Any]:
    """``clients`` tasks, each posting one text at a time until ``seconds`` have passed."""
    import httpx

    latencies: list[float] = []
    errors: dict[str, int] = {}
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        start = time.perf_counter()
        stop_at = start + seconds

        async def client(k: int) -> None:
            i = k
            while time.perf_counter() < stop_at:
                text = texts[i % len(texts)]
                i += clients
                t0 = time.perf_counter()
                try:
                    response = await http.post("/v1/rate", json={"texts": [text]})
                    ok = response.status_code == 200
                    key = str(response.status_code)
                except httpx.HTTPError as e:
                    ok, key = False, type(e).__name__
                if ok:
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors[key] = errors.get(key, 0) + 1

        await asyncio.gather(*(client(k) for k in range(clients)))
        elapsed = time.perf_counter() - start
    lat = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    return {
        "clients": clients,
        "docs": len(latencies),
        "seconds": elapsed,
        "docs_per_s": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "errors": errors,
        "latencies_ms": np.array(latencies) * 1000,
    }


def merge(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Several timed runs of one configuration as one: docs over total time, pooled
    latencies, summed errors."""
    lat = np.concatenate([r.pop("latencies_ms") for r in rows])
    errors: dict[str, int] = {}
    for r in rows:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    docs, seconds = sum(r["docs"] for r in rows), sum(r["seconds"] for r in rows)
    return {
        "clients": rows[0]["clients"],
        "docs": docs,
        "seconds": round(seconds, 1),
        "docs_per_s": docs / seconds,
        "p50_ms": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
        "p99_ms": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
        "errors": errors,
    }


def compare(args: argparse.Namespace, texts: list[str], tmp: Path) -> tuple[list[dict], list[dict]]:
    """Both servers up at once (the idle one costs no CPU); at each concurrency the two
    configurations take turns (ABBA...), so that the load other jobs put on a shared
    machine falls on both alike rather than on whichever ran later."""
    configs = {"batching": 64, "max_batch_size=1": 1}
    servers = {
        name: ServerProcess(
            batch, args, tmp / f"{batch}.log", args.baseline_workers if batch == 1 else 1
        )
        for name, batch in configs.items()
    }
    try:
        for name, server in servers.items():
            t0 = time.perf_counter()
            server.wait_ready()
            print(f"[{name}] ready ({time.perf_counter() - t0:.1f} s)", flush=True)
            asyncio.run(closed_loop(server.url, texts, 8, args.warmup))  # trains the queue
        results: dict[str, list[dict]] = {name: [] for name in configs}
        for level, clients in enumerate(args.clients):
            runs: dict[str, list[dict]] = {name: [] for name in configs}
            for turn in range(2 * args.turns):
                name = list(configs)[(0, 1, 1, 0)[turn % 4] ^ (level % 2)]  # ABBA, BAAB, ...
                run = asyncio.run(
                    closed_loop(servers[name].url, texts, clients, args.seconds / args.turns)
                )
                runs[name].append(run)
            for name in configs:
                row = merge(runs[name]) | {"config": name}
                results[name].append(row)
                print(
                    f"[{name}] {clients:3d} clients: {row['docs_per_s']:6.1f} docs/s  "
                    f"p50 {row['p50_ms']:7.1f} ms  p99 {row['p99_ms']:7.1f} ms  "
                    f"errors {row['errors'] or 0}",
                    flush=True,
                )
        return results["batching"], results["max_batch_size=1"]
    finally:
        for server in servers.values():
            server.stop()


def soak(args: argparse.Namespace, texts: list[str], tmp: Path) -> dict[str, Any]:
    server = ServerProcess(64, args, tmp / "soak.log")
    try:
        server.wait_ready()
        asyncio.run(closed_loop(server.url, texts, 8, args.warmup))
        samples: list[tuple[float, float]] = []

        async def sample() -> None:
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < args.soak_seconds:
                samples.append((time.perf_counter() - t0, server.rss_mb()))
                await asyncio.sleep(5)

        async def both() -> dict[str, Any]:
            load = closed_loop(server.url, texts, 32, args.soak_seconds)
            result, _ = await asyncio.gather(load, sample())
            return result

        result = asyncio.run(both())
        result.pop("latencies_ms")
        samples.append((args.soak_seconds, server.rss_mb()))
        # Memory grows while the first batches of each shape allocate (allocator caches);
        # "flat" is judged after that: the slope over the last two thirds of the soak.
        t = np.array([s for s, _ in samples])
        rss = np.array([m for _, m in samples])
        late = t >= args.soak_seconds / 3
        slope = float(np.polyfit(t[late], rss[late], 1)[0] * 60) if late.sum() > 1 else 0.0
        result |= {
            "rss_mb_start": float(rss[0]),
            "rss_mb_at_one_third": float(rss[late][0]),
            "rss_mb_end": float(rss[-1]),
            "rss_mb_per_min_after_one_third": slope,
            "rss_samples": [(round(s), round(m, 1)) for s, m in samples],
        }
        print(
            f"[soak] {args.soak_seconds:.0f} s, 32 clients: {result['docs_per_s']:.1f} docs/s, "
            f"p50 {result['p50_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms, errors "
            f"{result['errors'] or 0}; RSS {rss[0]:.0f} MB at start, {rss[late][0]:.0f} MB at "
            f"1/3, {rss[-1]:.0f} MB at the end ({slope:+.1f} MB/min over the last 2/3)",
            flush=True,
        )
        return result
    finally:
        server.stop()


def model_ceiling(texts: list[str], threads: int, dtype: str) -> dict[str, float]:
    """What batching can give at most here: the default raters called in-process on the
    same texts, one text per call vs 64 per call (no HTTP, no queue)."""
    import torch

    from raters.registry import build_rater

    torch.set_num_threads(threads)
    raters = [build_rater("assay-mini-v1", device="cpu", dtype=dtype), build_rater("heuristics")]
    sample = texts[:128]
    for rater in raters:
        rater.score(sample[:4])
    out = {}
    for size in (1, 64):
        t0 = time.perf_counter()
        for i in range(0, len(sample), size):
            for rater in raters:
                rater.score(sample[i : i + size])
        out[f"batch_{size}_docs_per_s"] = len(sample) / (time.perf_counter() - t0)
    out["ratio"] = out["batch_64_docs_per_s"] / out["batch_1_docs_per_s"]
    print(
        f"[in-process ceiling] batch 1: {out['batch_1_docs_per_s']:.1f} docs/s, batch 64: "
        f"{out['batch_64_docs_per_s']:.1f} docs/s, ratio {out['ratio']:.2f}x",
        flush=True,
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument(
        "--seconds", type=float, default=20, help="per concurrency level and configuration"
    )
    parser.add_argument(
        "--turns", type=int, default=2, help="ABBA turns per level (each seconds/turns/2)"
    )
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--soak-seconds", type=float, default=60)
    parser.add_argument("--threads", type=int, default=1, help="torch threads in the server")
    parser.add_argument(
        "--dtype", default="auto", help="the server's --dtype (auto = float32 on CPU)"
    )
    parser.add_argument(
        "--baseline-workers",
        type=int,
        default=1,
        help="worker processes of the max_batch_size=1 server (the batching one has 1)",
    )
    parser.add_argument("--docs", type=int, default=2000, help="distinct demo docs cycled")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    texts = load_texts(args.docs, seed=0)
    chars = np.array([len(t) for t in texts])
    print(f"{len(texts)} demo docs, median {np.median(chars):.0f} chars", flush=True)
    ceiling = model_ceiling(texts, args.threads, args.dtype)
    with tempfile.TemporaryDirectory() as tmp:
        on, off = compare(args, texts, Path(tmp))
        soaked = soak(args, texts, Path(tmp)) if args.soak_seconds > 0 else None
    load = os.getloadavg()[0]
    print(f"\nload average at the end: {load:.1f} ({os.cpu_count()} CPUs)")
    print(
        "| clients | batching docs/s | p50 / p99 ms | max_batch_size=1 docs/s | p50 / p99 ms "
        "| ratio |"
    )
    print("|---|---|---|---|---|---|")
    for a, b in zip(on, off, strict=True):
        ratio = a["docs_per_s"] / b["docs_per_s"] if b["docs_per_s"] else float("nan")
        print(
            f"| {a['clients']} | {a['docs_per_s']:.1f} | {a['p50_ms']:.0f} / {a['p99_ms']:.0f} "
            f"| {b['docs_per_s']:.1f} | {b['p50_ms']:.0f} / {b['p99_ms']:.0f} | {ratio:.2f}x |"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "date": dt.date.today().isoformat(),
                    "args": {k: str(v) for k, v in vars(args).items()},
                    "batching": on,
                    "no_batching": off,
                    "soak": soaked,
                    "in_process_ceiling": ceiling,
                    "load": load,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
