"""Embedding throughput: what ``clustering.embed.Embedder`` adds to a plain
``SentenceTransformer.encode`` (which already sorts each call's texts by length).

Arms, on the same texts (MiniLM, batch 64, one encode call per set, as embed does per
shard), each timed after a warm-up:
- ``plain``: ``encode(texts)``, fp32;
- ``precut``: texts cut to 16 x max_seq_length characters first, fp32;
- ``precut+bf16``: the same with bf16 weights (AMX / AVX512-BF16 CPUs, GPUs);
- ``plain+bf16``: bf16 alone.
Quality: cosine of each arm's vector with ``plain``'s (1.0 = unchanged).

Two sets: a stratified sample of the demo corpus (every domain), and its longest documents
(where pre-cutting matters: the tokenizer otherwise reads 100,000+ characters only to keep
the first 256 tokens).

    python benchmarks/embed_throughput.py [--per-domain 40] [--longest 80] [--device cpu]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", type=Path, default=REPO / "data" / "demo")
    p.add_argument("--per-domain", type=int, default=40)
    p.add_argument("--longest", type=int, default=80)
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=1)
    ns = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(REPO))
    import torch

    from assay.corpus import read_documents
    from clustering.embed import Embedder

    records = list(read_documents([ns.corpus]))
    rng = random.Random(0)
    by_domain: dict[str, list[dict]] = {}
    for r in records:
        by_domain.setdefault(r["domain"], []).append(r)
    sample = [
        d
        for k in sorted(by_domain)
        for d in rng.sample(by_domain[k], min(ns.per_domain, len(by_domain[k])))
    ]
    longest = sorted(records, key=lambda r: -len(r["text"]))[: ns.longest]

    def name(kind: str, docs: list[dict]) -> str:
        median = int(np.median([len(r["text"]) for r in docs]))
        return f"{kind} ({len(docs)} docs, median {median:,} chars)"

    sets = {
        name("stratified", sample): [r["text"] for r in sample],
        name("longest", longest): [r["text"] for r in longest],
    }
    arms = {
        "plain": {"max_chars": 10**12, "dtype": "float32"},
        "precut": {"max_chars": None, "dtype": "float32"},
        "precut+bf16": {"max_chars": None, "dtype": "bfloat16"},
        "plain+bf16": {"max_chars": 10**12, "dtype": "bfloat16"},
    }
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {ns.device}")
    rows = []
    for set_name, texts in sets.items():
        ref = None
        for arm, kw in arms.items():
            emb = Embedder(device=ns.device, batch_size=ns.batch_size, **kw).load()
            emb.encode(texts[:16])  # warm-up
            best = float("inf")
            for _ in range(ns.repeats):
                t0 = time.perf_counter()
                v = emb.encode(texts)
                best = min(best, time.perf_counter() - t0)
            if ref is None:
                ref = v
            cos = (v * ref).sum(1)
            rate = len(texts) / best
            rows.append((set_name, arm, rate, best, float(cos.mean()), float(cos.min())))
            print(
                f"{set_name:45s} {arm:12s} {rate:7.1f} docs/s  {best:6.1f} s  "
                f"cos vs plain: mean {cos.mean():.5f} min {cos.min():.5f}",
                flush=True,
            )
    print("\n| set | arm | docs/s | x plain | cos vs plain (mean / min) |")
    print("|---|---|---|---|---|")
    for set_name, arm, rate, _, mean, low in rows:
        base = next(r[2] for r in rows if r[0] == set_name and r[1] == "plain")
        print(f"| {set_name} | {arm} | {rate:.1f} | {rate / base:.2f}x | {mean:.5f} / {low:.5f} |")
    date = dt.date.today().isoformat()
    print(f"\n(measured {date} on {platform.node()}, {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
