"""Speed of the lang rater and of near-duplicate signatures against the heuristics rater
(the named baseline), same texts, same run.

On the demo corpus, ``--repeats`` times each, alternating, in chunks of 1,000 documents:

* ``heuristics``: the baseline;
* ``lang``: the lang rater (py3langid's model walked for a batch at once, first 2,000
  characters);
* ``py3langid``: py3langid's own ``classify``, one document at a time, on the same
  2,000 characters (what the batched walk replaces);
* ``minhash``: ``assay dedup``'s per-document stage (word 5-gram shingles + 128-slot
  datasketch MinHash).

Then, once: the LSH stage over all signatures (band keys, candidate pairs, verification,
components) with the exact Jaccard of the pairs it kept (its precision), and two
agreement figures: the lang rater vs py3langid on the same text
(should be 100%) and its first-2,000-characters label vs the whole document's.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/lang_dedup_speed.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--demo", default=str(REPO / "data" / "demo"))
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import numpy as np
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    from assay.corpus import read_documents
    from clustering.dedup import cluster_signatures
    from clustering.minhash import lsh_params, shingles, signatures
    from raters.heuristics import HeuristicRater
    from raters.lang import LangRater

    texts = [d["text"] for d in read_documents([args.demo])]
    mb = sum(len(t.encode()) for t in texts) / 1e6
    lang = LangRater()
    reference = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    lang.score(texts[:10])  # load the model outside the timings

    def minhash(chunk: list[str]) -> np.ndarray:
        return signatures((shingles(t, 5) for t in chunk), 128, seed=1)

    runs = {
        "heuristics": HeuristicRater().score,
        "lang": lang.score,
        "py3langid": lambda chunk: [reference.classify(t[: lang.max_chars]) for t in chunk],
        "minhash": minhash,
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            t0 = time.perf_counter()
            for i in range(0, len(texts), 1000):
                run(texts[i : i + 1000])
            times[name].append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    sig = minhash(texts)
    t_sig = time.perf_counter() - t0
    t0 = time.perf_counter()
    bands, rows = lsh_params(0.8, 128)
    cluster, size, _, (a, b) = cluster_signatures([sig], 0.8, bands, rows)  # assay dedup's
    t_lsh = time.perf_counter() - t0

    # precision: the exact Jaccard of every pair the LSH stage kept
    sets = {i: shingles(texts[i], 5) for i in np.unique(np.r_[a, b])}
    kept = zip(a, b, strict=True)
    exact = [len(sets[i] & sets[j]) / len(sets[i] | sets[j]) for i, j in kept]

    ours = lang.score(texts)["lang"]
    theirs = [reference.classify(t[: lang.max_chars])[0] for t in texts]
    whole = LangRater(max_chars=10**9).score(texts)["lang"]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())

    print(f"{len(texts):,} docs, {mb:.1f} MB; load average {load}")
    base = statistics.median(times["heuristics"])
    for name, ts in times.items():
        m = statistics.median(ts)
        print(
            f"{name:10s} {len(texts) / m:8.0f} docs/s {mb / m:6.2f} MB/s "
            f"{base / m:5.2f}x heuristics (median of {len(ts)})"
        )
    print(
        f"dedup LSH stage (9 bands x 13 rows, verify, components): {t_lsh:.2f} s for "
        f"{len(texts):,} docs (signatures {t_sig:.1f} s); {int((size > 1).sum())} docs in "
        f"{len(np.unique(cluster[size > 1]))} near-duplicate clusters; exact Jaccard of the "
        f"{len(exact)} kept pairs: min {min(exact, default=1):.2f}, "
        f"median {np.median(exact) if exact else 1:.2f}"
    )
    same = float(np.mean([x == y for x, y in zip(ours, theirs, strict=True)]))
    head = float(np.mean(ours == whole))
    print(
        f"lang rater == py3langid classify: {same:.2%}; first 2,000 chars == whole doc: {head:.2%}"
    )


if __name__ == "__main__":
    main()
