"""``assay mix export``: mixture.json -> each trainer's own syntax and unit.

A weight means nothing without its unit (reference: mixing.md section 5). mixture.json
holds **token** shares; trainers weight other things:

- ``megatron``: ``data_args.txt`` (``--data-args-path``) and ``blend.json``
  (``--per-split-data-args-path``); weights samples of ``seq_len`` tokens. Fixed-length
  packed samples make the sample share equal the token share: no conversion. ``{group}``
  of the path template (default ``data/{group}_text_document``) is filled with
  :func:`selector.export.megatron.group_stem`, as ``assay export --format megatron``
  names its prefixes (``topic 3/web`` -> ``topic_3_web_text_document``).
- ``nemo``: ``paths.json`` for ``PreTrainingDataModule(paths=...)``; Megatron-core
  semantics, no conversion; prefixes named as for ``megatron``.
- ``nanotron``: ``nanoset.yaml`` (``dataset_folder: [path, ...]``, ``dataset_weights:
  [w, ...]``); samples of ``sequence_length + 1`` tokens, no conversion.
- ``olmo-core``: ``source_mixture.yaml`` (``SourceMixtureList``); tokens, no conversion;
  ``max_repetition_ratio`` from the implied epochs. Paths ``data/{group}/*.npy``: the
  token files ``assay export --format olmo-core`` writes, relative to its folder, or
  absolute under it with option ``root``. ``{group}`` is filled with
  :func:`selector.export.olmo_core.group_folder` (the percent-quoted name the token
  export names its folders by), in a ``--path-template`` too; a group's own ``paths``
  are used only when they name ``.npy`` files (a selection's ``group=<name>`` Parquet
  folders do not).
- ``hf``: ``interleave.json`` for ``interleave_datasets(probabilities=...)``; per example
  (document): ``w_g / mean tokens per document of g``, renormalised.
- ``mds``: ``streams.yaml`` (``Stream(proportion=...)``); per sample, one document each
  (converted as ``hf``), or fixed-length sequences with ``packed`` (no conversion).

Every export also writes ``manifest.json`` with the implied epochs per group
(``w_g * budget / tokens_available``), so over-repetition is visible before training.

Example::

    files = export_mixture(Mixture.read("mixture.json"), "megatron", "out/megatron",
                           path_template="/data/{group}_text_document")
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from assay import manifest as mf
from assay.errors import AssayError, ConfigError
from selector.export.megatron import group_stem
from selector.export.olmo_core import PATH_TEMPLATE as OLMO_CORE_PATHS
from selector.export.olmo_core import group_folder
from selector.mixture import Mixture

KIND = "mixture-export"
FORMATS = {
    # name: (module with render/check, unit, default path template)
    "megatron": ("selector.mix_formats.megatron", "samples", "data/{group}_text_document"),
    "nemo": ("selector.mix_formats.megatron", "samples", "data/{group}_text_document"),
    "nanotron": ("selector.mix_formats.nanotron", "samples", "data/{group}"),
    "olmo-core": ("selector.mix_formats.olmo_core", "tokens", OLMO_CORE_PATHS),
    "hf": ("selector.mix_formats.hf", "documents", "data/{group}"),
    "mds": ("selector.mix_formats.mds", "documents", "data/{group}"),
}


@dataclass
class ExportRow:
    """One group as a trainer sees it."""

    group: str
    path: str
    """Where the trainer finds the group's data (prefix, folder, glob, dataset)."""
    token_weight: float
    """Share of training tokens (from mixture.json)."""
    weight: float
    """Share in the trainer's own unit (sums to 1 over exported rows)."""
    tokens_available: int
    docs_available: int
    epochs: float | None
    """Passes over the group implied by the budget; None if tokens or budget are unknown."""


def to_unit(mixture: Mixture, unit: str) -> dict[str, float]:
    """Token shares converted to ``unit`` shares: ``tokens``, ``samples`` or ``documents``.

    ``samples`` are fixed-length packed sequences, so their share equals the token share.
    ``documents``: a group of long documents needs fewer draws for the same tokens, so its
    per-example probability is ``w_g / (tokens_g / docs_g)``, renormalised.
    """
    w = {g.name: g.weight for g in mixture.groups if g.weight > 0}
    if unit in ("tokens", "samples"):
        return Mixture.normalised(w)
    if unit != "documents":
        raise ConfigError(f"unknown unit {unit!r}")
    per_doc: dict[str, float] = {}
    for g in mixture.groups:
        if g.weight <= 0:
            continue
        if not g.tokens_available or not g.docs_available:
            raise AssayError(
                f"group {g.name!r} has no token/document counts: cannot convert token "
                "weights to per-document probabilities",
                hint="search from an annotated folder (n_tokens) or use a token-unit format",
            )
        per_doc[g.name] = g.weight * g.docs_available / g.tokens_available
    return Mixture.normalised(per_doc)


