"""Selection efficacy across many targets: how often does each arm beat random?

One corpus, annotated and embedded once; then per target (``efficacy_targets``: every
domain with enough documents, a general slice, and a quality-sensitive target whose pool
carries made low-quality documents) a filtered copy of the annotated and embedded folders
without the target's documents (``clustering.subset``), and the pipeline's cluster -> mix
(trust search) -> influence -> select steps on it with the target's dev half as the
target. The arms of ``benchmarks/selection_efficacy.py`` then train fresh proxies on equal
token budgets at common seeds and are scored on the target's eval half:

random, proportional, quality (assay-mini-v1 top-k), dsir (hashed n-gram importance toward
the dev half), mixture (the mix step's quotas, random inside), influence (MATES top-k),
assay (the pipeline's selection, default score: quality - influence + dsir toward the dev
half, which ``annotate.add: [dsir]`` puts on the target's copy of the shared annotations);
extra arms from the same run: assay+dsir (the arm's own z-scores of that sum; equal to
assay since the default score has dsir), mixture+dsir (the quotas, DSIR top-k inside).

Per target and arm: target loss (mean ± std over seeds), Δ against random in random's
std, the bigram loss, tokens to random's final loss. Summary per arm: **win rate**
(Δ < -1 random std), **loss rate** (Δ > +1 random std), median tokens-to-random; and a
heatmap of Δ/std, arms x targets (``heatmap.svg``). Targets run two at a time
(``--workers``), each resumable: a finished target's ``result.json`` is reused.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/efficacy_suite.py [--workers 2] \\
        [--per-domain 260] [--seeds 3] [--budget-tokens 60000] [--out out/bench/suite]

also as ``assay bench efficacy-suite``. Baseline: ``random``, same run, same seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from efficacy_common import (
    ARMS,
    EXTRA_ARMS,
    PRESETS,
    REPO,
    reach_fraction,
    read_pool,
    train_arms,
    with_dsir,
)
from efficacy_report import summarize, write_heatmap_svg
from efficacy_targets import Target, low_quality_docs, make_targets, sample_corpus

SEARCH_PROXY = {**PRESETS["micro"], "tokens": 30_000}  # the mix and influence proxies
EVAL_CHARS = 2_000  # each dev / eval document's head: long man pages do not dominate
RATERS = ("heuristics", "perplexity", "assay-mini-v1")


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def _heads(rows: list[dict]) -> list[dict]:
    return [{**r, "text": r["text"][:EVAL_CHARS]} for r in rows]


def shared_stage(corpus: Path, out: Path, threads: int, say: Callable[[str], None]) -> Path:
    """Annotate and embed the whole corpus once (the pipeline's resume applies)."""
    from assay.pipeline import load_recipe, run_pipeline

    recipe = {
        "corpus": [str(corpus)], "out": str(out), "threads": threads,
        "split": {"skip": True},
        "annotate": {"raters": list(RATERS), "options": {"perplexity": {"max_tokens": 32}}},
        **{s: {"skip": True} for s in ("cluster", "mix", "influence", "select", "export")},
    }  # fmt: skip
    (out.parent / "shared-recipe.yaml").write_text(json.dumps(recipe, indent=2))
    run_pipeline(load_recipe(out.parent / "shared-recipe.yaml"), say=say)
    return out


def run_target(job: dict[str, Any]) -> dict[str, Any]:
    """One target, start to end (runs in a worker process); writes ``result.json``."""
    import torch

    from assay.pipeline import load_recipe, run_pipeline
    from clustering.subset import subset_folders

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    folder = Path(job["folder"])
    folder.mkdir(parents=True, exist_ok=True)
    log = open(folder / "log.txt", "a", encoding="utf-8")  # noqa: SIM115 - closed below

    def say(line: str) -> None:
        log.write(line + "\n")
        log.flush()

    try:
        dev, evals = _heads(job["dev"]), _heads(job["eval"])
        _write(folder / "dev.jsonl", dev)
        _write(folder / "eval.jsonl", evals)
        shared = Path(job["shared"])
        sub = subset_folders(
            shared / "annotated", shared / "embeddings", folder / "pool", set(job["exclude"])
        )
        say(f"pool: {sub['rows']:,} documents ({sub['rows_removed']:,} left out)")
        recipe = {
            "corpus": [job["corpus"]], "out": str(folder / "pipeline"), "threads": 1,
            "split": {"skip": True, "target_path": str(folder / "dev.jsonl")},
            # dsir depends on the target: the pipeline adds it to this target's copy
            "annotate": {"use": str(folder / "pool" / "annotated"), "add": ["dsir"]},
            "embed": {"use": str(folder / "pool" / "embeddings")},
            "cluster": {"topics": job["topics"]},
            "mix": {"method": "trust", "proxy": job["search_proxy"]},
            "influence": {"probes": 96, "reference_docs": min(32, len(dev) * 3 // 4),
                          "proxy": job["search_proxy"]},
            "select": {"budget_tokens": job["budget_tokens"]},
            "export": {"skip": True},
        }  # fmt: skip
        (folder / "recipe.yaml").write_text(json.dumps(recipe, indent=2))
        state = run_pipeline(load_recipe(folder / "recipe.yaml"), say=say)
        pool = read_pool(folder / "pipeline")
        assert not {str(d["id"]) for d in evals} & set(map(str, pool.ids)), "eval leaked"
        _write(folder / "pool.jsonl", [{"text": t} for t in pool.texts])
        pool = with_dsir(pool, folder / "dev.jsonl", folder / "pool.jsonl")
        done = folder / "result.json"  # arms trained earlier at the same config are kept
        earlier = json.loads(done.read_text()) if job["keep_arms"] else {}
        prev = earlier.get("arms", {})
        new = train_arms(
            pool, [d["text"] for d in evals], Path(job["bpe"]),
            budget_tokens=job["budget_tokens"], seeds=job["seeds"], preset=job["preset"],
            arms=[a for a in job["arms"] if a not in prev], say=say,
        )  # fmt: skip
        results = {**prev, **new}
        for arm in new:
            results[arm]["reach_fraction"] = reach_fraction(results, arm)
            for k in ("curve_tokens", "curve_loss_mean"):
                results[arm][k] = [round(v, 5) for v in results[arm][k]]
        mix = state["steps"]["mix"]["summary"]
        result = {
            "target": job["name"], "kind": job["kind"], "config": job["config"],
            "pool_docs": sub["rows"], "dev_docs": len(dev), "eval_docs": len(evals),
            "mix": mix, "arms": results,
            "seconds": round(earlier.get("seconds", 0) + time.perf_counter() - t0, 1),
        }  # fmt: skip
        done.write_text(json.dumps(result, indent=2, default=str))
        return result
    finally:
        log.close()


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def run_suite(
    pool: list[str],
    out: str | os.PathLike = "out/bench/suite",
    *,
    per_domain: int = 260,
    target_docs: int = 140,
    made_docs: int = 300,
    near_dups: int = 100,
    budget_tokens: int = 60_000,
    seeds: int = 3,
    preset: str = "micro",
    topics: int = 8,
    workers: int = 2,
    only: list[str] | None = None,
    search_proxy: dict[str, Any] | None = None,
    arms: Sequence[str] = ARMS,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The whole suite; writes ``suite.json``, ``table.md`` and ``heatmap.svg`` in ``out``.

    ``search_proxy``: the mix and influence steps' ``ProxyConfig`` fields (default
    ``SEARCH_PROXY``, micro proxies of 30k tokens on the CPU). ``arms``: ``ARMS`` and any
    of ``EXTRA_ARMS``; a target finished at the same settings trains only the arms it
    lacks (its pipeline run is reused)."""
    from assay.corpus import read_documents
    from assay.errors import ConfigError
    from assay.records import doc_id
    from selector.bpe import train_bpe

    if preset not in PRESETS or seeds < 2 or budget_tokens <= 0 or workers < 1:
        raise ConfigError(f"need --preset in {sorted(PRESETS)}, --seeds >= 2, --workers >= 1")
    t_start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    docs = list(read_documents(pool))
    for d in docs:
        d["id"] = str(d.get("id") or doc_id(d["text"]))
    corpus = sample_corpus(docs, per_domain, seed=0)
    clean = [d for d in corpus if d.get("domain") != "junk"]
    corpus += low_quality_docs(clean, made_docs, near_dups, seed=0)
    targets: list[Target] = make_targets(
        corpus, target_docs=target_docs, dev_docs=max(8, target_docs * 2 // 7),
        min_domain_docs=int(1.7 * target_docs), seed=0,
    )  # fmt: skip
    if only:
        unknown = set(only) - {t.name for t in targets}
        if unknown:
            raise ConfigError(f"no target(s) {sorted(unknown)}; targets: "
                              + ", ".join(t.name for t in targets))  # fmt: skip
        targets = [t for t in targets if t.name in only]
    corpus_path = out / "corpus.jsonl"
    if not corpus_path.exists():
        _write(corpus_path, corpus)
    say(f"corpus {len(corpus):,} documents; {len(targets)} targets: "
        + ", ".join(t.name for t in targets))  # fmt: skip
    t0 = time.perf_counter()
    shared = shared_stage(corpus_path, out / "shared", workers, say)
    t_shared = time.perf_counter() - t0
    held = {str(d["id"]) for t in targets for d in t.eval}
    bpe = out / "bpe"
    if not (bpe / "tokenizer.json").exists():
        train_bpe([d["text"] for d in corpus if d["id"] not in held], bpe, vocab_size=4096)
    config = {"budget_tokens": budget_tokens, "seeds": seeds, "preset": preset,
              "topics": topics, "per_domain": per_domain, "target_docs": target_docs}  # fmt: skip
    jobs, results = [], {}
    for t in targets:
        folder = out / "targets" / t.name
        done = folder / "result.json"
        old = json.loads(done.read_text()) if done.exists() else {}
        same = {k: v for k, v in old.get("config", {}).items() if k != "arms"} == config
        if same and set(arms) <= set(old["arms"]):
            results[t.name] = old
            say(f"{t.name}: done earlier, reused {done}")
            continue
        jobs.append({
            "name": t.name, "kind": t.kind, "dev": t.dev, "eval": t.eval,
            "exclude": sorted(t.exclude), "folder": str(folder), "shared": str(shared),
            "corpus": str(corpus_path), "bpe": str(bpe), "config": config, **config,
            "search_proxy": search_proxy or SEARCH_PROXY, "arms": list(arms), "keep_arms": same,
        })  # fmt: skip
    import multiprocessing

    # spawn, not fork: a worker must not inherit the parent's CUDA context (GPU presets)
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=spawn, initializer=_init_worker) as ex:
        futures = {ex.submit(run_target, j): j["name"] for j in jobs}
        for fut in as_completed(futures):
            r = fut.result()
            results[r["target"]] = r
            a, base = r["arms"]["assay"], r["arms"]["random"]
            z = (a["loss_mean"] - base["loss_mean"]) / max(base["loss_std"], 1e-9)
            say(
                f"[{len(results)}/{len(targets)}] {r['target']}: assay {z:+.1f} random std "
                f"({r['seconds']:.0f} s; log {out / 'targets' / r['target'] / 'log.txt'})"
            )
    ordered = [results[t.name] for t in targets]
    table, summary = summarize(ordered, list(arms))
    heatmap = write_heatmap_svg(
        out / "heatmap.svg",
        ordered,
        list(arms),
        f"Δ vs random (random std), {preset} proxies, {seeds} seeds",
    )
    seconds = {"shared": round(t_shared, 1), "total": round(time.perf_counter() - t_start, 1)}
    report = {"pool": pool, "corpus_docs": len(corpus), "config": config, "summary": summary,
              "targets": ordered, "seconds": seconds}  # fmt: skip
    (out / "suite.json").write_text(json.dumps(report, indent=2, default=str))
    (out / "table.md").write_text(table + "\n")
    say(f"\n{table}\n(shared annotate + embed {t_shared:.0f} s, total {seconds['total']:.0f} s)")
    return {"table": table, "plot": heatmap, "json": str(out / "suite.json"), **report}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pool", nargs="+", default=[str(REPO / "data" / "demo")])
    ap.add_argument("--out", default=str(REPO / "out" / "bench" / "suite"))
    ap.add_argument("--per-domain", type=int, default=260, help="corpus docs per domain")
    ap.add_argument("--target-docs", type=int, default=140, help="held out per target")
    ap.add_argument("--made-docs", type=int, default=300, help="made low-quality documents")
    ap.add_argument("--near-dups", type=int, default=100, help="made near-duplicates")
    ap.add_argument("--budget-tokens", type=int, default=60_000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--preset", default="micro", choices=sorted(PRESETS))
    ap.add_argument("--topics", type=int, default=8, help="cluster.topic groups (mix step)")
    ap.add_argument("--workers", type=int, default=2, help="targets run at once")
    ap.add_argument("--only", nargs="+", default=None, help="run just these targets")
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS + EXTRA_ARMS),
                    help="arms to train (random and assay always)")  # fmt: skip
    args = ap.parse_args()
    run_suite(
        args.pool, args.out, per_domain=args.per_domain, target_docs=args.target_docs,
        made_docs=args.made_docs, near_dups=args.near_dups, budget_tokens=args.budget_tokens,
        seeds=args.seeds, preset=args.preset, topics=args.topics, workers=args.workers,
        only=args.only, arms=list(dict.fromkeys(["random", *args.arms, "assay"])),
    )  # fmt: skip


if __name__ == "__main__":
    main()
