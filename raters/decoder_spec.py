"""The decoder rater spec: a prompt, and an answer of one token per line.

A decoder rater (DataMan's design) answers a fixed template: optionally a domain letter
on the first line, then one whole-number score per line in the listed order::

    {"name": "dataman-schema", "version": "1", "kind": "decoder",
     "model": "smollm2-135m", "format": "hf-causal-lm",
     "prompt": {"system": "...", "user": "...{text}...", "chat_template": true},
     "answer": {"lines": ["domain", "accuracy", ...], "separator": "\\n"},
     "criteria": [{"name": "accuracy", "label": "Accuracy", "scale": [1, 5],
                   "values": [1, 2, 3, 4, 5], "line": 1}, ...],
     "domain": {"labels": ["Medicine", ...], "letters": ["A", ...], "line": 0},
     "max_tokens": 2048, "text_tokens": 1894, "long_doc": "head_tail"}

This is the shape ``assay train-rater --kind decoder`` writes (:mod:`raters.train_decoder`)
and the presets in ``configs/raters/`` use. ``format`` is ``hf-causal-lm`` (a full model
folder) or ``peft-lora`` (an adapter over ``base``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assay.errors import ConfigError

FORMATS = ("hf-causal-lm", "peft-lora")
LONG_DOC = ("head", "head_tail")
CHARS_PER_TOKEN = 10  # pre-cut margin, as for encoder raters (raters.spec)


@dataclass(frozen=True)
class Slot:
    """One answer line: a criterion's score or the domain letter."""

    name: str
    """``domain`` or the criterion's column name."""
    tokens: tuple[str, ...]
    """The valid answer strings (each must be one token): score digits or letters."""
    values: tuple[float, ...] | None
    """Score of each token (criteria); None for the domain."""
    labels: tuple[str, ...] | None = None
    """Domain names, one per letter (domain only)."""
    scale: tuple[float, float] = (0.0, 1.0)


@dataclass(frozen=True)
class DecoderSpec:
    """A decoder rater: which model, what it is asked, how its answer is read."""

    name: str
    """Column prefix (``dataman-schema`` -> ``dataman-schema.accuracy``)."""
    version: str
    """Recorded in every manifest next to the name."""
    prompt: dict[str, Any]
    """``user`` (with ``{text}``), optional ``system``, ``chat_template`` (bool: render
    through the tokenizer's chat template; otherwise ``system + user`` as plain text)."""
    criteria: tuple[dict[str, Any], ...]
    """``{name, label, scale: [lo, hi], values: [...], line}``: one score token per value."""
    domain: dict[str, Any] | None = None
    """``{labels, letters, line}``: the domain line holds one letter per label."""
    answer: dict[str, Any] = field(default_factory=lambda: {"separator": "\n"})
    """``separator`` between answer lines (one token, ``\\n`` by default)."""
    model: str | None = None
    """Model folder or a named model (``smollm2-135m``); ``null`` in a preset of
    published weights (bind with ``--rater NAME=DIR``); ``.`` = the spec's folder."""
    format: str = "hf-causal-lm"
    """``hf-causal-lm`` or ``peft-lora`` (then ``base`` names the base model)."""
    base: str | None = None
    """``peft-lora``: the base model (named model or folder)."""
    max_tokens: int = 2048
    """Prompt + answer tokens at most (the model's context for one document)."""
    text_tokens: int | None = None
    """Text tokens kept at most (DataMan: 1,894 = 947 head + 947 tail); default: what
    ``max_tokens`` leaves beside the prompt and the answer."""
    long_doc: str = "head_tail"
    """``head_tail`` (first and last halves, joined by `` ... ``, as DataMan) or ``head``."""
    max_chars: int | None = None
    """Characters kept before tokenising; default 10 x the text token budget."""
    trust_remote_code: bool = False
    description: str = ""
    kind: str = "decoder"
    base_dir: Path | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        _validate(self)

    # ---- derived -------------------------------------------------------------------

    def slots(self) -> list[Slot]:
        """Answer lines in order."""
        by_line: dict[int, Slot] = {}
        if self.domain is not None:
            d = self.domain
            by_line[int(d.get("line", 0))] = Slot(
                "domain", tuple(d["letters"]), None, tuple(d["labels"])
            )
        for c in self.criteria:
            values = tuple(float(v) for v in c["values"])
            tokens = tuple(_fmt(v) for v in c["values"])
            by_line[int(c["line"])] = Slot(c["name"], tokens, values, scale=tuple(c["scale"]))
        return [by_line[k] for k in sorted(by_line)]

    def model_dir(self) -> Path:
        from raters.spec import _resolve_path

        if self.model is None:
            raise ConfigError(
                f"rater {self.name!r}: model is not set",
                hint=f"bind the weights: --rater {self.name}=/path/to/model_folder",
            )
        return _resolve_path(self.model, self.base_dir)

    def base_model_dir(self) -> Path | None:
        from raters.spec import _resolve_path

        return None if self.base is None else _resolve_path(self.base, self.base_dir)

    # ---- io --------------------------------------------------------------------------

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], *, base_dir: str | os.PathLike | None = None, source: str = ""
    ) -> DecoderSpec:
        known = {f.name for f in dataclasses.fields(cls)} - {"base_dir"}
        extra = sorted(set(data) - known)
        where = f"{source}: " if source else ""
        if extra:
            raise ConfigError(f"{where}unknown field(s) {extra}", hint=f"known: {sorted(known)}")
        for required in ("name", "version", "prompt", "criteria"):
            if required not in data:
                raise ConfigError(f"{where}{required}: required for a decoder rater")
        args = dict(data)
        args["criteria"] = tuple(args["criteria"])
        try:
            return cls(**args, base_dir=Path(base_dir) if base_dir is not None else None)
        except ConfigError as e:
            raise ConfigError(where + str(e.args[0]), hint=e.hint) from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> DecoderSpec:
        path = Path(path)
        if path.is_dir():
            path = path / "rater.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"no rater spec at {path}") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: not valid JSON: {e}") from None
        return cls.from_dict(data, base_dir=path.parent, source=str(path))

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out.pop("base_dir")
        out["criteria"] = list(self.criteria)
        return out

    def with_model(self, model: str | os.PathLike) -> DecoderSpec:
        from raters.spec import _absolute

        return dataclasses.replace(self, model=_absolute(model))


