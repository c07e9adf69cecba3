"""Teacher rubrics: the prompt a teacher LLM is asked, and the answer block it must end with.

A rubric is a YAML file (the built-ins live in ``configs/rubrics/``: ``dataman``,
``prrc``; any other path is read the same way)::

    name: my-rubric            # recorded in every label record
    version: "1"               # bump it when a word of the prompt changes
    system: You are ...        # system message
    prompt: |                  # user message; placeholders below
      ... {text} ... {criteria} ... {domains} ... {answer_format}
    max_chars: 12000           # longer texts keep their head and tail (see cut_text)
    max_tokens: 1024           # generation budget of the teacher
    criteria:                  # one score per criterion, whole numbers within scale
      - {name: clarity, label: Clarity, scale: [1, 5], definition: how clear ...}
    domains:                   # optional: one lettered choice
      label: Domain
      choices: [{key: A, name: medicine, label: Medicine}, ...]

The teacher must finish with the answer block (``{answer_format}``), one line per item::

    Domain: C
    Clarity: 4

:mod:`raters.answers` parses it strictly. ``prompt_sha256`` hashes everything that
changes a request or its parsing, so label files record exactly which prompt made them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assay.errors import ConfigError

ANSWER_FORMAT_VERSION = "1"  # part of the prompt hash: bump if the parser's rules change
PLACEHOLDERS = ("{text}", "{criteria}", "{domains}", "{answer_format}")
CUT_MARK = "\n[...]\n"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KEY = re.compile(r"^[A-Z]$")


@dataclass(frozen=True)
class RubricCriterion:
    """One scored criterion."""

    name: str
    """Field name in label records (``labels.<name>``) and rater columns."""
    label: str
    """How the prompt and the answer block name it (``Overall Score``)."""
    scale: tuple[int, int]
    """Lowest and highest whole-number score."""
    definition: str = ""
    """What a higher score means; shown to the teacher."""


@dataclass(frozen=True)
class DomainChoice:
    key: str
    """The letter the teacher answers (``A``)."""
    name: str
    """The value stored in label records (``medicine``)."""
    label: str
    """Shown to the teacher (``Medicine``)."""


@dataclass(frozen=True)
class Rubric:
    name: str
    version: str
    system: str
    prompt: str
    criteria: tuple[RubricCriterion, ...]
    domains: tuple[DomainChoice, ...] = ()
    domain_label: str = "Domain"
    max_chars: int = 12000
    max_tokens: int = 1024
    description: str = ""
    source: str = ""

    @property
    def prompt_sha256(self) -> str:
        """Hash of everything that shapes a request or the parse of its answer."""
        payload = {
            "system": self.system,
            "prompt": self.prompt,
            "criteria": [vars(c) for c in self.criteria],
            "domains": [vars(d) for d in self.domains],
            "domain_label": self.domain_label,
            "max_chars": self.max_chars,
            "answer_format": ANSWER_FORMAT_VERSION,
        }
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8")
        return hashlib.sha256(blob).hexdigest()

    def describe(self) -> dict[str, Any]:
        """For manifests and label records."""
        return {"name": self.name, "version": self.version, "prompt_sha256": self.prompt_sha256}

    def scales(self) -> dict[str, list[int]]:
        return {c.name: list(c.scale) for c in self.criteria}

    def answer_format(self) -> str:
        lines = []
        if self.domains:
            keys = f"{self.domains[0].key}-{self.domains[-1].key}"
            lines.append(f"{self.domain_label}: <one letter {keys}>")
        lines += [f"{c.label}: <{c.scale[0]}-{c.scale[1]}>" for c in self.criteria]
        return "\n".join(lines)

    def messages(self, text: str) -> list[dict[str, str]]:
        """Chat messages for one document (the text is cut to ``max_chars`` first)."""
        criteria = "\n".join(
            f"- {c.label} ({c.scale[0]}-{c.scale[1]}): {c.definition}".rstrip()
            for c in self.criteria
        )
        domains = "\n".join(f"{d.key}. {d.label}" for d in self.domains)
        body = (
            self.prompt.replace("{criteria}", criteria)
            .replace("{domains}", domains)
            .replace("{answer_format}", self.answer_format())
        )
        # The text goes in last, so braces inside a document are never substituted.
        body = body.replace("{text}", cut_text(text, self.max_chars))
        out = [{"role": "user", "content": body}]
        if self.system:
            out.insert(0, {"role": "system", "content": self.system})
        return out


def cut_text(text: str, max_chars: int) -> str:
    """Keep the head and the tail of a long text (DataMan keeps first + last 947 tokens),
    cut at whitespace, joined by ``[...]``; a short text is returned unchanged."""
    if len(text) <= max_chars:
        return text
    half = max(1, (max_chars - len(CUT_MARK)) // 2)
    head = text[:half]
    space = head.rfind(" ", half // 2)
    head = head[:space] if space > 0 else head
    tail = text[-half:]
    space = tail.find(" ", 0, half // 2)
    tail = tail[space + 1 :] if space >= 0 else tail
    return head + CUT_MARK + tail


def rubric_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "configs" / "rubrics"


def builtin_rubrics() -> dict[str, Path]:
    folder = rubric_dir()
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))} if folder.exists() else {}


def load_rubric(name_or_path: str | os.PathLike) -> Rubric:
    """A built-in rubric by name (``dataman``, ``prrc``) or a rubric YAML file."""
    key = str(name_or_path)
    builtins = builtin_rubrics()
    path = builtins.get(key, Path(key).expanduser())
    if not path.is_file():
        raise ConfigError(
            f"--rubric: {key!r} is neither a built-in rubric nor a file",
            hint=f"built-in: {', '.join(builtins) or 'none'}; or a YAML file (raters/rubrics.py)",
        )
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"rubric {path}: not valid YAML: {e}") from None
    try:
        return rubric_from_dict(data, source=str(path))
    except ConfigError as e:
        raise ConfigError(f"rubric {path}: {e.args[0]}", hint=e.hint) from None


def rubric_from_dict(data: Any, *, source: str = "") -> Rubric:
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping at the top level")
    known = {"name", "version", "description", "system", "prompt", "max_chars", "max_tokens"}
    known |= {"criteria", "domains"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown field(s) {', '.join(unknown)}", hint=f"valid: {sorted(known)}")
    for key in ("name", "version", "prompt"):
        if not isinstance(data.get(key), (str, int)) or not str(data.get(key)).strip():
            raise ConfigError(f"{key}: missing or empty")
    prompt = str(data["prompt"])
    for placeholder in ("{text}", "{answer_format}"):
        if placeholder not in prompt:
            raise ConfigError(
                f"prompt: has no {placeholder} placeholder",
                hint="the prompt must show the text and the answer block the parser expects",
            )
    criteria = _criteria(data.get("criteria"))
    domains, domain_label = _domains(data.get("domains"))
    labels = [c.label.lower() for c in criteria] + ([domain_label.lower()] if domains else [])
    if len(set(labels)) != len(labels):
        raise ConfigError("criteria[].label / domains.label: answer-line labels must be unique")
    limits = {}
    for key, default in (("max_chars", 12000), ("max_tokens", 1024)):
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"{key}: must be an integer > 0, got {value!r}")
        limits[key] = value
    return Rubric(
        name=str(data["name"]),
        version=str(data["version"]),
        system=str(data.get("system") or "").strip(),
        prompt=prompt,
        criteria=criteria,
        domains=domains,
        domain_label=domain_label,
        description=str(data.get("description") or ""),
        source=source,
        **limits,
    )


def _criteria(raw: Any) -> tuple[RubricCriterion, ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError("criteria: expected a non-empty list")
    out, names = [], set()
    for i, c in enumerate(raw):
        where = f"criteria[{i}]"
        if not isinstance(c, dict):
            raise ConfigError(f"{where}: expected a mapping")
        extra = sorted(set(c) - {"name", "label", "scale", "definition"})
        if extra:
            raise ConfigError(f"{where}: unknown field(s) {', '.join(extra)}")
        name = c.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(f"{where}.name: {name!r} is not usable as a column name")
        if name in names or name == "domain":
            raise ConfigError(f"{where}.name: {name!r} is used twice or reserved")
        names.add(name)
        scale = c.get("scale")
        if (
            not isinstance(scale, list)
            or len(scale) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in scale)
            or scale[0] >= scale[1]
            or scale[1] - scale[0] > 10
        ):
            raise ConfigError(
                f"{where}.scale: expected [low, high] whole numbers, low < high, at most "
                f"11 levels, got {scale!r}"
            )
        label = str(c.get("label") or name.replace("_", " ").title())
        if ":" in label or "\n" in label:
            raise ConfigError(f"{where}.label: {label!r} may not contain ':' or a newline")
        out.append(RubricCriterion(name, label, (scale[0], scale[1]), str(c.get("definition", ""))))
    return tuple(out)


def _domains(raw: Any) -> tuple[tuple[DomainChoice, ...], str]:
    if raw is None:
        return (), "Domain"
    if not isinstance(raw, dict) or not isinstance(raw.get("choices"), list):
        raise ConfigError("domains: expected {label: ..., choices: [{key, name, label}, ...]}")
    choices, seen = [], set()
    for i, d in enumerate(raw["choices"]):
        where = f"domains.choices[{i}]"
        if not isinstance(d, dict):
            raise ConfigError(f"{where}: expected a mapping")
        key, name = str(d.get("key", "")), d.get("name")
        if not _KEY.match(key):
            raise ConfigError(f"{where}.key: {key!r} must be one capital letter")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}.name: missing")
        if key in seen or name in seen:
            raise ConfigError(f"{where}: key {key!r} or name {name!r} used twice")
        seen |= {key, name}
        choices.append(DomainChoice(key, name, str(d.get("label") or name)))
    if len(choices) < 2:
        raise ConfigError("domains.choices: need at least two choices")
    return tuple(choices), str(raw.get("label") or "Domain")
