"""The trust-region search inside ``assay mix search`` (``--method trust``, the default):
the rounds, then the verification against the prior at fresh seeds."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from assay.errors import ConfigError
from selector.trust_search.loop import TrustResult, split_rounds, trust_search
from selector.trust_search.verify import verify_against_prior


def search_trust(
    runner: Any,
    prior: np.ndarray,
    caps: np.ndarray,
    config: Any,
    proxy_seed: int,
    rng: np.random.Generator,
    say: Callable[[str], None],
) -> tuple[np.ndarray, TrustResult, dict[str, Any]]:
    """(weights, search result, the method-specific part of ``mixture.json``)."""
    if config.verify == 1:
        raise ConfigError(
            "--verify 1 cannot tell a proposal from the prior: give >= 2 seeds (default 3)",
            hint="or --verify 0 to return the proposal unchecked",
        )
    kinds = [k.strip() for k in config.predictors.split(",") if k.strip()]
    result = trust_search(
        runner, prior, config.proxies, rng, caps=caps, min_weight=config.min_weight,
        kinds=kinds, max_kl=config.trust_kl, kappa=config.kappa,
        n_candidates=config.n_candidates, seed=config.seed,
    )  # fmt: skip
    prop = result.proposal
    prior = result.prior  # clipped to the caps
    say(
        f"proposal: predictor {result.choice.chosen} (CV skill {result.choice.skill:.2f}), "
        f"predicted {prop.mean:.4f} ± {prop.std:.4f} vs prior {prop.prior_mean:.4f}, "
        f"KL to prior {prop.kl:.3f} of {prop.radius:.3f} allowed, step {prop.step:.2f}"
    )
    weights = result.weights
    if prop.step == 0 or prop.kl < 1e-9:
        verification: dict[str, Any] = {
            "chosen": "prior",
            "reason": "the proposal is the prior (the fit does not beat the runs' mean, or "
            "no step away from the prior lowers its upper confidence bound)",
        }
        weights = prior
        say("the search keeps the prior: the fit gives no reason to move")
    elif config.verify == 0:
        verification = {"chosen": "proposal", "reason": "--verify 0: not checked"}
    else:
        seeds = [proxy_seed + 1 + s for s in range(config.verify)]
        held = list(runner.holdout)  # documents the rounds never fitted
        on = held or None
        pa, pb = (math.nan, math.nan) if held else (prop.mean, prop.prior_mean)
        a = [runner.measure(weights, "verify-proposal", pa, s, targets=on) for s in seeds]
        b = [runner.measure(prior, "verify-prior", pb, s, targets=on) for s in seeds]
        verification = verify_against_prior(a, b)
        verification["targets"] = held or list(runner.targets)
        verification["on"] = "held-out target documents" if held else "the searched documents"
        d, n = verification["difference"], verification["noise"]
        if verification["chosen"] == "prior":
            weights = prior
            say(
                f"verification: the proposal is {d:+.4f} vs the prior at {len(seeds)} seeds, "
                f"not below -{n:.4f} (their noise): returning the prior"
            )
        else:
            say(f"verification: the proposal beats the prior by {-d:.4f} (noise {n:.4f}); kept")
    method = {
        "predictors": kinds,
        "predictor": result.choice.to_dict(),
        "rounds": split_rounds(config.proxies),
        "proposal": {
            **prop.to_dict(),
            "weights": [round(float(w), 6) for w in result.weights],
        },
        "trust_region": {
            "kind": "kl",
            "max_kl": config.trust_kl,
            "radius_kl": prop.radius,
            "rule": "radius = max_kl x CV skill (1 - CV MSE / constant's CV MSE)",
            "kappa": config.kappa,
        },
        "verification": verification,
        "verified_objective": verification.get("proposal", []),
        "guard": None,
    }
    return weights, result, method
