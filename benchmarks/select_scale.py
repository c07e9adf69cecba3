"""``select`` at scale: 10M synthetic documents in 50 groups, quotas + Gumbel top-k + exact
token budget, timed against one global ``np.argsort`` of the same scores (the least work
any exact ranking of the corpus does), measured in the same run.

Synthetic data: scores ~ N(0, 1), tokens ~ lognormal (median ~400, long tail, clipped to
[1, 100k]), groups with Zipf-like sizes, target weights ~ Dirichlet(1) (so some groups
run short and their quota is redistributed). Budget: 20% of all tokens.

    python benchmarks/select_scale.py [--docs 10000000] [--groups 50] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    from selector.gumbel import choose

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=10_000_000)
    ap.add_argument("--groups", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    n, g = args.docs, args.groups
    scores = rng.standard_normal(n)
    tokens = np.clip(rng.lognormal(6.0, 1.0, n), 1, 100_000).astype(np.int64)
    sizes = 1.0 / np.arange(1, g + 1)
    group = rng.choice(g, size=n, p=sizes / sizes.sum()).astype(np.int64)
    weights = rng.dirichlet(np.ones(g))
    budget = int(tokens.sum() * 0.2)
    print(f"{n:,} docs, {g} groups, {tokens.sum():,} tokens, budget {budget:,}", flush=True)

    def best_of(fn) -> float:
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)

    base = best_of(lambda: np.argsort(-scores, kind="stable"))
    rows = []
    for temperature in (0.0, 1.0):
        out = {}

        def run(temperature: float = temperature, out: dict = out) -> None:
            out["c"] = choose(scores, tokens, group, weights, budget, temperature=temperature)

        secs = best_of(run)
        c = out["c"]
        selected = int(tokens[c.rows].sum())
        short = sum(x["short"] for x in c.groups)
        assert selected <= budget
        rows.append((temperature, secs, selected, c.rows.size, short))
    print(
        f"\nbaseline: one global np.argsort of {n:,} scores: {base:.2f} s (best of {args.repeats})"
    )
    print(
        "| temperature | select s | vs argsort | tokens selected / budget | docs | short groups |"
    )
    print("|---|---|---|---|---|---|")
    for temperature, secs, selected, docs, short in rows:
        print(
            f"| {temperature:g} | {secs:.2f} | {secs / base:.2f}x | "
            f"{selected:,} / {budget:,} (left {budget - selected:,}) | {docs:,} | {short} |"
        )


if __name__ == "__main__":
    main()
