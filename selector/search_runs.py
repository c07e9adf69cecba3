"""Proxy runs of a search: the built-in trainer, the run log (``runs.csv``) and a runner.

``Runner`` turns a batch of mixtures into measured objectives for RegMix / CLIMB; every
run is appended to ``runs.csv`` (and flushed) as soon as it ends, so a crashed search
leaves every finished run on disk.
"""

from __future__ import annotations

import csv
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assay.errors import AssayError
from selector.proxy_cmd import Metrics
from selector.proxy_lm import ProxyConfig

OBJECTIVES = ("loss", "bpb")


KEY_FILE = "runs.key.json"


def load_cache(
    path: Path, key: dict[str, Any], groups: list[str], targets: list[str]
) -> dict[int, tuple[np.ndarray, Metrics]]:
    """Finished runs of an earlier, interrupted search with the same settings (``--resume``).

    The search is deterministic for a seed, so a rerun proposes the same mixtures in the
    same order; run ``i`` is reused only if its weights match. ``key`` (proxy, targets,
    groups, seed, ...) must equal the one stored beside ``runs.csv``: a cached loss from
    another proxy size would be silently wrong.
    """
    key_path = path.parent / KEY_FILE
    if not path.exists() or not key_path.exists():
        return {}
    stored = json.loads(key_path.read_text())
    if stored != json.loads(json.dumps(key, default=str)):
        diff = sorted(k for k in set(stored) | set(key) if stored.get(k) != key.get(k))
        raise AssayError(
            f"--resume: {path} was written with other settings ({', '.join(diff)})",
            hint="rerun with the same flags, or without --resume to start over",
        )
    cache: dict[int, tuple[np.ndarray, Metrics]] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            if row["source"] not in ("builtin", "command", "cached") or int(row["run"]) < 0:
                continue
            w = np.array([float(row[f"w:{g}"]) for g in groups])
            metrics = {
                t: {m: float(row[f"{t}:{m}"]) for m in OBJECTIVES if row.get(f"{t}:{m}")}
                for t in targets
            }
            cache[int(row["run"])] = (w, metrics)
    return cache


class RunLog:
    """``runs.csv``: one row per proxy run, appended and flushed as each run ends."""

    def __init__(
        self, path: Path, groups: list[str], targets: list[str], key: dict[str, Any]
    ) -> None:
        self.path = path
        (path.parent / KEY_FILE).write_text(json.dumps(key, indent=1, default=str))
        self.header = (
            ["run", "round", "source", "seed"]
            + [f"w:{g}" for g in groups]
            + [f"{t}:{m}" for t in targets for m in OBJECTIVES]
            + ["objective", "predicted", "seconds"]
        )
        self.groups, self.targets = groups, targets
        with path.open("w", newline="") as f:
            csv.writer(f).writerow(self.header)

    def add(
        self,
        run: int,
        rnd: int | str,
        source: str,
        seed: int,
        w: np.ndarray,
        metrics: Metrics,
        objective: float,
        predicted: float,
        seconds: float,
    ) -> None:
        row = [run, rnd, source, seed, *(f"{x:.6g}" for x in w)]
        row += [metrics.get(t, {}).get(m, "") for t in self.targets for m in OBJECTIVES]
        row += [objective, "" if math.isnan(predicted) else predicted, round(seconds, 3)]
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow(row)


@dataclass
class Runner:
    """Trains one proxy per mixture (built-in or command) and logs it."""

    names: list[str]
    targets: list[str]
    objective: str
    log: RunLog
    proxy: ProxyConfig
    train: Callable[[dict[str, float], int, int], Metrics]
    source: str
    say: Callable[[str], None]
    runs: int = 0
    cache: dict[int, tuple[np.ndarray, Metrics]] = field(default_factory=dict)
    """Runs of an interrupted search to replay instead of training (``load_cache``)."""
    holdout: list[str] = field(default_factory=list)
    """Targets every run scores but only the verification reads
    (``selector.trust_search.holdout``)."""

    def measure(
        self,
        w: np.ndarray,
        rnd: int | str,
        predicted: float,
        seed: int,
        targets: list[str] | None = None,
    ) -> float:
        """Train (or replay) one run; its objective, averaged over ``targets`` (default: the
        search targets)."""
        start = time.perf_counter()
        weights = {g: float(x) for g, x in zip(self.names, w, strict=True) if x > 0}
        hit = self.cache.get(self.runs)
        source = self.source
        if hit is not None and np.allclose(hit[0], w, atol=1e-5, rtol=0):
            metrics, source = hit[1], "cached"
        else:
            metrics = self.train(weights, self.runs, seed)
        obj = float(np.mean([metrics[t][self.objective] for t in targets or self.targets]))
        seconds = time.perf_counter() - start
        self.log.add(self.runs, rnd, source, seed, w, metrics, obj, predicted, seconds)
        self.say(f"run {self.runs} round {rnd}: {self.objective} {obj:.4f} ({seconds:.1f} s)")
        self.runs += 1
        return obj

    def __call__(self, X: np.ndarray, rnd: int, predicted: np.ndarray) -> np.ndarray:
        return np.array(
            [self.measure(w, rnd, p, self.proxy.seed) for w, p in zip(X, predicted, strict=True)]
        )


def builtin_trainer(
    docs: Any,
    evals_texts: dict,
    proxy: ProxyConfig,
    workdir: Path,
    seed: int,
    tokenizer_dir: str | None,
    say: Callable[[str], None],
) -> tuple[Callable, dict]:
    """The built-in proxy: tokenise once, then train on quota draws. Returns (train, counts)."""
    from selector.bpe import encode_texts, load_tokenizer, train_bpe
    from selector.proxy_data import TokenPool, make_eval_set
    from selector.proxy_lm import train_proxy_tokens

    if tokenizer_dir is None and proxy.init == "scratch":
        order = list(range(len(docs.texts)))
        random.Random(seed).shuffle(order)  # a sample of every group, not the first files
        t0 = time.perf_counter()
        tokenizer_dir = str(
            train_bpe(
                (docs.texts[i] for i in order), workdir / "tokenizer", vocab_size=proxy.vocab_size
            )
        )
        say(f"trained a {proxy.vocab_size}-token BPE in {time.perf_counter() - t0:.1f} s")
    elif tokenizer_dir is None:
        from raters.hub import resolve_model

        tokenizer_dir = str(resolve_model(proxy.init))
    tok = load_tokenizer(tokenizer_dir)
    t0 = time.perf_counter()
    ids = encode_texts(tok, docs.texts)
    pool = TokenPool.from_docs(ids, docs.groups, int(tok.eos_token_id))
    evals = {
        n: make_eval_set(t, encode_texts(tok, t), int(tok.eos_token_id))
        for n, (t, _) in evals_texts.items()
    }
    say(f"tokenised {len(ids):,} pool documents in {time.perf_counter() - t0:.1f} s")
    vocab = len(tok)

    def train(weights: dict[str, float], run: int, seed: int) -> Metrics:
        stream = pool.draw(weights, proxy.tokens, seed)
        cfg = ProxyConfig(**{**asdict(proxy), "seed": seed})
        res = train_proxy_tokens(stream, evals, cfg, vocab_size=vocab, eos_id=pool.eos_id)
        return res.metrics

    return train, {"tokens": pool.tokens, "tokenizer": tokenizer_dir}


def no_proxy(weights: dict[str, float], run: int, seed: int) -> Metrics:
    raise AssayError(
        "this search has no proxy to train (offline runs only)",
        hint="pass --proxy-cmd, or drop --runs-csv to use the built-in proxy",
    )
