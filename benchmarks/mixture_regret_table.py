"""Record the real table of ``benchmarks/mixture_regret.py``: micro-proxy runs on the demo.

Each row is one proxy run: a mixture over 16 groups of the demo corpus (the id prefix of
each document: ``wiki``, ``man``, ``pydoc``, ``kjv``, ... with ``license`` and
``copyright`` merged into ``legal``), the proxy seed, and the proxy's loss (nats per token
of a 4k BPE trained on the pool) on four held-out targets that no run trains on:

- ``encyclopedic``: 100 Wikipedia leads;
- ``recipe``: 100 Wikibooks recipes;
- ``dictionary``: 100 GCIDE / FOLDOC / Jargon / Devil's entries;
- ``general``: 100 documents drawn uniformly from the rest of the corpus.

Every target text is cut at 2,000 characters so one long page does not dominate a target.
The proxy is the pipeline's micro proxy (h64, L2, seq 256, 30k tokens: what the demo's mix
step trains), drawn with fixed per-group quotas and common random numbers.

Mixtures (written in this order, so an interrupted run resumes where it stopped):

- the size prior (token share ** 0.5) at seeds 0-5 and uniform at seeds 0-2: the noise of
  one mixture across seeds, and the prior the regret is normalised by;
- 240 mixtures at seed 0 from ``Dirichlet(base * s)``, base alternating prior / uniform,
  ``s`` log-uniform in [0.3, 300] (sparse corners to near-prior);
- 12 of those again at seeds 1 and 2 (seed noise away from the prior).

Groups are capped at what a 200k-token selection can read once (``max_epochs`` 1, the
demo's select step): caps are in the sidecar JSON with tokens, prior and targets.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/mixture_regret_table.py \
        [--out benchmarks/data/mixture_regret_demo16.csv] [--runs 240]

Appends to ``--out`` and skips the runs already there; ``--check`` prints what is done.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TARGETS = {"encyclopedic": "domain", "recipe": "domain", "dictionary": "domain"}
MERGE = {"license": "legal", "copyright": "legal"}


def group_of(doc_id: str) -> str:
    prefix = doc_id.split("-")[0]
    return MERGE.get(prefix, prefix)


def plan(prior: np.ndarray, caps: np.ndarray, runs: int, seed: int) -> list[tuple[np.ndarray, int]]:
    """(weights, proxy seed) of every row, in order."""
    from selector.sampling import clean, dirichlet_rows, within_caps

    k = len(prior)
    rng = np.random.default_rng(seed)
    out = [(prior, s) for s in range(6)] + [(np.full(k, 1 / k), s) for s in range(3)]
    drawn: list[np.ndarray] = []
    while len(drawn) < runs:
        base = prior if len(drawn) % 2 == 0 else np.full(k, 1 / k)
        s = float(np.exp(rng.uniform(np.log(0.3), np.log(300.0))))
        w = clean(dirichlet_rows(base[None, :] * s, rng), 2e-4)
        if within_caps(w, caps)[0]:
            drawn.append(w[0])
    out += [(w, 0) for w in drawn]
    out += [(drawn[i], s) for i in range(0, 24, 2) for s in (1, 2)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--demo", default=str(REPO / "data" / "demo"))
    ap.add_argument(
        "--out", default=str(REPO / "benchmarks" / "data" / "mixture_regret_demo16.csv")
    )
    ap.add_argument("--runs", type=int, default=240)
    ap.add_argument("--target-docs", type=int, default=100)
    ap.add_argument("--budget-tokens", type=int, default=200_000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()

    import torch

    from assay.corpus import read_documents
    from selector.bpe import encode_texts, load_tokenizer, train_bpe
    from selector.proxy_data import TokenPool, make_eval_set
    from selector.proxy_lm import ProxyConfig, train_proxy_tokens
    from selector.sampling import epoch_caps, size_prior

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    docs = list(read_documents([args.demo]))
    rng = random.Random(0)
    held: dict[str, list[dict]] = {}
    for name, field in TARGETS.items():
        cand = [d for d in docs if d[field] == name]
        held[name] = rng.sample(cand, args.target_docs)
    taken = {d["id"] for ds in held.values() for d in ds}
    rest = [d for d in docs if d["id"] not in taken]
    held["general"] = rng.sample(rest, args.target_docs)
    taken |= {d["id"] for d in held["general"]}
    pool = [d for d in docs if d["id"] not in taken]
    groups = [group_of(d["id"]) for d in pool]
    names = sorted(set(groups))

    work = out.parent / (out.stem + ".work")
    tok_dir = work / "tokenizer"
    if not (tok_dir / "tokenizer.json").exists():
        order = list(range(len(pool)))
        random.Random(0).shuffle(order)
        train_bpe((pool[i]["text"] for i in order), tok_dir, vocab_size=4096)
    tok = load_tokenizer(tok_dir)
    eos = int(tok.eos_token_id)
    ids = encode_texts(tok, [d["text"] for d in pool])
    tpool = TokenPool.from_docs(ids, groups, eos)
    evals = {}
    for name, ds in held.items():
        texts = [d["text"][:2000] for d in ds]
        evals[name] = make_eval_set(texts, encode_texts(tok, texts), eos)
    tokens = np.array([tpool.tokens[g] for g in names], np.float64)
    prior = size_prior(tokens, 0.5)
    caps = epoch_caps(tokens, args.budget_tokens, 1.0)
    rows = plan(prior, caps, args.runs, seed=0)
    proxy = ProxyConfig(hidden=64, layers=2, heads=4, seq_len=256, tokens=30_000)
    side = {
        "groups": names,
        "group_rule": "id prefix; license + copyright = legal",
        "tokens": dict(zip(names, tokens.astype(int).tolist(), strict=True)),
        "docs": {g: groups.count(g) for g in names},
        "prior": dict(zip(names, prior.round(6).tolist(), strict=True)),
        "caps": dict(zip(names, caps.round(6).tolist(), strict=True)),
        "budget_tokens": args.budget_tokens,
        "max_epochs": 1.0,
        "targets": {n: {"docs": len(ds), "ids": [d["id"] for d in ds]} for n, ds in held.items()},
        "proxy": proxy.to_dict(),
        "tokenizer": "4k byte-level BPE on a seeded sample of the pool",
        "runs_planned": len(rows),
    }
    (out.with_suffix(".json")).write_text(json.dumps(side, indent=1))
    done = 0
    if out.exists():
        with out.open() as f:
            done = sum(1 for _ in csv.DictReader(f))
    print(
        f"{len(pool):,} pool docs in {len(names)} groups; {done}/{len(rows)} runs done", flush=True
    )
    if args.check:
        return
    header = ["run", "seed", *[f"w:{g}" for g in names], *[f"loss:{t}" for t in evals], "seconds"]
    if not out.exists():
        with out.open("w", newline="") as f:
            csv.writer(f).writerow(header)
    for run in range(done, len(rows)):
        w, seed = rows[run]
        t0 = time.perf_counter()
        weights = {g: float(x) for g, x in zip(names, w, strict=True) if x > 0}
        stream = tpool.draw(weights, proxy.tokens, seed)
        cfg = ProxyConfig(**{**proxy.to_dict(), "seed": seed})
        res = train_proxy_tokens(stream, evals, cfg, vocab_size=len(tok), eos_id=eos)
        secs = time.perf_counter() - t0
        row = [run, seed, *(f"{x:.6g}" for x in w)]
        row += [f"{res.metrics[t]['loss']:.6f}" for t in evals] + [round(secs, 2)]
        with out.open("a", newline="") as f:
            csv.writer(f).writerow(row)
        if run % 10 == 0:
            print(f"run {run}/{len(rows)} {secs:.1f} s", flush=True)


if __name__ == "__main__":
    main()
