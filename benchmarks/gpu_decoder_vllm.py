"""GPU: a 0.5B/1.5B-class decoder rater on vLLM with ~2k-token documents.

    python benchmarks/gpu_decoder_vllm.py --size 0.5b --docs 1024
    python benchmarks/gpu_decoder_vllm.py --size 1.5b --docs 1024 --hf-docs 128

Random weights in Qwen2-0.5B / Qwen2-1.5B shapes (DataMan's architecture; speed does not
depend on the weights), SmolLM2's ChatML tokenizer, DataMan's released prompt and
15-line answer, documents built from demo-corpus text to ~1,900 text tokens (DataMan's
head + tail budget). Reports docs/s, prompt tokens/s, and the fraction of the GPU's
dense bf16 peak reached, counting 2 * params * tokens FLOPs per document (prompt +
answer tokens; attention FLOPs are left out, so this understates the true utilisation).
``--hf-docs N`` also times the transformers engine on N documents: the baseline ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHAPES = {  # Qwen2 configs (hidden, intermediate, layers, heads, kv heads)
    "0.5b": (896, 4864, 24, 14, 2),
    "1.5b": (1536, 8960, 28, 12, 2),
}
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12}


def build_model(folder: Path, size: str) -> int:
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from raters.hub import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m"))
    tok.save_pretrained(folder)
    hidden, inter, layers, heads, kv = SHAPES[size]
    config = Qwen2Config(
        vocab_size=len(tok), hidden_size=hidden, intermediate_size=inter,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv,
        max_position_embeddings=4096, tie_word_embeddings=True, torch_dtype="bfloat16",
    )  # fmt: skip
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def long_docs(n: int, tokenizer, target_tokens: int = 1900) -> list[str]:
    from assay.corpus import read_documents

    pool = [r["text"] for r in read_documents([ROOT / "data/demo"])]
    docs, k = [], 0
    for _ in range(n):
        parts, count = [], 0
        while count < target_tokens:
            text = pool[k % len(pool)]
            k += 1
            parts.append(text)
            count += len(tokenizer(text, add_special_tokens=False)["input_ids"])
        docs.append("\n\n".join(parts))
    return docs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", choices=sorted(SHAPES), default="0.5b")
    ap.add_argument("--docs", type=int, default=1024)
    ap.add_argument("--hf-docs", type=int, default=0)
    ap.add_argument("--peak-tflops", type=float, default=None, help="override the bf16 peak")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    from raters.registry import build_rater

    name = torch.cuda.get_device_name(0)
    peak = (
        args.peak_tflops * 1e12
        if args.peak_tflops
        else next((v for k, v in PEAK_BF16.items() if k in name), None)
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        params = build_model(folder, args.size)
        opts = {"dtype": "bfloat16", "device": "cuda", "max_tokens": 2068}
        t0 = time.perf_counter()
        rater = build_rater(f"dataman={folder}", backend="vllm", **opts)
        start = time.perf_counter() - t0
        docs = long_docs(args.docs + 16, rater.builder.tokenizer)
        rater.score(docs[:16])  # warm-up: grammar compile, CUDA graphs
        docs = docs[16:]
        t0 = time.perf_counter()
        rater.score(docs)
        took = time.perf_counter() - t0
        tokens = sum(len(p) for p in rater.builder.build(docs).ids) + len(docs) * (
            rater.builder.answer_len
        )
        flops = 2 * params * tokens
        record = {
            "benchmark": "gpu_decoder_vllm",
            "date": time.strftime("%Y-%m-%d"),
            "gpu": name,
            "size": args.size,
            "params": params,
            "docs": len(docs),
            "tokens_per_doc": tokens / len(docs),
            "engine_start_s": round(start, 1),
            "docs_per_s": round(len(docs) / took, 1),
            "tokens_per_s": round(tokens / took),
            "achieved_tflops": round(flops / took / 1e12, 1),
            "fraction_of_bf16_peak": round(flops / took / peak, 3) if peak else None,
        }
        if args.hf_docs:
            hf = build_rater(f"dataman={folder}", backend="hf", **opts)
            sample = docs[: args.hf_docs]
            hf.score(sample[:8])
            t0 = time.perf_counter()
            hf.score(sample)
            record["hf_docs_per_s"] = round(len(sample) / (time.perf_counter() - t0), 1)
            record["vllm_over_hf"] = round(record["docs_per_s"] / record["hf_docs_per_s"], 2)
    print(json.dumps(record))


if __name__ == "__main__":
    main()
