"""Rater training and evaluation figures on CPU.

1. ``assay eval-rater`` of the shipped default (assay-mini-v1) on the held-out test
   split of its demo-corpus labels (rebuilt exactly as scripts/train_default_rater.py
   builds them).
2. Training time per 1,000 examples for ``--method head`` / ``lora`` / ``full`` on the
   same labels (quality + domain heads, MiniLM-L6, first 128 tokens): the first N
   training examples, one epoch each for lora/full; for head, the one-off embedding
   pass and the epochs on cached embeddings are timed apart.

    python benchmarks/train_rater.py                      # ~5-10 min on 2 busy cores
    python benchmarks/train_rater.py --examples 256 --skip-eval

Prints RESULTS.md rows at the end.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location(
        "tdr", REPO / "scripts" / "train_default_rater.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=512, help="training examples timed")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-eval", action="store_true")
    parser.add_argument("--methods", default="head,lora,full")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from assay.manifest import write_json_atomic
    from raters.evaluate import evaluate_rater, format_report
    from raters.labels import write_labels
    from raters.train import train_rater
    from raters.train_config import TrainConfig

    script = load_script()
    load = os.getloadavg()[0]
    rows: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        records = script.build_labels(REPO / "data" / "demo", seed=0, share=0.5)
        labels = write_labels(work / "labels.jsonl", records)
        manifest = {"kind": "labels", "rubric": {"scales": {"quality": [0, 1]}}}
        (work / "labels.manifest.json").write_text(json.dumps(manifest))

        if not args.skip_eval:
            t0 = time.perf_counter()
            report = evaluate_rater("assay-mini-v1", labels, split="test", device="cpu")
            seconds = time.perf_counter() - t0
            print(format_report(report))
            write_json_atomic(work / "eval.json", report)
            q, d = report["criteria"]["quality"], report["domain"]
            qb = q["baseline"]
            rows.append(
                f"| {time.strftime('%Y-%m-%d')} | vm-2c, load {load:.1f} | assay-mini-v1 | "
                f"{q['n']:,} | quality acc {q['accuracy']:.3f} (majority {qb['accuracy']:.3f}), "
                f"macro-F1 {q['macro_f1']:.3f} (majority {qb['macro_f1']:.3f}), "
                f"ECE {q['calibration']['ece']:.3f} | domain acc {d['accuracy']:.3f} "
                f"(majority {d['baseline']['accuracy']:.3f}), macro-F1 {d['macro_f1']:.3f} "
                f"(majority {d['baseline']['macro_f1']:.3f}), ECE {d['calibration']['ece']:.3f} | "
                f"{report['timing']['docs_per_s']:.1f} docs/s scoring ({seconds:.0f} s) |"
            )

        # A subset whose training split has ~N examples (val/test come from the same pool).
        n_total = int(args.examples / 0.8)
        subset = write_labels(work / "subset.jsonl", records[:n_total])
        (work / "subset.manifest.json").write_text(json.dumps(manifest))
        timing_rows = []
        for method in args.methods.split(","):
            extra = {"epochs": 1} if method != "head" else {}
            config = TrainConfig(
                method=method, max_tokens=args.max_tokens, threads=args.threads, **extra
            )
            out = work / f"rater-{method}"
            t0 = time.perf_counter()
            train_rater(subset, out, config, log=lambda m, tag=method: print(f"  [{tag}] {m}"))
            wall = time.perf_counter() - t0
            log = json.loads((out / "train_log.json").read_text())
            t, h = log["timings"], log["history"]
            n_train = json.loads((out / "manifest.json").read_text())["labels"]["examples"]["train"]
            if method == "head":
                embed_per_1k = t["embed_s"] / n_total * 1000
                note = (
                    f"embedding pass {embed_per_1k:.1f} s/1k docs (once); head epochs "
                    f"{t['train_s_per_1k_examples']:.3f} s/1k examples "
                    f"({h['steps']} steps, stopped early: {h['stopped_early']})"
                )
                per_1k = embed_per_1k
            else:
                per_1k = t["train_s_per_1k_examples"]
                note = f"{h['steps']} steps of batch {config.resolved().batch_size}, fwd+bwd"
            folder_mb = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6
            timing_rows.append(
                f"| {time.strftime('%Y-%m-%d')} | vm-2c, load {load:.1f}, {args.threads} thread(s) "
                f"| {method} | {n_train} | {args.max_tokens} | {per_1k:.1f} | {note} | "
                f"{folder_mb:.2f} MB | {wall:.0f} s |"
            )
    print("\nRESULTS.md rows:\n")
    if rows:
        print("| date | machine | rater | test docs | quality | domain | speed |")
        print("|---|---|---|---|---|---|---|")
        print("\n".join(rows))
        print()
    print(
        "| date | machine | method | train examples | tokens | s per 1k examples (epoch) "
        "| note | rater folder | wall |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(timing_rows))


if __name__ == "__main__":
    main()
