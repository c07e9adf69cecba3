"""MosaicML streaming ``Stream(remote|local, proportion=...)`` in LLM Foundry's YAML.

Each stream sets at most one of ``proportion`` (relative), ``repeat`` (multiplier of the
stream's own size) or ``choose`` (absolute samples), and all streams use the same scheme
(``streaming/base/stream.py``). A sample is one MDS record: one document for text
shards, a fixed-length sequence for pre-concatenated ones (``--mds-packed``).
Without ``epoch_size`` an epoch is all unique samples, so proportions alone do not set
how much is read (llm-foundry #426): ``choose`` / ``repeat`` pin the budget.
"""

from __future__ import annotations

from typing import Any

import yaml

from assay.errors import AssayError
from selector.mix_formats._common import check_weights

SCHEMES = ("proportion", "repeat", "choose")


def render(
    rows: list[Any],
    *,
    scheme: str = "proportion",
    remote: bool = False,
    packed: bool = False,
    seq_len: int = 2048,
    budget_tokens: int | None = None,
    **_: Any,
) -> dict[str, str]:
    from selector.mix_export import fixed_decimals

    if scheme not in SCHEMES:
        raise AssayError(f"--mds-scheme must be one of {SCHEMES}, got {scheme!r}")
    streams: dict[str, dict[str, Any]] = {}
    for w, r in zip(fixed_decimals([r.weight for r in rows]), rows, strict=True):
        entry: dict[str, Any] = {"remote" if remote else "local": r.path, "split": "train"}
        if scheme == "proportion":
            entry["proportion"] = w
        elif r.epochs is None:
            raise AssayError(
                f"--mds-scheme {scheme} needs token counts and a budget",
                hint="pass --budget-tokens",
            )
        elif scheme == "repeat":
            entry["repeat"] = round(r.epochs, 6)
        else:
            tokens_per_sample = seq_len if packed else r.tokens_available / r.docs_available
            entry["choose"] = max(1, round(r.token_weight * budget_tokens / tokens_per_sample))
        streams[r.group] = entry
    doc = {"train_loader": {"name": "text", "dataset": {"streams": streams}}}
    return {"streams.yaml": yaml.safe_dump(doc, sort_keys=False)}


def check(files: dict[str, str], **_: Any) -> None:
    doc = yaml.safe_load(files["streams.yaml"])
    streams = doc["train_loader"]["dataset"]["streams"]
    used = {k for s in streams.values() for k in SCHEMES if k in s}
    if len(used) != 1:
        raise AssayError(f"streams.yaml: streams must all use one of {SCHEMES}, got {used}")
    for name, s in streams.items():
        if ("remote" in s) == ("local" in s):
            raise AssayError(f"streams.yaml: stream {name!r} needs remote or local")
    scheme = used.pop()
    if scheme == "proportion":
        check_weights([s["proportion"] for s in streams.values()], "streams.yaml proportion")
    elif any(not s[scheme] > 0 for s in streams.values()):
        raise AssayError(f"streams.yaml: every {scheme} must be > 0")
