"""Encoder rater throughput: a naive loop vs assay's engine, on real text, in one run.

Model: all-MiniLM-L6-v2 (shipped in a package) with fresh heads (fixed seed): a
regression head, a 6-way classification head and a 4-label domain head, one output
vector of 11 logits. Every arm reads the first 512 tokens of each document.

- baseline: batches of 32 in input order, padded to the longest, truncated at 512
  tokens, float32, one model call per batch (what most published annotation scripts do,
  e.g. FineWeb-Edu's ``run_edu_bert.py``), under ``torch.inference_mode`` like the engine;
- engine fp32: ``EncoderRater`` (length-sorted windows under a token budget, tokenising
  overlapped with compute); must match the baseline within 1e-4;
- engine bf16: the same with the weights cast to bfloat16 (AMX on recent x86 CPUs).

Prints docs/s, ratios against the baseline measured in the same run, the largest
absolute difference of every float column, and a Markdown row for RESULTS.md::

    python benchmarks/encoder_throughput.py --docs 500 --threads 2
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import platform
import random
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

NUM_LABELS = 11  # 1 regression + 6 classes + 4 domains
SPEC = {
    "name": "bench",
    "version": "1",
    "kind": "encoder",
    "model": ".",
    "criteria": [
        {"name": "edu", "type": "regression", "logits": [0, 1], "scale": [0, 5]},
        {"name": "quality", "type": "classification", "logits": [1, 7], "scale": [0, 5]},
    ],
    "domain": {"labels": ["code", "prose", "reference", "other"], "logits": [7, 11]},
    "max_tokens": 512,
    "long_doc": "head",
}


def load_texts(n: int, seed: int) -> tuple[list[str], str]:
    """The demo corpus (mixed domains, shuffled), or stdlib sources until it exists."""
    shards = sorted((REPO / "data" / "demo").glob("*.jsonl.gz"))
    texts: list[str] = []
    if shards:
        for shard in shards:
            with gzip.open(shard, "rt", encoding="utf-8") as f:
                texts.extend(json.loads(line)["text"] for line in f)
        source = "data/demo"
    else:
        # Fallback: the Python standard library, one document per module (and its docs).
        lib = Path(sysconfig.get_paths()["stdlib"])
        for path in sorted(lib.rglob("*.py")):
            if "test" not in path.parts and "site-packages" not in path.parts:
                texts.append(path.read_text(encoding="utf-8", errors="replace"))
        source = "python stdlib sources (demo corpus not built yet)"
    random.Random(seed).shuffle(texts)
    return texts[:n], source


def build_model(folder: Path, seed: int) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from raters.hub import resolve_model

    base = resolve_model("all-minilm-l6-v2")
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=NUM_LABELS)
    # A wider init than the default 0.02, so that the heads' outputs vary between texts
    # and the comparisons below measure something.
    torch.nn.init.normal_(model.classifier.weight, std=0.5)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    (folder / "rater.json").write_text(json.dumps(SPEC, indent=2))


def baseline(folder: Path, texts: list[str], batch: int = 32) -> tuple[np.ndarray, float, float]:
    """The naive loop: raw logits [n, NUM_LABELS], seconds tokenising, share of padding."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    out, tokenising, slots, real = [], 0.0, 0, 0
    with torch.inference_mode():
        for i in range(0, len(texts), batch):
            start = time.perf_counter()
            enc = tok(
                texts[i : i + batch],
                padding=True,
                truncation=True,
                max_length=SPEC["max_tokens"],
                return_tensors="pt",
            )
            tokenising += time.perf_counter() - start
            slots += enc["attention_mask"].numel()
            real += int(enc["attention_mask"].sum())
            out.append(model(**enc).logits.float().numpy())
    return np.concatenate(out), tokenising, 1 - real / slots


def columns_from_logits(logits: np.ndarray) -> dict[str, np.ndarray]:
    """The spec's columns computed directly (independently of the engine's code)."""
    x = logits.astype(np.float64)
    p = np.exp(x[:, 1:7] - x[:, 1:7].max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    d = np.exp(x[:, 7:11] - x[:, 7:11].max(1, keepdims=True))
    d /= d.sum(1, keepdims=True)
    return {
        "edu": np.clip(x[:, 0], 0, 5),
        "quality": p @ np.arange(6.0),
        "quality.conf": p.max(1),
        "domain.prob": d.max(1),
        "domain_index": d.argmax(1),
    }


def timed(fn: Any, *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in lscpu.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=500, help="documents to rate")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-tokens", type=int, default=None, help="engine token budget")
    args = ap.parse_args()
    if args.docs < 1 or args.threads < 1:
        ap.error("--docs and --threads must be > 0")

    import torch
    import transformers

    from raters.encoder import load_rater_dir

    transformers.logging.set_verbosity_error()  # the fresh heads' "newly initialised" report
    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    texts, source = load_texts(args.docs, args.seed)
    chars = sum(len(t) for t in texts)
    print(f"corpus: {source}; {len(texts)} docs, {chars / len(texts):,.0f} chars/doc on average")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        build_model(folder, args.seed)
        warm = texts[:8]
        baseline(folder, warm)
        (base_logits, t_tok, padding), t_base = timed(baseline, folder, texts)
        ref = columns_from_logits(base_logits)
        runs = {}
        for dtype in ("float32", "bfloat16"):
            rater = load_rater_dir(
                folder, device="cpu", dtype=dtype, batch_tokens=args.batch_tokens
            )
            rater.score(warm)
            runs[dtype] = timed(rater.score, texts)

    rate_base = len(texts) / t_base
    print(
        f"baseline (bs 32, input order, fp32): {rate_base:8.1f} docs/s "
        f"({t_tok / t_base:.0%} of its time tokenising whole texts; "
        f"{padding:.0%} of its token slots padding)"
    )
    summary = {}
    for dtype, (cols, secs) in runs.items():
        rate = len(texts) / secs
        diffs = {k: float(np.abs(cols[k] - ref[k]).max()) for k in ref if k != "domain_index"}
        labels = np.array(SPEC["domain"]["labels"], dtype=object)[ref["domain_index"]]
        agree = float((cols["domain"] == labels).mean())
        worst = max(diffs.values())
        summary[dtype] = (rate, rate / rate_base, worst)
        print(
            f"engine {dtype:8s}: {rate:8.1f} docs/s  x{rate / rate_base:4.2f}  "
            f"max |diff| {worst:.2e} ({', '.join(f'{k} {v:.1e}' for k, v in diffs.items())}); "
            f"domain agreement {agree:.3f}"
        )
    fp32_ok = summary["float32"][2] <= 1e-4
    print(f"fp32 matches the baseline within 1e-4: {'yes' if fp32_ok else 'NO'}")
    (r32, x32, d32), (r16, x16, d16) = summary["float32"], summary["bfloat16"]
    print(
        "\n| date | machine | corpus | docs | threads | baseline docs/s | engine fp32 docs/s "
        "| engine bf16 docs/s | max diff fp32 / bf16 |"
    )
    print(
        f"| {dt.date.today()} | {machine()} | {source} | {len(texts)} | {args.threads} "
        f"| {rate_base:.1f} | {r32:.1f} (x{x32:.2f}) | {r16:.1f} (x{x16:.2f}) "
        f"| {d32:.1e} / {d16:.1e} |"
    )
    if not fp32_ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
