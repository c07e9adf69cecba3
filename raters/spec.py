"""The rater spec: what a rater model outputs and how to read it, as typed dataclasses.

A spec lives in ``rater.json`` beside the model files, or as a preset in
``configs/raters/`` with ``"model": null`` that binds to a local folder through
:meth:`RaterSpec.with_model`. Example (one model, three heads, one forward pass)::

    {
      "name": "edu-minilm", "version": "1", "kind": "encoder",
      "model": ".", "format": "hf-sequence-classification",
      "criteria": [
        {"name": "educational_value", "type": "regression", "logits": [0, 1], "scale": [0, 5]},
        {"name": "readability", "type": "classification", "logits": [1, 7], "scale": [0, 5]}
      ],
      "domain": {"labels": ["code", "legal", "news", "prose"], "logits": [7, 11]},
      "max_tokens": 512, "long_doc": "head"
    }

Everything that can be checked without the model is checked when the spec is built;
:meth:`RaterSpec.check_model` checks the rest (slices against ``num_labels``, labels
against the model's ``id2label``) once the model's config is known. Every error names
the field, e.g. ``rater.json: criteria[1].logits: [3, 2] is not a slice [start, end)``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assay.errors import ConfigError

KINDS = ("encoder",)
FORMATS = ("hf-sequence-classification", "nemo-deberta", "assay-heads")
LONG_DOC_POLICIES = ("head", "head_tail", "chunks")
CRITERION_TYPES = ("regression", "classification")
# Output columns that a criterion may not shadow.
RESERVED_COLUMNS = ("domain", "scored_fraction", "n_tokens")
# A first guess at characters per token, used to derive the pre-cut (max_chars): English
# prose is ~4-5 chars/token under BERT-like vocabularies, so 10 leaves a wide margin.
CHARS_PER_TOKEN = 10

_RATER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_COLUMN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_GENERIC_LABEL = re.compile(r"^LABEL_\d+$")


@dataclass(frozen=True)
class Criterion:
    """One scored criterion, read from a slice of the model's output vector."""

    name: str
    """Column name (``<rater>.<name>``): letters, digits and ``_``; unique in the spec."""
    type: str
    """``regression`` (one logit, the value itself) or ``classification`` (softmax over
    the slice; the column holds the expected score sum_k p(k) * values[k])."""
    logits: tuple[int, int]
    """``[start, end)`` slice of the model's output vector; regression needs width 1."""
    scale: tuple[float, float]
    """``[min, max]`` of the score; regression values are clipped to it."""
    values: tuple[float, ...] | dict[str, float] | None = None
    """Classification only: the score of each class, in logit order, or keyed by class
    label (labels then come from the model's ``id2label`` unless ``labels`` is given).
    Default: evenly spaced over ``scale`` (6 classes over [0, 5] -> 0, 1, ..., 5)."""
    labels: tuple[str, ...] | None = None
    """Classification only: class names in logit order. When known (given here, or read
    from the model because ``values`` is keyed by label) the rater also outputs
    ``<name>.label``, the most probable class."""


@dataclass(frozen=True)
class DomainHead:
    """A domain classifier head: softmax over a slice, reported as label + probability."""

    logits: tuple[int, int]
    """``[start, end)`` slice of the model's output vector."""
    labels: tuple[str, ...] | None = None
    """Domain names in logit order; ``null`` reads them from the model's ``id2label``."""


