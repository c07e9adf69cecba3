"""Decoder rater throughput: transformers engine (baseline) vs vLLM engine, same run.

    python benchmarks/decoder_engines.py --docs 64 --max-tokens 512

Rates demo-corpus documents with the ``dataman-schema`` decoder rater (SmolLM2-135M,
DataMan's 14 criteria + 15 domains, 15 answer slots) on both engines, after a warm-up
batch on each (vLLM compiles the answer grammar on its first call; its engine start is
reported apart). Prints docs/s, the vllm/hf ratio, and the parity figures: the largest
and mean difference of the expected scores, and how often the argmax score and the
domain agree (a flipped argmax changes what later answer lines are conditioned on, so in
bfloat16 a few documents differ more). Both engines get the same prompt token ids.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=512)
    ap.add_argument("--rater", default="dataman-schema")
    ap.add_argument("--dtype", default="float32", help="float32 | bfloat16 (both engines)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    from assay.corpus import read_documents
    from raters.registry import build_rater

    docs = [r["text"] for r in read_documents([ROOT / "data/demo"])]
    rng = np.random.default_rng(0)
    texts = [docs[i] for i in rng.choice(len(docs), args.docs + 4, replace=False)]
    warm, texts = texts[:4], texts[4:]
    opts = {"max_tokens": args.max_tokens, "dtype": args.dtype, "device": args.device}

    results, columns = {}, {}
    for backend in ("hf", "vllm"):
        t0 = time.perf_counter()
        rater = build_rater(args.rater, backend=backend, **opts)
        start = time.perf_counter() - t0
        rater.score(warm)
        t0 = time.perf_counter()
        columns[backend] = rater.score(texts)
        took = time.perf_counter() - t0
        tokens = int(sum(len(p) for p in rater.builder.build(texts).ids))
        results[backend] = {
            "start_s": round(start, 1),
            "docs_per_s": round(len(texts) / took, 2),
            "prompt_tokens_per_s": round(tokens / took),
        }
        print(f"{backend:5s} start {start:5.1f} s   {len(texts) / took:7.2f} docs/s", flush=True)
    hf, vl = columns["hf"], columns["vllm"]
    crits = [c["name"] for c in rater.spec.criteria]
    diffs = np.concatenate(
        [np.abs(np.asarray(hf[c], float) - np.asarray(vl[c], float)) for c in crits]
    )
    diff, mean_diff = float(diffs.max()), float(diffs.mean())
    argmax_same = float(
        np.mean([np.asarray(hf[f"{c}.argmax"]) == np.asarray(vl[f"{c}.argmax"]) for c in crits])
    )
    same_domain = float(np.mean(np.asarray(hf["domain"]) == vl["domain"]))
    ratio = results["vllm"]["docs_per_s"] / results["hf"]["docs_per_s"]
    record = {
        "benchmark": "decoder_engines",
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
        "torch_threads": torch.get_num_threads(),
        "load_avg": os.getloadavg()[0],
        "rater": args.rater,
        "docs": len(texts),
        "max_tokens": args.max_tokens,
        "dtype": args.dtype,
        **{f"{k}_{m}": v for k, r in results.items() for m, v in r.items()},
        "vllm_over_hf": round(ratio, 2),
        "max_abs_expected_score_diff": diff,
        "mean_abs_expected_score_diff": mean_diff,
        "argmax_agreement": argmax_same,
        "same_domain": same_domain,
    }
    print(
        f"vllm / hf = {ratio:.2f}x   expected score |diff| max {diff:.2e} mean {mean_diff:.2e}"
        f"   argmax agree {argmax_same:.1%}   same domain {same_domain:.0%}"
    )
    print(json.dumps(record))


if __name__ == "__main__":
    main()