def export_rows(
    mixture: Mixture,
    unit: str,
    path_template: str | None,
    budget_tokens: int | None,
    key: Callable[[str], str] = str,
) -> list[ExportRow]:
    """Rows of the groups with weight > 0 (trainers refuse or ignore zero weights);
    ``{group}`` of ``path_template`` is filled with ``key(name)``."""
    converted = to_unit(mixture, unit)
    rows = []
    for g in mixture.groups:
        if g.name not in converted:
            continue
        if path_template is not None:
            path = path_template.format(group=key(g.name))
        elif g.paths:
            path = g.paths[0]
        else:
            raise ConfigError(
                f"group {g.name!r} has no data path",
                hint="pass --path-template, e.g. '/data/{group}_text_document'",
            )
        epochs = None
        if budget_tokens and g.tokens_available:
            epochs = g.weight * budget_tokens / g.tokens_available
        rows.append(
            ExportRow(
                g.name,
                path,
                g.weight,
                converted[g.name],
                g.tokens_available,
                g.docs_available,
                epochs,
            )
        )
    seen: dict[str, str] = {}
    for r in rows:
        if r.path in seen:
            raise ConfigError(
                f"two groups map to the same data path {r.path!r}: {seen[r.path]!r} and "
                f"{r.group!r}",
                hint="put {group} in --path-template, or rename one of the groups",
            )
        seen[r.path] = r.group
    return rows


def fixed_decimals(weights: list[float], places: int = 6) -> list[float]:
    """Round to ``places`` decimals keeping the sum at exactly 1 at that precision.

    Largest-remainder rounding on integer units of 10^-places, so a file that states
    ratios with six decimals states ones that add up (OLMo-core checks the sum), and no
    positive weight rounds to 0 (it gets one unit, taken from the largest).
    """
    unit = 10**places
    raw = [w * unit for w in weights]
    base = [max(1, math.floor(r)) for r in raw]
    left = unit - sum(base)
    order = sorted(range(len(raw)), key=lambda i: -(raw[i] - math.floor(raw[i])))
    i = 0
    while left > 0:
        base[order[i % len(order)]] += 1
        left -= 1
        i += 1
    while left < 0:
        j = max(range(len(base)), key=lambda k: base[k])
        base[j] -= 1
        left += 1
    return [b / unit for b in base]


def export_mixture(
    mixture: Mixture,
    fmt: str,
    out: str | os.PathLike,
    *,
    path_template: str | None = None,
    budget_tokens: int | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``fmt``'s files and ``manifest.json`` into folder ``out``; return the manifest."""
    import importlib

    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    module_name, unit, default_template = FORMATS[fmt]
    options = dict(options or {})
    if fmt == "mds" and options.get("packed"):
        unit = "samples"
    if options.get("root") is not None and fmt != "olmo-core":
        raise ConfigError("--root applies to --format olmo-core only")
    budget = budget_tokens or mixture.budget_tokens
    template = path_template
    used = [g for g in mixture.groups if g.weight > 0]
    key: Callable[[str], str] = str
    if fmt in ("megatron", "nemo"):
        key = group_stem  # the token export's prefix names: one --data-path token each
    if fmt == "olmo-core":
        key = group_folder
        if not all(p.endswith(".npy") for g in used for p in g.paths):
            used = []  # Parquet folders of a selection: not OLMo-core token files
    if template is None and not (used and all(g.paths for g in used)):
        template = default_template
    rows = export_rows(mixture, unit, template, budget, key)
    module = importlib.import_module(module_name)
    files: dict[str, str] = module.render(rows, fmt=fmt, **options)
    module.check(files, fmt=fmt)  # what we write must pass the trainer's own rules
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out / name).write_text(text)
    over = [r.group for r in rows if r.epochs is not None and r.epochs > 1.0]
    manifest = mf.new_manifest(
        KIND,
        format=fmt,
        unit=unit,
        budget_tokens=budget,
        files=sorted(files),
        groups=[asdict(r) for r in rows],
        omitted_zero_weight=[g.name for g in mixture.groups if g.weight <= 0],
        repeated_groups=over,
        mixture={"group_by": mixture.group_by, "method": mixture.method.get("name")},
        options=options,
    )
    mf.write_json_atomic(out / mf.MANIFEST, manifest)
    return manifest


def epochs_table(manifest: dict[str, Any]) -> str:
    """A plain-text table: group, token weight, trainer weight, implied epochs."""
    unit = manifest["unit"]
    lines = [f"{'group':24s} {'w(tokens)':>9s} {'w(' + unit + ')':>12s} {'epochs':>8s}"]
    for r in manifest["groups"]:
        ep = "?" if r["epochs"] is None else f"{r['epochs']:.2f}"
        flag = "  (repeated)" if r["epochs"] is not None and r["epochs"] > 1 else ""
        lines.append(
            f"{r['group'][:24]:24s} {r['token_weight']:9.4f} {r['weight']:10.4f} {ep:>8s}{flag}"
        )
    return "\n".join(lines)