@dataclass(frozen=True)
class RaterSpec:
    """A rater: which model, how to read its outputs, how to cut long documents."""

    name: str
    """Column prefix (``fineweb-edu`` -> ``fineweb-edu.educational_value``); letters,
    digits, ``_`` and ``-``."""
    version: str
    """Recorded in every manifest next to the name; bump it when outputs change."""
    kind: str = "encoder"
    """``encoder`` (an encoder with heads). Decoder raters have their own spec,
    :class:`raters.decoder_spec.DecoderSpec`."""
    model: str | None = None
    """Model folder, or a named model of ``raters.hub`` (``all-minilm-l6-v2``). Relative
    paths resolve against the folder of the spec file. ``null`` in presets: bind one with
    :meth:`with_model`; in a ``rater.json`` it means the folder the file is in."""
    format: str = "hf-sequence-classification"
    """``hf-sequence-classification``: ``AutoModelForSequenceClassification``.
    ``nemo-deberta``: NeMo Curator's layout, an ``AutoModel`` backbone (weights
    ``model.*``) + dropout + linear ``fc`` over the first token, ``config.json`` with
    ``base_model``, ``fc_dropout``, ``id2label``. ``assay-heads``: what
    ``assay train-rater`` writes (:mod:`raters.heads`): ``backbone`` (an ``AutoModel``) +
    pooling + ``heads.safetensors`` in the ``model`` folder."""
    criteria: tuple[Criterion, ...] = ()
    """Scored criteria; may be empty when there is a ``domain`` head."""
    domain: DomainHead | None = None
    """Optional domain head (columns ``domain`` and ``domain.prob``)."""
    max_tokens: int = 512
    """Tokens per window, special tokens included."""
    long_doc: str = "head"
    """Long documents: ``head`` (first window), ``head_tail`` (first half + last half of
    a window) or ``chunks`` (consecutive windows, length-weighted mean)."""
    max_chunks: int = 8
    """``chunks`` only: windows read per document at most."""
    max_chars: int | None = None
    """Characters kept before tokenising (cut at a whitespace); ``null`` derives it
    from ``max_tokens`` (x 10 chars/token, x ``max_chunks`` for chunks), so a
    775k-character text is never tokenised whole. Counted in ``scored_fraction``."""
    trust_remote_code: bool = False
    """Let transformers run code shipped with the model. Off unless you trust it."""
    backbone: str | None = None
    """``nemo-deberta``: folder (or named model) with the backbone's ``config.json``,
    when ``config.json``'s ``base_model`` is not a local folder. ``assay-heads``
    (required): the backbone the heads read, a named model (``all-minilm-l6-v2``) or a
    folder, relative to the spec file's folder."""
    description: str = ""
    """Free text: where the model comes from, decisions made reading its outputs."""
    base_dir: Path | None = field(default=None, compare=False, repr=False)
    """Folder that relative ``model``/``backbone`` paths resolve against (not saved)."""

    def __post_init__(self) -> None:
        from raters.spec_checks import validate_spec  # the checks import this module

        validate_spec(self)

    # ---- loading and saving ---------------------------------------------------------

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], *, base_dir: str | os.PathLike | None = None, source: str = ""
    ) -> RaterSpec:
        """Build a spec from parsed JSON; errors are prefixed with ``source``."""
        prefix = f"{source}: " if source else ""
        from raters.spec_checks import spec_from_dict

        try:
            return spec_from_dict(data, Path(base_dir) if base_dir is not None else None)
        except ConfigError as e:
            raise ConfigError(prefix + str(e.args[0]), hint=e.hint) from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> RaterSpec:
        """Read a ``rater.json`` (or a folder holding one, or a preset file)."""
        path = Path(path)
        if path.is_dir():
            path = path / "rater.json"
        if not path.is_file():
            raise ConfigError(f"no rater spec at {path}", hint="a rater folder holds rater.json")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: not valid JSON: {e}") from None
        spec = cls.from_dict(data, base_dir=path.parent, source=str(path))
        if spec.model is None and path.name == "rater.json":
            # rater.json beside the model files: the folder itself is the model.
            spec = dataclasses.replace(spec, model=".")
        return spec

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict; ``from_dict(to_dict())`` gives an equal spec."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "base_dir":
                continue
            out[f.name] = _jsonable(getattr(self, f.name))
        return out

    def save(self, path: str | os.PathLike) -> Path:
        """Write the spec as JSON (into ``path/rater.json`` when ``path`` is a folder)."""
        path = Path(path)
        if path.is_dir():
            path = path / "rater.json"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        os.replace(tmp, path)
        return path

    def with_model(self, model: str | os.PathLike, *, backbone: str | None = None) -> RaterSpec:
        """A copy bound to a model (a local folder or a named model), e.g. for a preset."""
        changes: dict[str, Any] = {"model": _absolute(model)}
        if backbone is not None:
            changes["backbone"] = _absolute(backbone)
        return dataclasses.replace(self, **changes)

    # ---- derived values ---------------------------------------------------------------

    @property
    def chars_limit(self) -> int:
        """``max_chars``, or the default derived from ``max_tokens`` and the policy."""
        if self.max_chars is not None:
            return self.max_chars
        windows = self.max_chunks if self.long_doc == "chunks" else 1
        return CHARS_PER_TOKEN * self.max_tokens * windows

    def model_dir(self) -> Path:
        """The local model folder (named models resolved by ``raters.hub``)."""
        if self.model is None:
            raise ConfigError(
                f"rater {self.name!r}: model is not set",
                hint="a preset binds to a local folder: RaterSpec.with_model(path) "
                "(CLI: --rater NAME=/path/to/model)",
            )
        return _resolve_path(self.model, self.base_dir)

    def backbone_dir(self) -> Path | None:
        return None if self.backbone is None else _resolve_path(self.backbone, self.base_dir)

    def check_model(self, num_labels: int, id2label: dict[int, str] | None = None) -> None:
        """Check the spec against the model: slices in range, labels as the model names
        them, ``values`` keys known. Raises :class:`ConfigError` naming the field."""
        heads = [(f"criteria[{i}]", c.logits) for i, c in enumerate(self.criteria)]
        if self.domain is not None:
            heads.append(("domain", self.domain.logits))
        for where, (start, end) in heads:
            if end > num_labels:
                raise ConfigError(
                    f"rater {self.name!r}: {where}.logits: [{start}, {end}) is out of range "
                    f"for a model with num_labels={num_labels}",
                    hint=f"slices must lie within [0, {num_labels})",
                )
        for i, c in enumerate(self.criteria):
            if c.type == "classification":
                criterion_labels(self, i, id2label)
        if self.domain is not None:
            domain_labels(self, id2label)


