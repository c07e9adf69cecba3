"""Does a searched mixture beat uniform and size-proportional mixtures on a target?

Setup (demo corpus, groups = its 10 ``domain`` values):

- target: ``--target-docs`` held-out documents of ``--target-domain`` (default 200
  encyclopedic), removed from the pool by id;
- search: ``assay mix search`` (CLIMB 4:2:1 or RegMix) with tiny proxies (default 0.1M
  non-embedding parameters x 31k tokens), under a repetition cap: no group may be read more
  than ``--max-epochs`` times in the evaluation budget, so "all weight on the target
  domain" is not allowed and the search has to find which other domains help;
- evaluation: fresh, larger proxies (default 1M x 125k tokens) trained on (a) the found
  mixture, (b) uniform, (c) size-proportional weights, same token budget, same seeds for
  every arm (common random numbers: seed s draws the same documents first in each group
  and initialises the same weights), fixed per-group quotas;
- beside every proxy, a bigram model (Dirichlet-smoothed, unigram backoff) fitted on the
  same training tokens and scored on the same target tokens, as they must be: tiny
  proxies mostly measure token-statistics match, and the bigram shows whether the proxy
  ranks the arms any differently.

Uniform and proportional weights are run as given, even where they break the cap (they
are the baselines a user would otherwise pick); the report prints each arm's largest
implied epoch count.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/mixture_search.py [--method climb]
        [--proxies 24] [--seeds 3] [--eval-tokens 125000] [--out out/bench-mix]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from selector.bigram import bigram_nats  # noqa: E402 - the repo is on the path now


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--demo", default=str(REPO / "data" / "demo"))
    ap.add_argument("--out", default=str(REPO / "out" / "bench-mix"))
    ap.add_argument("--target-domain", default="encyclopedic")
    ap.add_argument("--target-docs", type=int, default=200)
    ap.add_argument("--method", default="climb")
    ap.add_argument("--proxies", type=int, default=24)
    ap.add_argument("--search-tokens", type=int, default=31_000)
    ap.add_argument("--eval-tokens", type=int, default=125_000)
    ap.add_argument("--max-epochs", type=float, default=1.0)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--arms",
        nargs="+",
        default=["found", "uniform", "proportional"],
        help="found | uniform | proportional | target-capped",
    )
    ap.add_argument(
        "--reuse-search",
        action="store_true",
        help="evaluate the mixture.json already in --out instead of searching",
    )
    args = ap.parse_args()

    import torch

    from assay.corpus import read_documents
    from selector.bpe import encode_texts, load_tokenizer
    from selector.proxy_data import TokenPool, make_eval_set
    from selector.proxy_lm import ProxyConfig, train_proxy_tokens
    from selector.search import SearchConfig, run_search

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    docs = list(read_documents([args.demo]))
    rng = random.Random(0)
    in_domain = [d for d in docs if d["domain"] == args.target_domain]
    held = rng.sample(in_domain, args.target_docs)
    target_path = out / f"{args.target_domain}-val.jsonl"
    target_path.write_text("".join(json.dumps(d) + "\n" for d in held))

    t0 = time.perf_counter()
    search_proxy = ProxyConfig(
        hidden=64,
        layers=2,
        heads=4,
        seq_len=256,
        batch_size=8,
        tokens=args.search_tokens,
        seed=0,
        threads=args.threads,
    )
    cfg = SearchConfig(
        group_by="domain",
        method=args.method,
        proxies=args.proxies,
        budget_tokens=args.eval_tokens,
        max_epochs=args.max_epochs,
        n_candidates=20_000,
        top_k=args.top_k,
        verify=0,
        seed=0,
    )
    if args.reuse_search and (out / "mixture.json").exists():
        from selector.mixture import Mixture

        mixture = Mixture.read(out / "mixture.json")  # evaluate more arms of an earlier search
    else:
        mixture = run_search(
            args.demo, [str(target_path)], out / "mixture.json", cfg, search_proxy,
            resume=args.resume,
        )  # fmt: skip
    search_s = time.perf_counter() - t0

    # Evaluation: same tokenizer as the search, pool without the target documents.
    tok = load_tokenizer(out / "mixture.search" / "tokenizer")
    held_ids = {d["id"] for d in held}
    pool_docs = [d for d in docs if d["id"] not in held_ids]
    ids = encode_texts(tok, [d["text"] for d in pool_docs])
    pool = TokenPool.from_docs(ids, [d["domain"] for d in pool_docs], int(tok.eos_token_id))
    texts = [d["text"] for d in held]
    target = make_eval_set(texts, encode_texts(tok, texts), int(tok.eos_token_id))
    names = pool.names
    tokens = np.array([pool.tokens[g] for g in names], np.float64)
    # a stronger, hand-made baseline: the target's domain at its repetition cap, the rest
    # of the budget size-proportional over the other domains
    t = names.index(args.target_domain)
    cap = min(1.0, args.max_epochs * tokens[t] / args.eval_tokens)
    rest = tokens.copy()
    rest[t] = 0
    heavy = rest / rest.sum() * (1 - cap)
    heavy[t] = cap
    arms = {
        "found": mixture.weights,
        "uniform": {g: 1 / len(names) for g in names},
        "proportional": dict(zip(names, (tokens / tokens.sum()).tolist(), strict=True)),
        "target-capped": dict(zip(names, heavy.tolist(), strict=True)),
    }
    results: dict[str, dict] = {}
    if args.reuse_search and (out / "results.json").exists():  # keep arms measured before
        results = json.loads((out / "results.json").read_text())["arms"]
        search_s = json.loads((out / "results.json").read_text())["search_seconds"]
    for arm in args.arms:
        weights = arms[arm]
        losses, bigrams, secs = [], [], []
        for seed in range(args.seeds):
            stream = pool.draw(weights, args.eval_tokens, seed)
            cfg_e = ProxyConfig(
                hidden=128,
                layers=4,
                heads=4,
                seq_len=256,
                batch_size=8,
                tokens=args.eval_tokens,
                seed=seed,
                threads=args.threads,
            )
            res = train_proxy_tokens(
                stream, {"t": target}, cfg_e, vocab_size=len(tok), eos_id=pool.eos_id
            )
            losses.append(res.metrics["t"]["loss"])
            bigrams.append(bigram_nats(stream, target.stream, len(tok)))
            secs.append(res.seconds)
            print(
                f"{arm} seed {seed}: proxy {losses[-1]:.4f}  bigram {bigrams[-1]:.4f} "
                f"({res.seconds:.0f} s, {res.params:,} params)",
                flush=True,
            )
        epochs = max(weights.get(g, 0) * args.eval_tokens / pool.tokens[g] for g in names)
        results[arm] = {
            "loss_mean": float(np.mean(losses)),
            "loss_std": float(np.std(losses, ddof=1)),
            "bigram_mean": float(np.mean(bigrams)),
            "bigram_std": float(np.std(bigrams, ddof=1)),
            "losses": losses,
            "bigrams": bigrams,
            "seconds_per_run": float(np.mean(secs)),
            "max_epochs": float(epochs),
        }
    f = results.get("found")
    print(
        f"\nsearch: {args.method}, {mixture.method['proxy_runs']} proxies "
        f"(h64 L2, {args.search_tokens:,} tokens), {search_s:.0f} s; held-out Spearman "
        f"per round {mixture.method['heldout_spearman']}; "
        f"CV Spearman {[r['cv_spearman'] for r in mixture.method['per_round']]}"
    )
    print("found weights: " + ", ".join(f"{g} {w:.3f}" for g, w in mixture.weights.items()))
    print("\n| arm | proxy loss (nats/token) | bigram | max epochs |\n|---|---|---|---|")
    for arm, r in results.items():
        print(
            f"| {arm} | {r['loss_mean']:.4f} ± {r['loss_std']:.4f} | "
            f"{r['bigram_mean']:.4f} ± {r['bigram_std']:.4f} | {r['max_epochs']:.2f} |"
        )
    for base in [a for a in results if a != "found"] if f else []:
        b = results[base]
        gap = b["loss_mean"] - f["loss_mean"]
        spread = max(b["loss_std"], f["loss_std"])
        print(
            f"found vs {base}: proxy gap {gap:.4f} nats = {gap / spread:.1f} seed spreads; "
            f"bigram gap {b['bigram_mean'] - f['bigram_mean']:.4f}"
        )
    (out / "results.json").write_text(
        json.dumps(
            {
                "args": vars(args),
                "search_seconds": search_s,
                "found": mixture.weights,
                "method": mixture.method,
                "arms": results,
            },
            indent=2,
            default=str,
        )
    )


if __name__ == "__main__":
    main()
