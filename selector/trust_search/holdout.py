"""Target documents the search never fits on: the verification's own half.

The trust search fits its surrogates to proxy losses on the target documents and then
checks its proposal against the prior. When that check reads the same documents, a
proposal that fits the quirks of a small, mixed target (40 reference pages of three
manuals, say) passes it and then loses on the rest of the domain
(benchmarks/RESULTS.md, efficacy suite: the technical target). So each target is split
once, by a seeded shuffle of its documents, into a *search* part (the objective of every
proxy run of the rounds) and a *holdout* part that only the verification reads; both are
scored by every proxy run, at no extra cost beyond the evaluation itself, and logged in
``runs.csv`` as ``<target>`` and ``<target>.holdout``.

A target with fewer than ``MIN_DOCS`` documents is not split (each half would be too
small to stand for it); the search says so and verifies on the search documents.
"""

from __future__ import annotations

import numpy as np

from assay.errors import ConfigError

MIN_DOCS = 8
SUFFIX = ".holdout"

TargetSets = dict[str, tuple[list[str], list[str]]]


def split_targets(
    tsets: TargetSets, share: float, seed: int
) -> tuple[TargetSets, TargetSets, dict[str, dict[str, int]]]:
    """(search sets, holdout sets, {target: {"search": n, "holdout": n}}).

    ``share`` of each target's documents (rounded, at least 1 on each side) goes to the
    holdout; the shuffle depends only on ``seed`` and the target's size, so a resumed
    search splits the same way.
    """
    if not 0 <= share < 1:
        raise ConfigError(f"--holdout must be in [0, 1), got {share}")
    search: TargetSets = {}
    held: TargetSets = {}
    report: dict[str, dict[str, int]] = {}
    for name, (texts, ids) in tsets.items():
        if name + SUFFIX in tsets:
            raise ConfigError(f"target {name + SUFFIX!r} clashes with {name!r}'s holdout half",
                              hint="rename that target file")  # fmt: skip
        n = len(texts)
        if share == 0 or n < MIN_DOCS:
            search[name] = (texts, ids)
            report[name] = {"search": n, "holdout": 0}
            continue
        order = np.random.default_rng(seed).permutation(n)
        k = min(n - 1, max(1, round(n * share)))
        out, keep = sorted(order[:k].tolist()), sorted(order[k:].tolist())
        search[name] = ([texts[i] for i in keep], [ids[i] for i in keep])
        held[name + SUFFIX] = ([texts[i] for i in out], [ids[i] for i in out])
        report[name] = {"search": n - k, "holdout": k}
    return search, held, report
