"""Peak RSS of `assay annotate` on the demo corpus vs the same corpus repeated N times.

Streaming means memory is set by the shard size, not the corpus size: the goal is < 20%
growth from 1x to 10x. Each run is a fresh `assay annotate` process; its peak RSS comes
from the kernel's accounting for that child (os.wait4), so nothing else is counted.

    python benchmarks/annotate_memory.py [--repeat 10] [--rater heuristics]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def repeat_corpus(src: Path, dst: Path, times: int) -> int:
    """Write ``times`` copies of every demo document (ids made unique) to one .jsonl.gz."""
    files = sorted(src.glob("*.jsonl.gz"))
    n = 0
    with gzip.open(dst, "wt", encoding="utf-8", compresslevel=1) as out:
        for copy in range(times):
            for f in files:
                with gzip.open(f, "rt", encoding="utf-8") as fin:
                    for line in fin:
                        record = json.loads(line)
                        record["id"] = f"{record['id']}~{copy}"
                        out.write(json.dumps(record, ensure_ascii=False) + "\n")
                        n += 1
    return n


def peak_rss_mb(args: list[str]) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of one `assay` process."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "assay", *args], env=env, cwd=REPO)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"assay {' '.join(args)} failed")
    return usage.ru_maxrss / 1024, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=REPO / "data" / "demo")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--rater", action="append", default=None)
    parser.add_argument("--shard-size", type=int, default=2000)
    ns = parser.parse_args()
    raters = ns.rater or ["heuristics"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        big = tmp / "repeated.jsonl.gz"
        n_big = repeat_corpus(ns.corpus, big, ns.repeat)
        common = ["--shard-size", str(ns.shard_size)]
        for r in raters:
            common += ["--rater", r]
        rss1, t1 = peak_rss_mb(["annotate", str(ns.corpus), "-o", str(tmp / "a1"), *common])
        rssn, tn = peak_rss_mb(["annotate", str(big), "-o", str(tmp / "an"), *common])
    growth = rssn / rss1 - 1
    print(f"1x:  {n_big // ns.repeat:,} docs  peak RSS {rss1:,.0f} MB  {t1:,.1f} s")
    print(f"{ns.repeat}x: {n_big:,} docs  peak RSS {rssn:,.0f} MB  {tn:,.1f} s")
    print(f"growth: {growth:+.1%} (goal < +20%)")
    date = dt.date.today().isoformat()
    print(
        f"| {date} | {platform.node()} ({os.cpu_count()} cores) | annotate peak RSS, "
        f"raters {'+'.join(raters)}, tokenizer smollm2 | 1x {rss1:,.0f} MB | "
        f"{ns.repeat}x {rssn:,.0f} MB | {growth:+.1%} |"
    )


if __name__ == "__main__":
    main()
