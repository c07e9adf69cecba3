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
4. search: the trust-region search (default: space-filling round 0, surrogates chosen by
   cross-validation, proposals inside a KL trust region around the prior, verified against
   the prior at several seeds; ``selector.trust_search``), CLIMB (rounds, e.g. 4:2:1) or
   RegMix (single shot);
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
from dataclasses import asdict, dataclass, replace
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
from selector.trust_search.budget import (
    PROXIES_PER_GROUP,
    budget_warning,
    default_proxies,
    zeroed_groups,
)
from selector.trust_search.holdout import split_targets

METHODS = ("trust", "climb", "regmix")


@dataclass
class SearchConfig:
    """How ``assay mix search`` searches; proxy size and budget live in ``ProxyConfig``."""

    group_by: str = "cluster.topic"
    """Column (or corpus field) whose values are the groups."""
    method: str = "trust"
    """``trust`` (trust region around the prior, verified), ``climb`` (iterative rounds) or
    ``regmix`` (one round)."""
    proxies: int | None = None
    """Proxy runs in all, verification aside; None = 4 per group, at least 8
    (``selector.trust_search.budget``: the rule and where it comes from)."""
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
    """climb / regmix: ``lightgbm`` (RegMix, CLIMB) or ``linear`` (ridge)."""
    predictors: str = "loglinear,gp,lightgbm"
    """trust: surrogates cross-validated against each other (and the constant); the one
    with the lowest held-out error is used (``selector.surrogates``)."""
    trust_kl: float = 2.0
    """trust: radius of the trust region (KL to the prior, nats) for a perfect fit; the
    radius used is this times the fit's CV skill."""
    kappa: float = 1.0
    """trust: standard deviations in the confidence bounds (0 = trust the mean)."""
    min_group_share: float = 1e-3
    """Groups under this share of the pool's tokens get weight 0 (RegMix: 0.1%)."""
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
    verify: int = 3
    """trust: seeds at which the proposal and the prior are both trained at the end (>= 2;
    the proposal is kept only if it wins by more than their noise). climb / regmix: seeds
    trained on the found mixture. 0 skips it."""
    holdout: float = 0.5
    """trust: share of each target's documents that the rounds never fit on; the final
    verification reads only those (``selector.trust_search.holdout``). 0 = verify on the
    documents the search fitted. Not applied with ``--proxy-cmd`` / ``--runs-csv``, whose
    runs score the target files themselves."""
    guard: bool = True
    """climb / regmix, with ``verify``: also retrain the best mixture already measured at
    the same seeds, and keep whichever of it and the predicted optimum measures lower. At a
    few dozen proxies the predictor's optimum can sit on an extreme that a run it had already
    measured beats (benchmarks/RESULTS.md, selection efficacy: 90% on one topic)."""
    text_field: str = "text"
    id_field: str = "id"

    def validate(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"--method must be one of {METHODS}, got {self.method!r}")
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"--objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.proxies is not None and self.proxies < 0:
            raise ConfigError(f"--proxies must be >= 0, got {self.proxies}")
        if self.trust_kl < 0 or self.kappa < 0:
            raise ConfigError("--trust-kl and --kappa must be >= 0")
        if not 0 <= self.min_group_share < 1:
            raise ConfigError(f"--min-group-share must be in [0, 1), got {self.min_group_share}")
        if self.budget_tokens is not None and self.budget_tokens <= 0:
            raise ConfigError(f"--budget-tokens must be > 0, got {self.budget_tokens}")
        if not 0 <= self.min_weight < 1:
            raise ConfigError(f"--min-weight must be in [0, 1), got {self.min_weight}")
        if self.top_k < 1 or self.n_candidates < self.top_k:
            raise ConfigError("--top-k must be >= 1 and <= --candidates")
        if self.verify < 0:
            raise ConfigError(f"--verify must be >= 0, got {self.verify}")
        if not 0 <= self.holdout < 1:
            raise ConfigError(f"--holdout must be in [0, 1), got {self.holdout}")


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
    own_runs = proxy_cmd is None and runs_csv is None
    share = config.holdout if config.method == "trust" and config.verify >= 2 and own_runs else 0
    search_sets, holdout_sets, split = split_targets(tsets, share, config.seed)
    evals = {**search_sets, **holdout_sets}  # every run scores both halves
    if holdout_sets:
        say("target documents: " + ", ".join(
            f"{n} {c['search']} searched + {c['holdout']} held out for the verification"
            if c["holdout"] else f"{n} {c['search']} (too few to hold any out)"
            for n, c in split.items()
        ))  # fmt: skip
    elif config.holdout and config.method == "trust" and not own_runs:
        say("--holdout is not applied with --proxy-cmd / --runs-csv: the verification reads "
            "the documents the search fitted")  # fmt: skip

    train, counts = None, {}
    builtin = (runs_csv is None or config.proxies or config.verify) and proxy_cmd is None
    if builtin or docs.n_tokens is None:  # the proxy tokenizer also counts group tokens
        train, counts = builtin_trainer(
            docs, evals, proxy, workdir, config.seed, tokenizer_dir, say
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
    small = zeroed_groups(tokens, config.min_group_share)
    zeroed = [g for g, z in zip(names, small, strict=True) if z]
    if zeroed and not small.all():
        prior = np.where(small, 0.0, prior) / prior[~small].sum()
        caps = np.where(small, 0.0, caps)
        say(
            f"{len(zeroed)} groups hold < {config.min_group_share:.1%} of the tokens and get "
            f"weight 0: {', '.join(zeroed[:8])}{' ...' if len(zeroed) > 8 else ''}"
        )
    active = int((~small).sum())
    proxies_rule = None
    if config.proxies is None:
        config = replace(config, proxies=default_proxies(active))
        proxies_rule = f"{PROXIES_PER_GROUP} per group x {active} groups (at least 8)"
        say(f"--proxies {config.proxies}: {proxies_rule}")
    warn = budget_warning(config.proxies, active, config.group_by)
    if warn and not (runs_csv is not None and config.proxies == 0):
        say(warn)
    X0 = y0 = None
    skipped = 0
    if runs_csv is not None:  # read before RunLog rewrites a runs.csv it may be
        X0, y0, skipped = read_runs_csv(runs_csv, names, config.objective)
        say(f"read {len(X0)} offline runs from {runs_csv} ({skipped} without a finite value)")
    key = {
        "source": docs.provenance.get("path"),
        "group_by": config.group_by,
        "groups": names,
        "targets": {n: len(t[0]) for n, t in evals.items()},
        "proxy": proxy.to_dict()
        if proxy_cmd is None
        else {"command": proxy_cmd, "tokens": proxy.tokens, "seed": proxy.seed},
        "search": {
            k: v for k, v in asdict(config).items() if k not in ("verify", "guard", "top_k")
        },
        "tokenizer": counts.get("tokenizer") if tokenizer_dir else None,
        "offline_runs": runs_csv,
    }
    cache = load_cache(workdir / "runs.csv", key, names, list(evals)) if resume else {}
    if cache:
        say(f"--resume: {len(cache)} finished runs in {workdir / 'runs.csv'} are reused")
    log = RunLog(workdir / "runs.csv", names, list(evals), key)
    runner = Runner(
        names,
        list(search_sets),
        config.objective,
        log,
        proxy,
        train or no_proxy,
        "command" if proxy_cmd else "builtin",
        say,
        cache=cache,
        holdout=list(holdout_sets),
    )
    rng = np.random.default_rng(config.seed)
    if X0 is not None and y0 is not None:
        for w, v in zip(X0, y0, strict=True):
            log.add(-1, "offline", "offline", -1, w, {}, float(v), float("nan"), 0.0)
    if config.method == "trust":
        if runs_csv is not None:
            raise ConfigError("--runs-csv works with --method regmix", hint="add --method regmix")
        from selector.trust_search.run import search_trust

        weights, result, extra = search_trust(runner, prior, caps, config, proxy.seed, rng, say)
    else:
        from selector.search_classic import search_classic

        weights, result, extra = search_classic(
            runner, prior, caps, config, proxy.seed, rng, say, X0=X0, y0=y0,
            offline=runs_csv is not None,
        )  # fmt: skip
    best = int(np.argmin(result.y))
    from selector.search_plot import write_plot

    plot = write_plot(workdir / "predicted.svg", result, config.objective)
    method = {
        "name": config.method,
        "objective": {"metric": config.objective, "targets": list(tsets), "reduce": "mean"},
        "holdout": {"share": share, "docs": split},
        "proxy": proxy.to_dict()
        if proxy_cmd is None
        else {"command": proxy_cmd, "tokens": proxy.tokens},
        "proxy_runs": len(result.y),
        "proxies_rule": proxies_rule,
        "zeroed_groups": zeroed,
        "per_round": result.round_reports,
        "heldout_spearman": [r["heldout_spearman"] for r in result.round_reports],
        "predicted_objective": result.predicted_objective,
        "best_measured": {
            "objective": float(result.y[best]),
            "weights": dict(zip(names, result.X[best].round(6).tolist(), strict=True)),
        },
        **extra,
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
