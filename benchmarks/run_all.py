"""Run every benchmark with its defaults; each prints a RESULTS.md row at its end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = [
    "encoder_throughput.py",
    "annotate_memory.py",
    "embed_throughput.py",
    "kmeans_faiss_vs_sklearn.py",
    "decoder_engines.py",
]

if __name__ == "__main__":
    failed = []
    for name in BENCHMARKS:
        print(f"\n=== {name} ===", flush=True)
        if subprocess.run([sys.executable, str(HERE / name)]).returncode != 0:
            failed.append(name)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")
