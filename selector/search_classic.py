"""CLIMB and RegMix inside ``assay mix search`` (``--method climb | regmix``), with the
verification run and the guard. Moved out of ``selector.search`` unchanged; the default
method is the trust-region search (``selector.trust_search.run``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from assay.errors import ConfigError
from selector.climb import climb, parse_ratio, split_budget
from selector.regmix import regmix


def search_classic(
    runner: Any,
    prior: np.ndarray,
    caps: np.ndarray,
    config: Any,
    proxy_seed: int,
    rng: np.random.Generator,
    say: Callable[[str], None],
    *,
    X0: np.ndarray | None = None,
    y0: np.ndarray | None = None,
    offline: bool = False,
) -> tuple[np.ndarray, Any, dict[str, Any]]:
    """(weights, search result, the method-specific part of ``mixture.json``)."""
    common = dict(
        caps=caps,
        min_weight=config.min_weight,
        predictor=config.predictor,
        top_k=config.top_k,
        seed=config.seed,
    )
    budgets: list[int] = []
    if config.method == "regmix" or (offline and config.proxies == 0):
        result = regmix(
            runner, prior, config.proxies, rng, n_simulate=config.n_candidates, X0=X0, y0=y0,
            **common,
        )  # fmt: skip
    else:
        if offline:
            raise ConfigError(
                "--runs-csv with new proxies works with --method regmix",
                hint="or pass --proxies 0 to fit the offline runs only",
            )
        budgets = split_budget(config.proxies, parse_ratio(config.rounds))
        result = climb(
            runner, prior, budgets, rng, n_candidates=config.n_candidates,
            explore=config.explore, **common,
        )  # fmt: skip
    verified = [
        runner.measure(result.weights, "final", float(result.predicted_objective), proxy_seed + s)
        for s in range(config.verify)
    ]
    best = int(np.argmin(result.y))
    weights, guard = result.weights, None
    if config.guard and verified and len(result.y):
        # Retrained at the verification seeds: its first, selected measurement would
        # flatter it (the best of many noisy runs), a fresh one does not.
        rerun = [
            runner.measure(result.X[best], "guard", float(result.y[best]), proxy_seed + s)
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
    method = {
        "predictor": config.predictor,
        "rounds": budgets or [len(result.y)],
        "verified_objective": verified,
        "guard": guard,
    }
    return weights, result, method