def model_label_names(id2label: dict[int, str] | None, start: int, end: int) -> list[str] | None:
    """The model's names for outputs ``start..end-1``; None if it has only LABEL_k."""
    if not id2label:
        return None
    names = [str(id2label.get(k, f"LABEL_{k}")) for k in range(start, end)]
    return None if all(_GENERIC_LABEL.match(n) for n in names) else names


def criterion_labels(
    spec: RaterSpec, index: int, id2label: dict[int, str] | None
) -> list[str] | None:
    """Class names of a classification criterion, checked against the model."""
    c = spec.criteria[index]
    where = f"rater {spec.name!r}: criteria[{index}]"
    named = model_label_names(id2label, *c.logits)
    labels = list(c.labels) if c.labels is not None else None
    if labels is not None and named is not None and labels != named:
        raise ConfigError(
            f"{where}.labels: {labels} differ from the model's id2label {named}",
            hint="list the labels in the model's order (config.json id2label)",
        )
    if labels is None and isinstance(c.values, dict):
        if named is None:
            raise ConfigError(
                f"{where}.values: keyed by label, but the model names no labels",
                hint="give criteria[].labels in logit order, or values as a list",
            )
        labels = named
    if isinstance(c.values, dict) and labels is not None and set(c.values) != set(labels):
        raise ConfigError(
            f"{where}.values: keys {sorted(c.values)} do not match the labels {labels}",
            hint="give one value per class label",
        )
    return labels


def domain_labels(spec: RaterSpec, id2label: dict[int, str] | None) -> list[str]:
    """Domain names in logit order: the spec's, checked against the model's, or the model's."""
    assert spec.domain is not None
    start, end = spec.domain.logits
    named = model_label_names(id2label, start, end)
    if spec.domain.labels is None:
        if named is not None:
            return named
        return [str((id2label or {}).get(k, f"LABEL_{k}")) for k in range(start, end)]
    labels = list(spec.domain.labels)
    if named is not None and labels != named:
        raise ConfigError(
            f"rater {spec.name!r}: domain.labels differ from the model's id2label: "
            f"spec {labels}, model {named}",
            hint="list the labels in the model's order, or set domain.labels to null",
        )
    return labels


def class_values(c: Criterion, labels: list[str] | None) -> list[float]:
    """Score of each class in logit order (evenly spaced over the scale by default)."""
    n = c.logits[1] - c.logits[0]
    if c.values is None:
        lo, hi = c.scale
        return [lo + k * (hi - lo) / (n - 1) for k in range(n)]
    if isinstance(c.values, dict):
        assert labels is not None, "values keyed by label need labels"
        return [c.values[label] for label in labels]
    return list(c.values)


def _resolve_path(value: str, base_dir: Path | None) -> Path:
    from raters.hub import NAMED, resolve_model

    if value in NAMED:
        return resolve_model(value)
    path = Path(value).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return resolve_model(path)


def _absolute(value: str | os.PathLike) -> str:
    """A path given by the user resolves against the working directory, not the preset's."""
    from raters.hub import NAMED

    value = str(value)
    return value if value in NAMED else str(Path(value).expanduser().resolve())


def _jsonable(v: Any) -> Any:
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: _jsonable(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    return v
