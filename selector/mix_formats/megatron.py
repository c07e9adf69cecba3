"""Megatron-LM ``--data-path`` / ``--per-split-data-args-path`` and NeMo 2.0 ``paths``.

Megatron (``megatron/training/arguments.py``, ``get_blend_from_list``): alternating
``weight prefix`` tokens; weights are normalised and weight the *samples drawn*; each
prefix names ``PREFIX.bin`` + ``PREFIX.idx``. ``--data-args-path`` reads the same tokens
from a file (``f.read().split()``); ``--per-split-data-args-path`` reads
``{"train": [...], "valid": [...], "test": [...]}``. NeMo's
``PreTrainingDataModule(paths=...)`` takes ``["30", "prefix1", "70", "prefix2"]`` or a dict
with ``train`` / ``validation`` / ``test``; it builds the same Megatron-core blend.
Valid and test splits get the same blend: a target-specific validation set is a separate
prefix the user adds.
"""

from __future__ import annotations

import json
from typing import Any

from assay.errors import AssayError
from selector.mix_formats._common import check_weights

SPLITS = {"megatron": ("train", "valid", "test"), "nemo": ("train", "validation", "test")}


def blend_tokens(rows: list[Any]) -> list[str]:
    from selector.mix_export import fixed_decimals

    weights = fixed_decimals([r.weight for r in rows])
    out: list[str] = []
    for w, r in zip(weights, rows, strict=True):
        if any(c.isspace() for c in r.path):
            raise AssayError(f"Megatron prefixes cannot hold whitespace: {r.path!r}")
        out += [f"{w:.6f}", r.path]
    return out


def render(rows: list[Any], *, fmt: str = "megatron", **_: Any) -> dict[str, str]:
    tokens = blend_tokens(rows)
    per_split = {split: tokens for split in SPLITS[fmt]}
    if fmt == "nemo":
        return {"paths.json": json.dumps(per_split, indent=2) + "\n"}
    return {
        "data_args.txt": " ".join(tokens) + "\n",
        "blend.json": json.dumps(per_split, indent=2) + "\n",
    }


def parse_pairs(tokens: list[str], where: str) -> list[tuple[float, str]]:
    """Megatron's rule: an even number of tokens, weight (a number) then prefix."""
    if len(tokens) % 2:
        raise AssayError(f"{where}: odd number of tokens; expected weight/prefix pairs")
    pairs = []
    for i in range(0, len(tokens), 2):
        try:
            w = float(tokens[i])
        except ValueError:
            raise AssayError(f"{where}: token {i} ({tokens[i]!r}) is not a weight") from None
        prefix = tokens[i + 1]
        try:
            float(prefix)
            raise AssayError(f"{where}: token {i + 1} ({prefix!r}) is a number, not a prefix")
        except ValueError:
            pass
        if prefix.endswith((".bin", ".idx")):
            raise AssayError(f"{where}: {prefix!r} must be a prefix, without .bin/.idx")
        pairs.append((w, prefix))
    check_weights([w for w, _ in pairs], where)
    if len({p for _, p in pairs}) != len(pairs):
        raise AssayError(f"{where}: a prefix repeats")
    return pairs


def check(files: dict[str, str], *, fmt: str = "megatron") -> None:
    name = "paths.json" if fmt == "nemo" else "blend.json"
    blend = json.loads(files[name])
    if set(blend) != set(SPLITS[fmt]):
        raise AssayError(f"{name}: keys must be {SPLITS[fmt]}, got {sorted(blend)}")
    for split, tokens in blend.items():
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise AssayError(f"{name}[{split}] must be a list of strings")
        parse_pairs(tokens, f"{name}[{split}]")
    if fmt == "megatron":
        parse_pairs(files["data_args.txt"].split(), "data_args.txt")
