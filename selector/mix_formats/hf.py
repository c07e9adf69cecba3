"""HF ``datasets.interleave_datasets(datasets, probabilities, seed, stopping_strategy)``.

Probabilities are per *example* (document) and sampled (``src/datasets/combine.py``); they
must match ``datasets`` in length and sum to 1. ``first_exhausted`` stops at the first
empty dataset (undersamples), ``all_exhausted`` oversamples until every one is used up;
for a target mixture over a budget ``all_exhausted`` with a ``take(n)`` is the match.
"""

from __future__ import annotations

import json
from typing import Any

from assay.errors import AssayError
from selector.mix_formats._common import check_weights

STOPPING = ("first_exhausted", "all_exhausted", "all_exhausted_without_replacement")


def render(
    rows: list[Any], *, seed: int = 42, stopping_strategy: str = "all_exhausted", **_: Any
) -> dict[str, str]:
    from selector.mix_export import fixed_decimals

    doc = {
        "datasets": [r.path for r in rows],
        "names": [r.group for r in rows],
        "probabilities": fixed_decimals([r.weight for r in rows]),
        "seed": seed,
        "stopping_strategy": stopping_strategy,
        "usage": "interleave_datasets([load_from_disk(p) for p in datasets], "
        "probabilities=probabilities, seed=seed, stopping_strategy=stopping_strategy)",
    }
    return {"interleave.json": json.dumps(doc, indent=2) + "\n"}


def check(files: dict[str, str], **_: Any) -> None:
    doc = json.loads(files["interleave.json"])
    if len(doc["probabilities"]) != len(doc["datasets"]):
        raise AssayError("interleave.json: probabilities and datasets differ in length")
    if doc["stopping_strategy"] not in STOPPING:
        raise AssayError(f"interleave.json: stopping_strategy must be one of {STOPPING}")
    check_weights(doc["probabilities"], "interleave.json probabilities")
