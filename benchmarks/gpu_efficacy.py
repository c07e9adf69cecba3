"""The efficacy suite at a proxy size that can show a quality effect: one GPU script.

On 2 CPU cores the suite trains 0.1M-parameter proxies on 60k tokens; at that size a
proxy mostly learns token statistics (the bigram column tracks its loss), so a quality
rater has little room to show. Olmix (2026) finds that proxies of >= 15M parameters rank
mixtures like 1B models (Spearman rho > 0.89; 1M-parameter proxies only 0.73). This runs
``benchmarks/efficacy_suite.py`` with the ``gpu15m`` preset (15.7M parameters: 8 layers,
width 384, bf16, CUDA) on three targets (a domain, the general slice and the
quality-sensitive target) within one device call (about 10 minutes on one H200):

- arms: 500k training tokens each, 3 seeds (common across arms);
- the mix step's and influence step's proxies: 1M parameters x 200k tokens on CUDA;
- annotate and embed run once on the GPU (perplexity and MiniLM pick CUDA themselves).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/gpu_efficacy.py [--only encyclopedic ...]

Results: ``out/bench/suite-gpu/`` (table.md, heatmap.svg, suite.json), as the CPU suite's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from efficacy_common import REPO
from efficacy_suite import run_suite

SEARCH_PROXY_GPU = {"hidden": 128, "layers": 4, "heads": 4, "seq_len": 256, "batch_size": 16,
                    "tokens": 200_000, "device": "cuda"}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="+", default=["encyclopedic", "general", "quality-sensitive"])
    ap.add_argument("--budget-tokens", type=int, default=500_000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", default=str(REPO / "out" / "bench" / "suite-gpu"))
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        sys.exit("gpu_efficacy.py needs a CUDA GPU (the CPU suite is benchmarks/efficacy_suite.py)")
    print(f"device: {torch.cuda.get_device_name(0)}", flush=True)
    run_suite(
        [str(REPO / "data" / "demo")], args.out, budget_tokens=args.budget_tokens,
        seeds=args.seeds, preset="gpu15m", workers=1, only=args.only,
        search_proxy=SEARCH_PROXY_GPU,
    )  # fmt: skip


if __name__ == "__main__":
    main()
