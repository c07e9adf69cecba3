"""``assay mix search``: groups + target sets -> proxies -> predictor -> mixture.json.

The loop, top to bottom:

1. groups: documents and their group from a clusters folder, an annotated folder or a
   corpus (``selector.proxy_data.load_groups``); target documents are removed from the
   pool by id, so a held-out slice of one domain is never trained on;
2. proxy data: a 4k byte-level BPE trained once on a seeded sample of the pool (or the
   ``--proxy-init`` model's tokenizer), the pool tokenised once; each proxy draws exactly
   its token budget with fixed per-group quotas and common random numbers;
3. proxies: the built-in trainer (``selector.proxy_lm``), a ``--proxy-cmd`` template, or
   offline runs from ``--runs-csv``;
4. search: RegMix (single shot) or CLIMB (rounds, e.g. 4:2:1);
5. outputs: ``mixture.json``; beside it ``<name>.search/`` with ``runs.csv`` (every run:
   round, weights, metrics, seed, prediction made before it ran), ``predicted.svg``
   (predicted vs measured per round), the tokenizer and ``search.json`` (diagnostics).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from assay.errors import AssayError, ConfigError
from selector.mixture import Group, Mixture
from selector.proxy_cmd import CommandProxy, Metrics, read_runs_csv
from selector.proxy_data import load_groups, load_targets
from selector.proxy_lm import ProxyConfig
from selector.sampling import epoch_caps, size_prior
from selector.search_runs import (
    OBJECTIVES,
    RunLog,
    Runner,
    builtin_trainer,
    load_cache,
    no_proxy,
)

METHODS = ("climb", "regmix")


@dataclass
class SearchConfig:
    """How ``assay mix search`` searches; proxy size and budget live in ``ProxyConfig``."""

    group_by: str = "cluster.topic"
    """Column (or corpus field) whose values are the groups."""
    method: str = "climb"
    """``climb`` (iterative rounds) or ``regmix`` (one round)."""
    proxies: int = 28
    """Proxy runs in all (CLIMB splits them over rounds)."""
    rounds: str = "4:2:1"
    """CLIMB's split of ``proxies`` over rounds."""
    prior_temperature: float = 0.5
    """Prior = token share ** temperature (0 uniform, 1 proportional; RegMix: 0.5)."""
    max_epochs: float = 15.0
    """No group may be read more than this many times in ``budget_tokens`` (RegMix: 15)."""
    budget_tokens: int | None = None
    """Training tokens the mixture is meant for; None = the pool's size (one pass)."""
    min_weight: float = 2e-4
    """Smaller weights are set to 0 (RegMix: 2e-4)."""
    predictor: str = "lightgbm"
    """``lightgbm`` (RegMix, CLIMB) or ``linear`` (ridge)."""
    n_candidates: int = 20_000
    """Mixtures the predictor scores per round and at the end (RegMix: 100,000)."""
    top_k: int = 128
    """Best simulated mixtures averaged into the answer (RegMix: 128)."""
    explore: float = 0.25
    """Share of each later CLIMB round spent on random candidates."""
    objective: str = "loss"
    """``loss`` (nats/token, proxy tokenizer) or ``bpb``; averaged over targets."""
    seed: int = 0
    """Seeds sampling, the predictor and the proxy tokenizer's sample."""
    verify: int = 1
    """Proxies (seeds) trained on the found mixture at the end; 0 to skip."""
    guard: bool = True
    """With ``verify``: also retrain the best mixture already measured at the same seeds,
    and keep whichever of it and the predicted optimum measures lower. At a few dozen
    proxies the predictor's optimum can sit on an extreme that a run it had already
    measured beats (benchmarks/RESULTS.md, selection efficacy: 90% on one topic)."""
    text_field: str = "text"
    id_field: str = "id"

    def validate(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"--method must be one of {METHODS}, got {self.method!r}")
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"--objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.proxies < 0:
            raise ConfigError(f"--proxies must be >= 0, got {self.proxies}")
        if self.budget_tokens is not None and self.budget_tokens <= 0:
            raise ConfigError(f"--budget-tokens must be > 0, got {self.budget_tokens}")
        if not 0 <= self.min_weight < 1:
            raise ConfigError(f"--min-weight must be in [0, 1), got {self.min_weight}")
        if self.top_k < 1 or self.n_candidates < self.top_k:
            raise ConfigError("--top-k must be >= 1 and <= --candidates")
        if self.verify < 0:
            raise ConfigError(f"--verify must be >= 0, got {self.verify}")


def group_order(names: set[str]) -> list[str]:
    """Numeric ids in numeric order (cluster 2 before 10), then other names."""
    return sorted(names, key=lambda n: (0, int(n), "") if n.lstrip("-").isdigit() else (1, 0, n))


