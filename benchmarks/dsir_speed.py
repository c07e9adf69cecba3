"""DSIR rater speed against the heuristics rater (the named baseline), same texts, same run.

Fits DSIR's two bucket distributions (target: 100 encyclopedic documents; raw: the whole
demo corpus), then scores the demo corpus with both raters, ``--repeats`` times each,
alternating, and prints docs/s and MB/s of each and the ratio of the medians.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/dsir_speed.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--demo", default=str(REPO / "data" / "demo"))
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from assay.corpus import read_documents
    from raters.dsir import DSIRRater
    from raters.heuristics import HeuristicRater

    docs = list(read_documents([args.demo]))
    texts = [d["text"] for d in docs]
    mb = sum(len(t.encode()) for t in texts) / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "target.jsonl"
        wiki = [d for d in docs if d["domain"] == "encyclopedic"][:100]
        target.write_text("".join(json.dumps(d) + "\n" for d in wiki))
        t0 = time.perf_counter()
        dsir = DSIRRater(str(target), [args.demo])
        fit = time.perf_counter() - t0
    heur = HeuristicRater()
    times: dict[str, list[float]] = {"dsir": [], "heuristics": []}
    for _ in range(args.repeats):
        for name, rater in (("dsir", dsir), ("heuristics", heur)):
            t0 = time.perf_counter()
            for i in range(0, len(texts), 1000):
                rater.score(texts[i : i + 1000])
            times[name].append(time.perf_counter() - t0)
    print(f"{len(texts):,} docs, {mb:.1f} MB; DSIR fit (target + raw counts) {fit:.1f} s")
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"{name:10s} {len(texts) / m:8.0f} docs/s {mb / m:6.2f} MB/s (median of {len(ts)})")
    ratio = statistics.median(times["heuristics"]) / statistics.median(times["dsir"])
    print(f"dsir / heuristics speed: {ratio:.2f}x")


if __name__ == "__main__":
    main()
