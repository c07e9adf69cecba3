"""Parsing and validation of rater specs: every error names the field it is about."""

from __future__ import annotations

import dataclasses
import itertools
import math
from pathlib import Path
from typing import Any

from assay.errors import ConfigError
from raters.spec import (
    _COLUMN_NAME,
    _RATER_NAME,
    CRITERION_TYPES,
    FORMATS,
    KINDS,
    LONG_DOC_POLICIES,
    RESERVED_COLUMNS,
    Criterion,
    DomainHead,
    RaterSpec,
)


def spec_from_dict(data: Any, base_dir: Path | None) -> RaterSpec:
    data = _mapping(data, "spec", RaterSpec)
    if "criteria" in data:
        crits = data["criteria"]
        if not isinstance(crits, list):
            raise ConfigError(f"criteria: expected a list, got {type(crits).__name__}")
        data["criteria"] = tuple(_criterion(c, f"criteria[{i}]") for i, c in enumerate(crits))
    if data.get("domain") is not None:
        dom = _mapping(data["domain"], "domain", DomainHead)
        data["domain"] = DomainHead(
            logits=_pair(dom.get("logits"), "domain.logits", int),
            labels=_str_tuple(dom.get("labels"), "domain.labels"),
        )
    if isinstance(data.get("version"), int) and not isinstance(data["version"], bool):
        data["version"] = str(data["version"])
    return RaterSpec(**data, base_dir=base_dir)


def _mapping(data: Any, where: str, cls: type) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected an object, got {type(data).__name__}")
    known = [f.name for f in dataclasses.fields(cls) if f.name != "base_dir"]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(
            f"{where}: unknown field(s) {', '.join(unknown)}", hint=f"valid: {', '.join(known)}"
        )
    required = [
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    for name in required:
        if name not in data:
            prefix = "" if where == "spec" else f"{where}."
            raise ConfigError(f"{prefix}{name}: missing (required)")
    return dict(data)


def _criterion(data: Any, where: str) -> Criterion:
    data = _mapping(data, where, Criterion)
    values = data.get("values")
    if isinstance(values, dict):
        values = {str(k): _number(v, f"{where}.values[{k!r}]") for k, v in values.items()}
    elif values is not None:
        if not isinstance(values, list):
            raise ConfigError(f"{where}.values: expected a list or an object")
        values = tuple(_number(v, f"{where}.values[{i}]") for i, v in enumerate(values))
    return Criterion(
        name=data["name"],
        type=data["type"],
        logits=_pair(data["logits"], f"{where}.logits", int),
        scale=_pair(data["scale"], f"{where}.scale", float),
        values=values,
        labels=_str_tuple(data.get("labels"), f"{where}.labels"),
    )


def _number(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ConfigError(f"{where}: expected a finite number, got {v!r}")
    return float(v)


def _pair(v: Any, where: str, kind: type) -> tuple[Any, Any]:
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        raise ConfigError(f"{where}: expected [start, end] (two numbers), got {v!r}")
    if kind is int:
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
            raise ConfigError(f"{where}: expected two integers, got {list(v)}")
        return int(v[0]), int(v[1])
    return _number(v[0], where), _number(v[1], where)


def _str_tuple(v: Any, where: str) -> tuple[str, ...] | None:
    if v is None:
        return None
    if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) and x for x in v):
        raise ConfigError(f"{where}: expected a list of non-empty strings, got {v!r}")
    if len(set(v)) != len(v):
        raise ConfigError(f"{where}: labels must be unique, got {list(v)}")
    return tuple(v)


def _choice(value: Any, where: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(allowed)}")