def _fmt(v: Any) -> str:
    f = float(v)
    return str(int(f)) if f.is_integer() else str(v)


def _validate(s: DecoderSpec) -> None:
    from raters.spec import _COLUMN_NAME, _RATER_NAME, RESERVED_COLUMNS

    if not _RATER_NAME.match(s.name):
        raise ConfigError(f"name: {s.name!r} may hold letters, digits, '_' and '-' only")
    if s.kind != "decoder":
        raise ConfigError(f"kind: {s.kind!r}, expected 'decoder'")
    if s.format not in FORMATS:
        raise ConfigError(f"format: {s.format!r} is not one of {FORMATS}")
    if s.format == "peft-lora" and not s.base:
        raise ConfigError("base: a peft-lora rater names its base model")
    if s.long_doc not in LONG_DOC:
        raise ConfigError(f"long_doc: {s.long_doc!r} is not one of {LONG_DOC}")
    user = s.prompt.get("user")
    if not isinstance(user, str) or user.count("{text}") != 1:
        raise ConfigError("prompt.user: a string holding '{text}' exactly once")
    if s.max_tokens < 64:
        raise ConfigError(f"max_tokens: {s.max_tokens} is too small (>= 64)")
    if s.text_tokens is not None and s.text_tokens < 16:
        # Above what max_tokens leaves, the prompt builder caps it (a shorter max_tokens
        # given as an option keeps working).
        raise ConfigError(f"text_tokens: {s.text_tokens} must be >= 16")
    sep = s.answer.get("separator", "\n")
    if not isinstance(sep, str) or not sep:
        raise ConfigError("answer.separator: a non-empty string")
    lines: list[int] = []
    names: set[str] = set()
    for i, c in enumerate(s.criteria):
        where = f"criteria[{i}]"
        for key in ("name", "scale", "values", "line"):
            if key not in c:
                raise ConfigError(f"{where}.{key}: required")
        if not _COLUMN_NAME.match(c["name"]) or c["name"] in RESERVED_COLUMNS:
            raise ConfigError(f"{where}.name: {c['name']!r} is not a usable column name")
        if c["name"] in names:
            raise ConfigError(f"{where}.name: {c['name']!r} repeats")
        names.add(c["name"])
        lo, hi = c["scale"]
        values = [float(v) for v in c["values"]]
        if len(values) < 2 or len(set(values)) != len(values):
            raise ConfigError(f"{where}.values: at least two distinct scores")
        if min(values) < lo or max(values) > hi:
            raise ConfigError(f"{where}.values: {values} leave the scale [{lo}, {hi}]")
        lines.append(int(c["line"]))
    if s.domain is not None:
        d = s.domain
        labels, letters = d.get("labels") or [], d.get("letters") or []
        if len(labels) < 2 or len(labels) != len(letters) or len(set(letters)) != len(letters):
            raise ConfigError("domain: labels and letters, one distinct letter per label (>= 2)")
        lines.append(int(d.get("line", 0)))
    if not lines:
        raise ConfigError("criteria: a decoder rater answers at least one line")
    if sorted(lines) != list(range(len(lines))):
        raise ConfigError(f"criteria[].line / domain.line: {sorted(lines)} must be 0..n-1")
