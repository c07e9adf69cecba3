"""OLMo-core ``SourceMixtureList`` YAML (``SourceMixtureDatasetConfig``).

Rules (``src/olmo_core/data/source_mixture.py``): ``sources`` is a list of
``{source_name, target_ratio, paths, max_repetition_ratio, max_source_fraction}``;
``target_ratio`` in (0, 1] and all summing to 1.0; ratios are of *tokens*;
``max_repetition_ratio`` >= 1 (how many times a source may be read);
``max_source_fraction`` in (0, 1]. A source the budget reads more than once needs a
``max_repetition_ratio`` at least its implied epochs, or OLMo-core refuses the mix
(``int(requested_tokens * target_ratio)`` must not exceed ``available tokens *
max_repetition_ratio``); we write the implied epochs at the ratio as written (six
decimals), rounded up to 0.01 (1.0 when the budget is unknown).

``paths`` are ``data/<group>/*.npy`` (:data:`selector.export.olmo_core.PATH_TEMPLATE`),
relative to the folder ``assay export --format olmo-core`` wrote, which OLMo-core resolves
against its working directory; option ``root`` (``assay mix export --root``) writes them
absolute under that folder (or under a URL such as ``s3://bucket/prefix``). OLMo-core
expands the ``*`` itself (``SourceMixtureConfig.resolved_paths``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from assay.errors import AssayError
from selector.mix_formats._common import check_weights


def rooted(path: str, root: str | None) -> str:
    """``path`` under ``root`` (absolute, or a URL), or as given without a root."""
    if root is None or "://" in path or Path(path).is_absolute():
        return path
    if "://" in root:
        return root.rstrip("/") + "/" + path
    return str(Path(root).expanduser().resolve() / path)


def render(rows: list[Any], *, root: str | None = None, **_: Any) -> dict[str, str]:
    from selector.mix_export import fixed_decimals

    sources = []
    for ratio, r in zip(fixed_decimals([r.weight for r in rows]), rows, strict=True):
        rep = 1.0
        if r.epochs is not None:
            epochs = r.epochs * ratio / r.weight  # the ratio OLMo-core will read
            rep = max(1.0, math.ceil(round(epochs * 100, 9)) / 100)
        sources.append(
            {
                "source_name": r.group,
                "target_ratio": ratio,
                "paths": [rooted(r.path, root)],
                "max_repetition_ratio": rep,
                "max_source_fraction": 1.0,
            }
        )
    return {"source_mixture.yaml": yaml.safe_dump({"sources": sources}, sort_keys=False)}


def check(files: dict[str, str], **_: Any) -> None:
    doc = yaml.safe_load(files["source_mixture.yaml"])
    sources = doc.get("sources") if isinstance(doc, dict) else None
    if not isinstance(sources, list) or not sources:
        raise AssayError("source_mixture.yaml: 'sources' must be a non-empty list")
    need = {"source_name", "target_ratio", "paths", "max_repetition_ratio"}
    names = set()
    for s in sources:
        missing = need - set(s)
        if missing:
            raise AssayError(f"source_mixture.yaml: a source lacks {sorted(missing)}")
        if s["source_name"] in names:
            raise AssayError(f"source_mixture.yaml: source {s['source_name']!r} repeats")
        names.add(s["source_name"])
        if not isinstance(s["paths"], list) or not s["paths"]:
            raise AssayError(f"source {s['source_name']!r}: paths must be a non-empty list")
        if not s["max_repetition_ratio"] >= 1:
            raise AssayError(f"source {s['source_name']!r}: max_repetition_ratio must be >= 1")
        if not 0 < s.get("max_source_fraction", 1.0) <= 1:
            raise AssayError(f"source {s['source_name']!r}: max_source_fraction not in (0, 1]")
    check_weights([s["target_ratio"] for s in sources], "source_mixture.yaml target_ratio")