def _positive_int(value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{where}: must be an integer > 0, got {value!r}")


def validate_spec(spec: RaterSpec) -> None:
    if not isinstance(spec.name, str) or not _RATER_NAME.match(spec.name):
        raise ConfigError(
            f"name: {spec.name!r} is not usable as a column prefix",
            hint="use letters, digits, '_' and '-' (no dots), e.g. fineweb-edu",
        )
    if not isinstance(spec.version, str) or not spec.version:
        raise ConfigError(f"version: must be a non-empty string, got {spec.version!r}")
    if spec.kind == "decoder":
        raise ConfigError(
            "kind: 'decoder': this is a decoder rater, not an encoder spec",
            hint="load it with raters.registry.load_spec (or raters.decoder_spec.DecoderSpec)",
        )
    _choice(spec.kind, "kind", KINDS)
    _choice(spec.format, "format", FORMATS)
    _choice(spec.long_doc, "long_doc", LONG_DOC_POLICIES)
    for attr in ("model", "backbone"):
        value = getattr(spec, attr)
        if value is not None and (not isinstance(value, str) or not value):
            raise ConfigError(f"{attr}: expected a folder path or a model name, got {value!r}")
    if spec.format == "assay-heads" and spec.backbone is None:
        raise ConfigError(
            "backbone: the assay-heads format needs the backbone the heads read",
            hint='e.g. "backbone": "all-minilm-l6-v2" (a named model) or a folder',
        )
    if not isinstance(spec.trust_remote_code, bool):
        raise ConfigError(f"trust_remote_code: expected true/false, got {spec.trust_remote_code!r}")
    if not isinstance(spec.description, str):
        raise ConfigError("description: expected a string")
    _positive_int(spec.max_tokens, "max_tokens")
    _positive_int(spec.max_chunks, "max_chunks")
    if spec.max_tokens < 8:
        raise ConfigError(f"max_tokens: {spec.max_tokens} leaves no room for text (use >= 8)")
    if spec.max_chars is not None:
        _positive_int(spec.max_chars, "max_chars")
    if not isinstance(spec.criteria, tuple):
        raise ConfigError("criteria: expected a list")
    if not spec.criteria and spec.domain is None:
        raise ConfigError("criteria: empty and no domain head; the rater would output nothing")
    seen: set[str] = set()
    slices: list[tuple[int, int, str]] = []
    for i, c in enumerate(spec.criteria):
        where = f"criteria[{i}]"
        _validate_criterion(c, where)
        if c.name in seen:
            raise ConfigError(f"{where}.name: {c.name!r} is used twice")
        seen.add(c.name)
        slices.append((*c.logits, where))
    if spec.domain is not None:
        _check_slice(spec.domain.logits, "domain.logits")
        n = spec.domain.logits[1] - spec.domain.logits[0]
        if n < 2:
            raise ConfigError(f"domain.logits: a domain head needs >= 2 outputs, got {n}")
        if spec.domain.labels is not None and len(spec.domain.labels) != n:
            raise ConfigError(
                f"domain.labels: {len(spec.domain.labels)} labels for {n} logits "
                f"{list(spec.domain.logits)}"
            )
        slices.append((*spec.domain.logits, "domain"))
    slices.sort()
    for (s0, e0, w0), (s1, e1, w1) in itertools.pairwise(slices):
        if s1 < e0:
            raise ConfigError(
                f"{w1}.logits: [{s1}, {e1}) overlaps {w0}.logits [{s0}, {e0})",
                hint="each head reads its own slice of the output vector",
            )


def _check_slice(logits: tuple[int, int], where: str) -> None:
    start, end = logits
    if not (0 <= start < end):
        raise ConfigError(
            f"{where}: {list(logits)} is not a slice [start, end) with 0 <= start < end"
        )


def _validate_criterion(c: Criterion, where: str) -> None:
    if not isinstance(c.name, str) or not _COLUMN_NAME.match(c.name):
        raise ConfigError(
            f"{where}.name: {c.name!r} is not usable as a column name",
            hint="use letters, digits and '_' (no dots or spaces), e.g. educational_value",
        )
    if c.name in RESERVED_COLUMNS:
        raise ConfigError(f"{where}.name: {c.name!r} is reserved for the rater's own columns")
    _choice(c.type, f"{where}.type", CRITERION_TYPES)
    _check_slice(c.logits, f"{where}.logits")
    lo, hi = c.scale
    if not lo < hi:
        raise ConfigError(f"{where}.scale: [{lo}, {hi}] needs min < max")
    n = c.logits[1] - c.logits[0]
    if c.type == "regression":
        if n != 1:
            raise ConfigError(f"{where}.logits: a regression criterion reads 1 logit, got {n}")
        if c.values is not None or c.labels is not None:
            raise ConfigError(f"{where}: values/labels apply to classification criteria only")
        return
    if n < 2:
        raise ConfigError(f"{where}.logits: a classification criterion needs >= 2 classes")
    if c.labels is not None and len(c.labels) != n:
        raise ConfigError(f"{where}.labels: {len(c.labels)} labels for {n} classes")
    if c.values is None:
        return
    if isinstance(c.values, dict):
        if len(c.values) != n:
            raise ConfigError(f"{where}.values: {len(c.values)} values for {n} classes")
        if c.labels is not None and set(c.values) != set(c.labels):
            raise ConfigError(f"{where}.values: keys must be the labels {list(c.labels)}")
        vals = list(c.values.values())
    else:
        if len(c.values) != n:
            raise ConfigError(f"{where}.values: {len(c.values)} values for {n} classes")
        vals = list(c.values)
    if any(v < lo or v > hi for v in vals):
        raise ConfigError(f"{where}.values: {vals} must lie within scale [{lo}, {hi}]")
