"""The labels file: what raters are trained and evaluated on.

JSONL, one document per line (``assay label`` writes it; anything else may too)::

    {"id": "wiki-00042",                      # required, unique string
     "text": "Albert Einstein was ...",       # required
     "labels": {"overall_score": 4, "coherence": 5},   # criterion -> number (or null)
     "domain": "education",                   # domain label, or null / absent
     "expected": {"overall_score": 3.71},     # optional: teacher's expected scores
     "group": "wiki-00042",                   # optional: held-out unit (default: id)
     "teacher": {...}, "rubric": {...}, "meta": {...}, "answer": "..."}  # provenance

Every line needs ``labels`` or ``domain`` (or both); a criterion missing on a line (or
``null``) is simply not trained on that line. ``group`` keeps related lines on one side
of a train/test split: a document and its corrupted copies, chunks of one book.
Unknown fields are allowed and ignored.

Criterion scales come from the labels' manifest (``<stem>.manifest.json``, written by
``assay label``: the rubric's scales) when it exists, else from the values seen.
Teacher failures live in ``<stem>.failures.jsonl`` and are not read here.

Also here: the deterministic group split and class-balancing weights.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assay.errors import AssayError, BadRecordError, ConfigError

SPLITS = ("train", "val", "test")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED = ("domain", "scored_fraction", "n_tokens")


@dataclass
class LabelSet:
    """Labels in columns: ``values[i, j]`` is criterion ``criteria[j]`` of document ``i``
    (NaN where absent); ``domains[i]`` is None where absent."""

    ids: list[str]
    texts: list[str]
    criteria: list[str]
    values: np.ndarray
    domains: list[str | None]
    groups: list[str]
    expected: np.ndarray
    """Same shape as ``values``; NaN where the teacher gave no expected score."""
    scales: dict[str, tuple[float, float]]
    integer: dict[str, bool]
    """Whether every value of a criterion is a whole number (classification possible)."""
    source: str = ""
    sha256: str = ""
    rubric: dict[str, Any] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def domain_labels(self) -> list[str]:
        return sorted({d for d in self.domains if d is not None})

    def subset(self, index: np.ndarray) -> LabelSet:
        index = np.asarray(index, dtype=np.int64)
        return LabelSet(
            ids=[self.ids[i] for i in index],
            texts=[self.texts[i] for i in index],
            criteria=list(self.criteria),
            values=self.values[index],
            domains=[self.domains[i] for i in index],
            groups=[self.groups[i] for i in index],
            expected=self.expected[index],
            scales=dict(self.scales),
            integer=dict(self.integer),
            source=self.source,
            sha256=self.sha256,
            rubric=self.rubric,
        )


def read_labels(path: str | os.PathLike) -> LabelSet:
    """Read and check a labels file; a bad line raises naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise AssayError(f"labels file {path} not found")
    ids: list[str] = []
    texts: list[str] = []
    rows: list[dict[str, float]] = []
    exp_rows: list[dict[str, float]] = []
    domains: list[str | None] = []
    groups: list[str] = []
    criteria: dict[str, None] = {}
    seen: dict[str, int] = {}
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            digest.update(raw)
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise BadRecordError(str(path), number, f"not valid JSON ({e})") from None
            id_, text, labels, expected, domain, group = _check(record, str(path), number)
            if id_ in seen:
                raise BadRecordError(
                    str(path), number, f"id {id_!r} already on line {seen[id_]}"
                ) from None
            seen[id_] = number
            ids.append(id_)
            texts.append(text)
            rows.append(labels)
            exp_rows.append(expected)
            domains.append(domain)
            groups.append(group)
            criteria.update(dict.fromkeys(labels))
    if not ids:
        raise AssayError(f"labels file {path} holds no records")
    names = list(criteria)
    values = np.full((len(ids), len(names)), np.nan)
    expected = np.full((len(ids), len(names)), np.nan)
    for i, (row, exp) in enumerate(zip(rows, exp_rows, strict=True)):
        for j, name in enumerate(names):
            values[i, j] = row.get(name, np.nan)
            expected[i, j] = exp.get(name, np.nan)
    manifest = _manifest(path)
    rubric_scales = (manifest or {}).get("rubric", {}).get("scales", {})
    scales, integer = {}, {}
    for j, name in enumerate(names):
        column = values[:, j][~np.isnan(values[:, j])]
        if column.size == 0:
            raise AssayError(f"{path}: criterion {name!r} has no value on any line")
        integer[name] = bool(np.all(column == np.round(column)))
        if name in rubric_scales:
            lo, hi = (float(x) for x in rubric_scales[name])
            if column.min() < lo or column.max() > hi:
                raise AssayError(
                    f"{path}: {name} has values in [{column.min()}, {column.max()}], outside "
                    f"the rubric's scale [{lo}, {hi}]"
                )
        else:
            lo, hi = float(column.min()), float(column.max())
            if lo == hi:
                hi = lo + 1.0  # a constant criterion: any non-empty scale will do
        scales[name] = (lo, hi)
    return LabelSet(
        ids=ids,
        texts=texts,
        criteria=names,
        values=values,
        domains=domains,
        groups=groups,
        expected=expected,
        scales=scales,
        integer=integer,
        source=str(path),
        sha256=digest.hexdigest(),
        rubric=(manifest or {}).get("rubric"),
    )