def run_search(
    source: str | os.PathLike,
    targets: list[str],
    out: str | os.PathLike,
    config: SearchConfig,
    proxy: ProxyConfig,
    *,
    proxy_cmd: str | None = None,
    runs_csv: str | None = None,
    tokenizer_dir: str | None = None,
    annotated: str | None = None,
    resume: bool = False,
    say: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
) -> Mixture:
    """Search a mixture and write ``out`` (mixture.json) and ``<out stem>.search/``.

    ``resume``: reuse the finished runs of an interrupted search with the same settings
    (its ``runs.csv``), training only the runs it had not reached.
    """
    from selector.climb import climb, parse_ratio, split_budget
    from selector.regmix import regmix

    config.validate()
    if not targets:
        raise ConfigError("give at least one --target validation corpus")
    started = time.perf_counter()
    out = Path(out)
    workdir = out.parent / f"{out.stem}.search"
    workdir.mkdir(parents=True, exist_ok=True)
    docs = load_groups(
        source,
        config.group_by,
        text_field=config.text_field,
        id_field=config.id_field,
        annotated=annotated,
    )
    tsets = load_targets(targets, text_field=config.text_field, id_field=config.id_field)
    held = {i for _, ids in tsets.values() for i in ids}
    keep = [k for k, i in enumerate(docs.ids) if i not in held]
    excluded = len(docs.ids) - len(keep)
    for name in ("texts", "ids", "groups"):
        setattr(docs, name, [getattr(docs, name)[k] for k in keep])
    if docs.n_tokens is not None:
        docs.n_tokens = [docs.n_tokens[k] for k in keep]
    names = group_order(set(docs.groups))
    if len(names) < 2:
        raise AssayError(f"--group-by {config.group_by!r} gives {len(names)} group; need >= 2")
    say(f"{len(docs.texts):,} documents in {len(names)} groups ({excluded} target docs left out)")

    train, counts = None, {}
    builtin = (runs_csv is None or config.proxies or config.verify) and proxy_cmd is None
    if builtin or docs.n_tokens is None:  # the proxy tokenizer also counts group tokens
        train, counts = builtin_trainer(
            docs, tsets, proxy, workdir, config.seed, tokenizer_dir, say
        )
        train = train if builtin else None
    if proxy_cmd is not None:
        cmd = CommandProxy(proxy_cmd, workdir / "runs", list(tsets), config.objective)
        group_docs = {g: docs.groups.count(g) for g in names}

        def train(weights: dict[str, float], run: int, seed: int) -> Metrics:
            groups = [Group(g, w, 0, group_docs[g]) for g, w in weights.items()]
            mix = Mixture(
                groups,
                config.group_by,
                proxy.tokens,
                method={
                    "name": "proxy-run",
                    "run": run,
                    "seed": seed,
                    "tokens": proxy.tokens,
                    "targets": targets,
                },
            )
            return cmd(mix.to_dict(), run=run, seed=seed, tokens=proxy.tokens)

    docs_per = {g: 0 for g in names}
    tok_per = {g: 0 for g in names}
    for k, g in enumerate(docs.groups):
        docs_per[g] += 1
        if docs.n_tokens is not None:
            tok_per[g] += docs.n_tokens[k]
    if docs.n_tokens is None:
        if not counts:
            raise AssayError(
                "the pool has no n_tokens column and no proxy tokenizer ran",
                hint="search an annotated folder (assay annotate counts tokens)",
            )
        tok_per = {g: counts["tokens"][g] for g in names}
    tokens = np.array([tok_per[g] for g in names], np.float64)
    budget = config.budget_tokens or int(tokens.sum())
    prior = size_prior(tokens, config.prior_temperature)
    caps = epoch_caps(tokens, budget, config.max_epochs)
    X0 = y0 = None
    skipped = 0
    if runs_csv is not None:  # read before RunLog rewrites a runs.csv it may be
        X0, y0, skipped = read_runs_csv(runs_csv, names, config.objective)
        say(f"read {len(X0)} offline runs from {runs_csv} ({skipped} without a finite value)")
    key = {
        "source": docs.provenance.get("path"),
        "group_by": config.group_by,
        "groups": names,
        "targets": {n: len(t[0]) for n, t in tsets.items()},
        "proxy": proxy.to_dict()
        if proxy_cmd is None
        else {"command": proxy_cmd, "tokens": proxy.tokens, "seed": proxy.seed},
        "search": {
            k: v for k, v in asdict(config).items() if k not in ("verify", "guard", "top_k")
        },
        "tokenizer": counts.get("tokenizer") if tokenizer_dir else None,
        "offline_runs": runs_csv,
    }
    cache = load_cache(workdir / "runs.csv", key, names, list(tsets)) if resume else {}
    if cache:
        say(f"--resume: {len(cache)} finished runs in {workdir / 'runs.csv'} are reused")
    log = RunLog(workdir / "runs.csv", names, list(tsets), key)
    runner = Runner(
        names,
        list(tsets),
        config.objective,
        log,
        proxy,
        train or no_proxy,
        "command" if proxy_cmd else "builtin",
        say,
        cache=cache,
    )
    rng = np.random.default_rng(config.seed)
    if X0 is not None and y0 is not None:
        for w, v in zip(X0, y0, strict=True):
            log.add(-1, "offline", "offline", -1, w, {}, float(v), float("nan"), 0.0)
    common = dict(
        caps=caps,
        min_weight=config.min_weight,
        predictor=config.predictor,
        top_k=config.top_k,
        seed=config.seed,
    )
    budgets: list[int] = []
    if config.method == "regmix" or (runs_csv is not None and config.proxies == 0):
        result = regmix(
            runner,
            prior,
            config.proxies,
            rng,
            n_simulate=config.n_candidates,
            X0=X0,
            y0=y0,
            **common,
        )
    else:
        if runs_csv is not None:
            raise ConfigError(
                "--runs-csv with new proxies works with --method regmix",
                hint="or pass --proxies 0 to fit the offline runs only",
            )
        budgets = split_budget(config.proxies, parse_ratio(config.rounds))
        result = climb(
            runner,
            prior,
            budgets,
            rng,
            n_candidates=config.n_candidates,
            explore=config.explore,
            **common,
        )
    verified = [
        runner.measure(result.weights, "final", float(result.predicted_objective), proxy.seed + s)
        for s in range(config.verify)
    ]
    best = int(np.argmin(result.y))
    weights, guard = result.weights, None
    if config.guard and verified and len(result.y):
        # Retrained at the verification seeds: its first, selected measurement would
        # flatter it (the best of many noisy runs), a fresh one does not.
        rerun = [
            runner.measure(result.X[best], "guard", float(result.y[best]), proxy.seed + s)
            for s in range(config.verify)
        ]
        keep = float(np.mean(rerun)) < float(np.mean(verified))
        guard = {
            "predicted_optimum": float(np.mean(verified)),
            "best_measured_rerun": float(np.mean(rerun)),
            "chosen": "best_measured" if keep else "predicted_optimum",
        }
        if keep:
            weights = result.X[best]
            say(
                f"guard: the best measured mixture ({guard['best_measured_rerun']:.4f}) beats "
                f"the predicted optimum ({guard['predicted_optimum']:.4f}) at the same seeds; "
                "keeping it"
            )
    from selector.search_plot import write_plot

    plot = write_plot(workdir / "predicted.svg", result, config.objective)
    method = {
        "name": config.method,
        "objective": {"metric": config.objective, "targets": list(tsets), "reduce": "mean"},
        "predictor": config.predictor,
        "proxy": proxy.to_dict()
        if proxy_cmd is None
        else {"command": proxy_cmd, "tokens": proxy.tokens},
        "proxy_runs": len(result.y),
        "rounds": budgets or [len(result.y)],
        "per_round": result.round_reports,
        "heldout_spearman": [r["heldout_spearman"] for r in result.round_reports],
        "predicted_objective": result.predicted_objective,
        "best_measured": {
            "objective": float(result.y[best]),
            "weights": dict(zip(names, result.X[best].round(6).tolist(), strict=True)),
        },
        "verified_objective": verified,
        "guard": guard,
        "search": {k: v for k, v in asdict(config).items() if k not in ("text_field", "id_field")},
        "prior": dict(zip(names, prior.round(6).tolist(), strict=True)),
        "seconds": round(time.perf_counter() - started, 1),
    }
    groups = [
        Group(g, float(w), int(tok_per[g]), int(docs_per[g]))
        for g, w in zip(names, weights, strict=True)
    ]
    provenance = {
        **docs.provenance,
        "targets": {
            n: {"path": str(Path(p).resolve()), "docs": len(tsets[n][0])}
            for n, p in zip(tsets, targets, strict=True)
        },
        "target_docs_excluded": excluded,
        "token_counts": "n_tokens column"
        if docs.n_tokens is not None
        else f"proxy tokenizer {counts.get('tokenizer')}",
        "runs_csv": str(log.path),
        "plot": plot,
        "offline_runs": runs_csv,
        "offline_rows_skipped": skipped,
    }
    mixture = Mixture(groups, config.group_by, budget, method=method, provenance=provenance)
    (workdir / "search.json").write_text(json.dumps(method, indent=2, default=str))
    mixture.write(out)
    return mixture
