"""FAISS k-means (clustering.kmeans.KMeans) vs scikit-learn's KMeans (lloyd), same data,
same initial centroids, same number of iterations, partitions compared the same way.

Data: N synthetic points (default 1,000,000 x 384) made from real MiniLM embeddings of
the demo corpus: each point is a random real embedding plus Gaussian noise, renormalised
to unit length (like real sentence embeddings), written once as a float32 .npy file.

Methods (each run in a fresh process, so that time and memory are its own):
- ``sklearn``: ``sklearn.cluster.KMeans(algorithm="lloyd", init=<same rows>, n_init=1,
  max_iter=I, tol=0)`` on the whole array (its default ``copy_x=True``);
- ``faiss-pN``: ours, the way ``assay cluster`` runs it: train on a seeded sample of N
  points per centroid (256 is FAISS's own default), then assign every point, streamed in
  chunks from the memory-mapped file; ``faiss-all`` trains on every point.

Time: wall seconds and CPU seconds (user + system, all threads) of the fit and the final
assignment; on a shared machine the wall time swings with other jobs' load, CPU time less.

Quality: the SSE of each point to the mean of its cluster (the k-means objective, computed
here from each method's final labels in float64, the same way for all). Memory: peak
anonymous RSS of the process (heap and copies; pages of the memory-mapped input file are
file-backed and not counted there) and peak total RSS (VmHWM), both from /proc.

    python benchmarks/kmeans_faiss_vs_sklearn.py --embeddings out/demo/embeddings \\
        [--n 1000000] [--k 1000 4000] [--n-iter 10] [--ppc 256 64] [--gpu]

``--gpu`` adds the FAISS runs on a GPU (needs faiss-gpu); without it, the CPU runs only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------
# child process: one method, one k
# ---------------------------------------------------------------------------------------


def _memory_watch() -> tuple[dict[str, int], threading.Event]:
    """Peak RssAnon (kB) sampled every 20 ms in a thread; VmHWM read at the end."""
    peak = {"anon_kb": 0}
    stop = threading.Event()

    def read() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
        return 0

    def loop() -> None:
        while not stop.is_set():
            peak["anon_kb"] = max(peak["anon_kb"], read())
            time.sleep(0.02)

    threading.Thread(target=loop, daemon=True).start()
    return peak, stop


def _vm_hwm_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def child(ns: argparse.Namespace) -> None:
    x = np.load(ns.data, mmap_mode="r")
    init = np.load(ns.init)
    sys.path.insert(0, str(REPO))
    from clustering.kmeans import import_faiss

    import_faiss()  # before the clock starts, like sklearn below
    import sklearn.cluster

    peak, stop = _memory_watch()
    time.sleep(0.1)
    base_anon = peak["anon_kb"]
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    detail: dict = {}
    if ns.method == "sklearn":
        km = sklearn.cluster.KMeans(
            ns.k, init=init, n_init=1, max_iter=ns.n_iter, tol=0.0, algorithm="lloyd"
        )
        km.fit(x)
        labels = km.labels_.astype(np.int32)
        detail["n_iter_run"] = int(km.n_iter_)
    else:
        from clustering.kmeans import KMeans

        km = KMeans(
            ns.k,
            n_iter=ns.n_iter,
            sample_size=min(ns.sample, len(x)),
            seed=0,
            gpu="yes" if ns.gpu else "no",
            init_centroids=init,
        )
        rows = km.train_rows(len(x))
        sample = np.asarray(x[rows]) if len(rows) < len(x) else x
        t_sample = time.perf_counter()
        km.fit_sample(sample)
        del sample
        t_train = time.perf_counter()
        labels, _ = km.assign(x)  # streamed: 65,536 rows at a time from the memmap
        detail = {
            "sample_seconds": round(t_sample - t0, 2),
            "train_seconds": round(t_train - t_sample, 2),
            "assign_seconds": round(time.perf_counter() - t_train, 2),
            "train_rows": len(rows),
        }
    seconds = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage.ru_utime - usage0.ru_utime) + (usage.ru_stime - usage0.ru_stime)
    stop.set()
    np.save(ns.labels, labels)
    print(
        json.dumps(
            {
                "seconds": round(seconds, 2),
                "cpu_seconds": round(cpu, 2),
                "peak_anon_mb": round((peak["anon_kb"] - base_anon) / 1024, 1),
                "peak_rss_mb": round(_vm_hwm_kb() / 1024, 1),
                **detail,
            }
        )
    )


# ---------------------------------------------------------------------------------------
# parent: data, runs, SSE, table
# ---------------------------------------------------------------------------------------


def make_data(embeddings: Path, n: int, path: Path, noise: float, seed: int) -> dict:
    """N points = random real embedding + N(0, noise^2) per dim, renormalised."""
    sys.path.insert(0, str(REPO))
    from clustering.aligned import load_embeddings

    _, arrays = load_embeddings(embeddings)
    real = np.concatenate([np.asarray(a, dtype=np.float32) for a in arrays])
    real /= np.linalg.norm(real, axis=1, keepdims=True)
    if path.exists() and np.load(path, mmap_mode="r").shape == (n, real.shape[1]):
        return {"real": len(real)}
    rng = np.random.default_rng(seed)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, real.shape[1]))
    for lo in range(0, n, 100_000):
        m = min(100_000, n - lo)
        chunk = real[rng.integers(len(real), size=m)]
        chunk += rng.normal(scale=noise, size=chunk.shape).astype(np.float32)
        chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
        out[lo : lo + m] = chunk
    out.flush()
    del out
    return {"real": len(real)}


def sse(x: np.ndarray, labels: np.ndarray, k: int, chunk: int = 100_000) -> float:
    """Sum of squared distances of each point to the mean of its cluster (float64):
    sum ||x||^2 - sum_c ||S_c||^2 / n_c, streamed."""
    sums = np.zeros((k, x.shape[1]))
    counts = np.zeros(k)
    total = 0.0
    for lo in range(0, len(x), chunk):
        xc = np.asarray(x[lo : lo + chunk], dtype=np.float64)
        lab = labels[lo : lo + chunk]
        np.add.at(sums, lab, xc)
        counts += np.bincount(lab, minlength=k)
        total += float((xc * xc).sum())
    nz = counts > 0
    return total - float(((sums[nz] ** 2).sum(1) / counts[nz]).sum())


def run_child(args: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        raise SystemExit(f"child failed: {' '.join(args)}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--embeddings", type=Path, default=REPO / "out" / "demo" / "embeddings")
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--k", type=int, nargs="+", default=[1000, 4000])
    p.add_argument("--n-iter", type=int, default=10)
    p.add_argument("--ppc", type=int, nargs="+", default=[256, 64], help="points per centroid")
    p.add_argument("--noise", type=float, default=0.03, help="per-dimension noise std")
    p.add_argument("--work", type=Path, default=Path("/tmp/assay-kmeans-bench"))
    p.add_argument("--gpu", action="store_true", help="also run FAISS on a GPU (faiss-gpu)")
    p.add_argument("--skip-sklearn", action="store_true")
    p.add_argument("--skip-all", action="store_true", help="no FAISS run on every point")
    # child mode
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--method", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--init", help=argparse.SUPPRESS)
    p.add_argument("--labels", help=argparse.SUPPRESS)
    p.add_argument("--sample", type=int, help=argparse.SUPPRESS)
    p.add_argument("--child-k", dest="k_child", type=int, help=argparse.SUPPRESS)
    ns = p.parse_args()
    if ns.child:
        ns.k = ns.k_child
        child(ns)
        return
    if not (ns.embeddings / "manifest.json").exists():
        raise SystemExit(
            f"{ns.embeddings} is not an embeddings folder: run `make demo` (or assay embed) first"
        )
    ns.work.mkdir(parents=True, exist_ok=True)
    data = ns.work / f"data-{ns.n}.npy"
    t0 = time.perf_counter()
    info = make_data(ns.embeddings, ns.n, data, ns.noise, seed=0)
    x = np.load(data, mmap_mode="r")
    took = time.perf_counter() - t0
    print(
        f"data: {ns.n:,} x {x.shape[1]} float32 ({x.nbytes / 2**20:,.0f} MB) from "
        f"{info['real']:,} real embeddings + noise {ns.noise} ({took:.0f} s)"
    )
    results = []
    for k in ns.k:
        init_path = ns.work / f"init-{k}.npy"
        rows = np.sort(np.random.default_rng(k).choice(ns.n, size=k, replace=False))
        np.save(init_path, np.asarray(x[rows]))
        runs: list[tuple[str, int, bool]] = []
        sizes = {min(ns.n, ppc * k) for ppc in ns.ppc} | ({ns.n} if not ns.skip_all else set())
        sizes = sorted(sizes, reverse=True)
        for size in sizes:
            name = "faiss-all" if size == ns.n else f"faiss-p{size // k}"
            runs.append((name, size, False))
            if ns.gpu:
                runs.append((name + "-gpu", size, True))
        if not ns.skip_sklearn:
            runs.insert(0, ("sklearn", ns.n, False))
        for name, size, gpu in runs:
            labels = ns.work / f"labels-{k}-{name}.npy"
            args = ["--method", "sklearn" if name == "sklearn" else "faiss", "--data", str(data)]
            args += ["--init", str(init_path), "--labels", str(labels), "--child-k", str(k)]
            args += ["--n-iter", str(ns.n_iter), "--sample", str(size)]
            r = run_child(args + (["--gpu"] if gpu else []))
            r |= {"k": k, "method": name, "sse": sse(x, np.load(labels), k)}
            results.append(r)
            print(json.dumps(r), flush=True)
    # table with ratios to scikit-learn
    print(f"\n{ns.n:,} x {x.shape[1]}, {ns.n_iter} iterations, same initial centroids; "
          f"{os.cpu_count()} cores")  # fmt: skip
    print(
        "| k | method | train rows | wall s | x sklearn | CPU s | SSE / sklearn "
        "| peak anon MB | peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    date = dt.date.today().isoformat()
    for r in results:
        ref = next((q for q in results if q["k"] == r["k"] and q["method"] == "sklearn"), None)
        speed = f"{ref['seconds'] / r['seconds']:.2f}x" if ref else "-"
        ratio = f"{r['sse'] / ref['sse']:.4f}" if ref else f"{r['sse']:.1f}"
        rows = r.get("train_rows", ns.n)
        print(f"| {r['k']:,} | {r['method']} | {rows:,} | {r['seconds']:.1f} | {speed} | "
              f"{r['cpu_seconds']:.0f} | {ratio} | "
              f"{r['peak_anon_mb']:,.0f} | {r['peak_rss_mb']:,.0f} |")  # fmt: skip
    print(f"\n(measured {date} on {platform.node()}, {platform.processor() or platform.machine()})")
    (ns.work / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
