"""What influence selection buys: fresh proxies trained on random, quality-top and
influence-selected data of the same token budget, scored on a target reference set.

The MATES loop at demo scale, with the real pieces (selector.influence_probe,
selector.influence_model, selector.select.choose, selector.proxy_lm):

1. target = encyclopedic demo documents: ``--ref-docs`` of them are the probing reference,
   ``--target-docs`` others the evaluation set; the pool is a seeded sample of every other
   document (``--pool``).
2. stage 1: a proxy trained on a random slice of the pool (the "model being trained")
   is probed: one SGD step on each of ``--probes`` pool documents, change of the
   reference loss.
3. the influence model (frozen MiniLM + ridge head, ``method="head"``) learns the probes
   and predicts the whole pool (held-out Spearman reported).
4. three arms select ``--budget`` tokens (counted with the proxies' own BPE) from the pool:
   ``random`` (uniform, a different draw per seed), ``quality`` (top ``assay-mini-v1.quality``
   from the annotated demo folder), ``influence`` (lowest predicted influence, T=0).
5. every arm trains fresh proxies (same size, budget, and seeds: common random numbers)
   and reports the target loss (nats/token); a bigram model on the same tokens is reported
   beside it (at this scale proxies mostly measure token statistics).

    python benchmarks/influence_selection.py --annotated out/demo/annotated [--seeds 3]

Baseline: the ``random`` arm, measured in the same run; the claim holds when the influence
arm's mean loss is lower by more than the random arm's seed spread (std).
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def bigram_loss(train: list[list[int]], target: list[list[int]], vocab: int) -> float:
    """Cross-entropy (nats/token) of an interpolated bigram model (unigram add-one back-off,
    weight k=1 on the back-off), trained on ``train`` documents."""
    uni = np.ones(vocab)
    pairs: dict[tuple[int, int], int] = {}
    ctx = np.zeros(vocab)
    for doc in train:
        a = np.asarray(doc, dtype=np.int64)
        np.add.at(uni, a, 1)
        np.add.at(ctx, a[:-1], 1)
        for x, y in zip(a[:-1].tolist(), a[1:].tolist(), strict=True):
            pairs[(x, y)] = pairs.get((x, y), 0) + 1
    p_uni = uni / uni.sum()
    nll, n = 0.0, 0
    for doc in target:
        for x, y in itertools.pairwise(doc):
            p = (pairs.get((x, y), 0) + p_uni[y]) / (ctx[x] + 1.0)
            nll -= np.log(p)
            n += 1
    return nll / max(n, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--annotated", default=str(REPO / "out" / "demo" / "annotated"))
    ap.add_argument("--pool", type=int, default=3000, help="pool documents (sampled)")
    ap.add_argument("--ref-docs", type=int, default=16)
    ap.add_argument("--ref-tokens", type=int, default=128, help="tokens per reference doc")
    ap.add_argument("--target-docs", type=int, default=200)
    ap.add_argument("--probes", type=int, default=240)
    ap.add_argument("--probe-lr", type=float, default=0.3)
    ap.add_argument("--budget", type=int, default=60_000, help="tokens per arm (proxy BPE)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=128)
    args = ap.parse_args()

    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch

    from assay import manifest as mf
    from selector.bpe import encode_texts, load_tokenizer, train_bpe
    from selector.gumbel import choose
    from selector.influence_model import InfluenceModel
    from selector.influence_probe import ProbeConfig, Prober
    from selector.proxy_lm import ProxyConfig, train_proxy

    torch.set_num_threads(1)
    t_start = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str, t0: float) -> float:
        timings[name] = round(time.perf_counter() - t0, 1)
        print(f"[{name}] {timings[name]} s", flush=True)
        return time.perf_counter()

    t = time.perf_counter()
    folder = Path(args.annotated)
    manifest = mf.read_manifest(folder, kind="annotations")
    cols = ["text", "domain", "assay-mini-v1.quality"]
    table = pa.concat_tables([pq.read_table(folder / s, columns=cols) for s in manifest["shards"]])
    texts = table["text"].to_pylist()
    domains = np.array(table["domain"].to_pylist())
    quality = table["assay-mini-v1.quality"].to_numpy()
    rng = np.random.default_rng(0)
    ency = rng.permutation(np.flatnonzero(domains == "encyclopedic"))
    ref_rows = ency[: args.ref_docs]
    target_rows = ency[args.ref_docs : args.ref_docs + args.target_docs]
    rest = np.setdiff1d(np.arange(len(texts)), np.r_[ref_rows, target_rows])
    pool = np.sort(rng.choice(rest, size=min(args.pool, rest.size), replace=False))
    reference = [texts[i] for i in ref_rows]
    target = [texts[i] for i in target_rows]
    pool_texts = [texts[i] for i in pool]
    work = Path(tempfile.mkdtemp(prefix="assay-bench-influence-"))
    bpe = train_bpe(pool_texts, work / "bpe", vocab_size=4096)
    tok = load_tokenizer(bpe)
    pool_ids = encode_texts(tok, pool_texts)
    target_ids = encode_texts(tok, target)
    tokens = np.array([len(x) for x in pool_ids], dtype=np.int64)
    share = (domains[pool] == "encyclopedic").mean()
    print(
        f"pool {pool.size} docs / {tokens.sum():,} tokens ({share:.1%} of docs encyclopedic), "
        f"reference {len(reference)}, target {len(target)}, budget {args.budget:,}",
        flush=True,
    )
    t = lap("data", t)

    def proxy(seed: int) -> ProxyConfig:
        return ProxyConfig(
            hidden=args.hidden,
            layers=args.layers,
            heads=4,
            seq_len=args.seq_len,
            tokens=args.budget,
            batch_size=8,
            seed=seed,
            threads=1,
        )

    # 2. stage 1: the model being trained, on a random slice of the pool; probe it.
    stage1 = choose(
        rng.random(pool.size), tokens, np.zeros(pool.size, int), np.ones(1), args.budget
    )
    train_proxy(
        [pool_texts[i] for i in np.sort(stage1.rows)],
        {"target": target},
        proxy(100),
        tokenizer_dir=bpe,
        save_dir=work / "stage1",
    )
    t = lap("stage1_proxy", t)
    prober = Prober(
        work / "stage1",
        reference,
        ProbeConfig(lr=args.probe_lr, max_tokens=256, ref_tokens=args.ref_tokens),
    )
    probe_rows = rng.choice(pool.size, size=min(args.probes, pool.size), replace=False)
    influence = np.array([prober.probe(pool_texts[i])[0] for i in probe_rows])
    t = lap("probe", t)

    # 3. influence model on the probes, predictions for the whole pool
    ok = np.isfinite(influence)
    model = InfluenceModel(method="head", max_tokens=128, max_chunks=1, val_fraction=0.2)
    model.fit([pool_texts[i] for i in probe_rows[ok]], influence[ok])
    print(f"influence model held-out Spearman {model.val_spearman_:.3f}", flush=True)
    t = lap("influence_model_fit", t)
    predicted = model.predict(pool_texts)
    t = lap("influence_predict_pool", t)

    # 4. the arms' selections (one group, exact token budget)
    one = np.zeros(pool.size, dtype=np.int64)
    arms: dict[str, list[np.ndarray]] = {
        "random": [
            np.sort(
                choose(
                    np.random.default_rng(s).random(pool.size), tokens, one, np.ones(1), args.budget
                ).rows
            )
            for s in range(args.seeds)
        ],
        "quality": [np.sort(choose(quality[pool], tokens, one, np.ones(1), args.budget).rows)],
        "influence": [np.sort(choose(-predicted, tokens, one, np.ones(1), args.budget).rows)],
    }

    # 5. fresh proxies, same seeds for every arm
    results: dict[str, dict[str, float | list[float]]] = {}
    for arm, selections in arms.items():
        losses = []
        for s in range(args.seeds):
            rows = selections[s % len(selections)]
            r = train_proxy(
                [pool_texts[i] for i in rows], {"target": target}, proxy(s), tokenizer_dir=bpe
            )
            losses.append(r.metrics["target"]["loss"])
            print(f"{arm} seed {s}: {losses[-1]:.4f}", flush=True)
        sel = selections[0]
        results[arm] = {
            "loss_mean": float(np.mean(losses)),
            "loss_std": float(np.std(losses, ddof=1)) if len(losses) > 1 else 0.0,
            "losses": losses,
            "bigram": bigram_loss([pool_ids[i] for i in sel], target_ids, len(tok)),
            "tokens": int(tokens[sel].sum()),
            "ency_share": float(
                tokens[sel][domains[pool][sel] == "encyclopedic"].sum() / tokens[sel].sum()
            ),
        }
        t = lap(f"arm_{arm}", t)

    base = results["random"]
    print(
        f"\n| arm | target loss (mean ± std, {args.seeds} seeds) | Δ vs random | "
        "Δ / random std | bigram loss | encyclopedic share of tokens | tokens |"
    )
    print("|---|---|---|---|---|---|---|")
    for arm, r in results.items():
        delta = r["loss_mean"] - base["loss_mean"]
        spread = base["loss_std"] or float("nan")
        print(
            f"| {arm} | {r['loss_mean']:.3f} ± {r['loss_std']:.3f} | {delta:+.3f} | "
            f"{delta / spread:+.1f} | {r['bigram']:.3f} | {r['ency_share']:.1%} | {r['tokens']:,} |"
        )
    shutil.rmtree(work, ignore_errors=True)
    print(
        f"\ninfluence model held-out Spearman {model.val_spearman_:.3f} "
        f"({model.n_train_} train / {model.n_val_} held-out probes); "
        f"{dt.date.today()}; total {time.perf_counter() - t_start:.0f} s; timings {timings}"
    )


if __name__ == "__main__":
    main()