def _manifest(path: Path) -> dict[str, Any] | None:
    companion = path.with_name(path.name.removesuffix(".jsonl") + ".manifest.json")
    if not companion.is_file():
        return None
    try:
        data = json.loads(companion.read_text())
    except json.JSONDecodeError:
        raise AssayError(f"{companion}: not valid JSON") from None
    return data if data.get("kind") == "labels" else None


def _check(record: Any, path: str, number: int) -> tuple:
    def bad(reason: str) -> BadRecordError:
        return BadRecordError(path, number, reason)

    if not isinstance(record, dict):
        raise bad(f"expected an object, got {type(record).__name__}")
    id_, text = record.get("id"), record.get("text")
    if not isinstance(id_, str) or not id_:
        raise bad("'id' must be a non-empty string")
    if not isinstance(text, str):
        raise bad("'text' must be a string")
    labels = _numbers(record.get("labels"), "labels", bad)
    expected = _numbers(record.get("expected"), "expected", bad)
    domain = record.get("domain")
    if domain is not None and (not isinstance(domain, str) or not domain):
        raise bad(f"'domain' must be a non-empty string or null, got {domain!r}")
    if not labels and domain is None:
        raise bad("no labels and no domain: nothing to learn from this line")
    group = record.get("group", id_)
    if not isinstance(group, str) or not group:
        raise bad("'group' must be a non-empty string")
    return id_, text, labels, expected, domain, group


def _numbers(value: Any, key: str, bad: Any) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad(f"'{key}' must be an object of criterion -> number")
    out = {}
    for name, v in value.items():
        if not _NAME.match(name) or name in RESERVED:
            raise bad(f"'{key}': {name!r} is not usable as a criterion (column) name")
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise bad(f"'{key}.{name}': expected a finite number, got {v!r}")
        out[name] = float(v)
    return out


def write_labels(path: str | os.PathLike, records: list[dict[str, Any]]) -> Path:
    """Write label records as JSONL atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def assign_splits(groups: list[str], val_frac: float, test_frac: float, seed: int) -> np.ndarray:
    """``train``/``val``/``test`` per line, by a hash of (seed, group): every line of a
    group lands on the same side, and a group's side does not depend on the other lines
    (so the split of a file is the split of any file holding the same groups)."""
    if not (0 <= val_frac < 1 and 0 <= test_frac < 1 and val_frac + test_frac < 1):
        raise ConfigError(
            f"--val-frac {val_frac} and --test-frac {test_frac} must be in [0, 1) "
            "and sum to less than 1"
        )
    out = np.empty(len(groups), dtype=object)
    for i, group in enumerate(groups):
        h = hashlib.sha256(f"{seed}:{group}".encode()).digest()
        u = int.from_bytes(h[:8], "big") / 2**64
        out[i] = "test" if u < test_frac else "val" if u < test_frac + val_frac else "train"
    return out


def class_weights(y: np.ndarray, n_classes: int, power: float = 1.0) -> np.ndarray:
    """Loss weight of each class, ``(n / (k * count_c)) ** power`` over the k classes
    present (scikit-learn's "balanced" at ``power=1``; 0 turns balancing off; 0.5 is a
    milder choice for very skewed scores). Absent classes get 1 (they never occur)."""
    y = np.asarray(y, dtype=np.int64)
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.ones(n_classes)
    if present.any():
        weights[present] = (len(y) / (present.sum() * counts[present])) ** power
    return weights
