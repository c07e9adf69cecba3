"""Fixtures of the selector tests: a small annotated corpus of real demo text."""

from __future__ import annotations

from pathlib import Path

import pytest

TOKENIZER = "all-minilm-l6-v2"  # ships in a package; cheap to load


@pytest.fixture(scope="session")
def annotated_sample(tmp_path_factory, demo_sample) -> Path:
    """``demo_sample`` annotated with the heuristics rater and ``n_tokens`` (MiniLM)."""
    import gzip
    import json

    from assay.annotate import annotate
    from raters.heuristics import HeuristicRater
    from raters.tokens import TokenCounter

    root = tmp_path_factory.mktemp("annotated")
    src = root / "sample.jsonl.gz"
    with gzip.open(src, "wt", encoding="utf-8") as f:
        for r in demo_sample:
            f.write(json.dumps(r) + "\n")
    out = root / "annotated"
    annotate(
        [src],
        out,
        [HeuristicRater()],
        shard_size=17,  # several shards, so selection crosses shard boundaries
        count_tokens=TokenCounter(TOKENIZER),
        tokenizer_name=TOKENIZER,
    )
    return out


@pytest.fixture(scope="session")
def proxy_ckpt(tmp_path_factory, demo_records) -> Path:
    """A real proxy checkpoint (HF files): a 2-layer Llama trained for 32k tokens on demo
    text with a 1k byte-level BPE, by the proxy trainer itself."""
    from selector.bpe import train_bpe
    from selector.proxy_lm import ProxyConfig, train_proxy

    root = tmp_path_factory.mktemp("proxy")
    pool = [r["text"] for r in demo_records[::20]]
    tok = train_bpe(pool, root / "bpe", vocab_size=1024)
    cfg = ProxyConfig(hidden=64, layers=2, heads=4, seq_len=128, tokens=32768, batch_size=8)
    train_proxy(pool, {"demo": pool[:20]}, cfg, tokenizer_dir=tok, save_dir=root / "ckpt")
    return root / "ckpt"
