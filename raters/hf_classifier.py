"""Any Hugging Face sequence classifier as a rater, read from its own ``config.json``.

``--rater hf-classifier=DIR`` (columns ``hf-classifier.*``) or ``--rater NAME=DIR``
(columns ``NAME.*``) takes a folder that ``AutoModelForSequenceClassification`` loads
(``config.json`` with a ``*ForSequenceClassification`` architecture, weights, a fast
tokenizer) and needs no ``rater.json``: what the outputs mean comes from the config, as
transformers itself reads it (``problem_type``; when absent, regression for one output
and single-label classification for more):

- ``regression``: one float column per output, the raw value: ``score`` for a single
  output with a generic name (``LABEL_0``), else the output's ``id2label`` name.
- ``single_label_classification``: a softmax. ``label`` (the most probable ``id2label``
  name), ``label.prob``, and ``prob.<label>`` per class; ``expected`` (sum_k p(k) * k)
  too when every label is a number (ordinal scales such as ``"0"`` .. ``"5"``).
- ``multi_label_classification``: an independent sigmoid per output: ``prob.<label>``
  per label and ``labels``, the labels with p >= 0.5 joined by commas (``""`` if none).

Always ``scored_fraction`` and ``n_tokens``, as every encoder rater. Labels become
column names with characters other than letters, digits and ``_`` replaced by ``_``;
the manifest records which label each column holds. Everything else is
:class:`raters.encoder.EncoderRater`: length-sorted batches under a token budget, the
long-document policies (``-O NAME.long_doc=chunks``), ``--dtype``, ``--backend vllm``.
Options: ``max_tokens`` (default: 512, or the model's positions when fewer),
``long_doc``, ``max_chunks``, ``max_chars``, ``trust_remote_code``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assay.errors import AssayError, ConfigError
from raters.base import Columns
from raters.encoder import EncoderRater
from raters.encoder_heads import Head
from raters.spec import _COLUMN_NAME, _RATER_NAME, Criterion, DomainHead, RaterSpec

NAME = "hf-classifier"
PROBLEMS = ("regression", "single_label_classification", "multi_label_classification")
MULTI_LABEL_THRESHOLD = 0.5
_GENERIC = re.compile(r"^LABEL_\d+$")
# Regression values are passed through as the model gives them; the spec's scale only
# clips, so it spans every float32.
_NO_CLIP = (-float(np.finfo(np.float32).max), float(np.finfo(np.float32).max))


def is_sequence_classifier(folder: Path) -> bool:
    """Whether ``folder`` holds a transformers ``*ForSequenceClassification`` checkpoint."""
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return False
    archs = config.get("architectures") if isinstance(config, dict) else None
    return bool(archs) and any(str(a).endswith("ForSequenceClassification") for a in archs)


def read_head_config(folder: Path) -> tuple[str, list[str]]:
    """``(problem_type, labels in output order)`` from ``folder/config.json``."""
    path = folder / "config.json"
    if not path.is_file():
        raise ConfigError(
            f"--rater {NAME}: {folder} has no config.json",
            hint="give the folder a transformers sequence classifier was saved to",
        )
    try:
        config = json.loads(path.read_text())
    except ValueError as e:
        raise ConfigError(f"{path}: not valid JSON ({e})") from None
    archs = config.get("architectures") or []
    if archs and not any(str(a).endswith("ForSequenceClassification") for a in archs):
        raise ConfigError(
            f"{folder} holds a {', '.join(map(str, archs))}, not a sequence classifier",
            hint="hf-classifier reads *ForSequenceClassification checkpoints; describe other "
            "heads in a rater.json beside the model",
        )
    id2label = config.get("id2label") or {}
    n = len(id2label) or int(config.get("num_labels", 2))
    try:
        labels = [str(id2label.get(str(k), id2label.get(k, f"LABEL_{k}"))) for k in range(n)]
    except AttributeError:
        raise ConfigError(f"{path}: id2label must be a mapping, got {id2label!r}") from None
    problem = config.get("problem_type") or (
        "regression" if n == 1 else "single_label_classification"
    )
    if problem not in PROBLEMS:
        raise ConfigError(
            f"{path}: problem_type {problem!r} is not one of {', '.join(PROBLEMS)}",
        )
    return problem, labels


def column_names(labels: Sequence[str], fallback: str) -> list[str]:
    """One column-safe name per label (``fallback_k`` for generic ``LABEL_k``)."""
    names = []
    for k, label in enumerate(labels):
        name = re.sub(r"[^A-Za-z0-9_]+", "_", label).strip("_")
        names.append(f"{fallback}_{k}" if _GENERIC.match(label) or not name else name)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(
            f"labels {list(labels)} give the same column name(s) {dupes}",
            hint="give the model distinct id2label names",
        )
    return names


def _spec(
    folder: Path, name: str, problem: str, columns: list[str], options: dict[str, Any]
) -> RaterSpec:
    """A spec that loads the checkpoint and passes the encoder's checks; the heads that
    read its outputs are :class:`HFClassifierRater`'s own."""
    n = len(columns)
    criteria: tuple[Criterion, ...] = ()
    domain = None
    if problem == "regression":
        names = ["score"] if columns == ["score_0"] else columns
        names = [c if _COLUMN_NAME.match(c) else f"score_{k}" for k, c in enumerate(names)]
        criteria = tuple(
            Criterion(c, "regression", (k, k + 1), _NO_CLIP) for k, c in enumerate(names)
        )
    elif n >= 2:
        domain = DomainHead((0, n))
    else:  # a one-output multi-label model: the check only needs a valid slice
        criteria = (Criterion("prob", "regression", (0, 1), _NO_CLIP),)
    if "max_tokens" not in options:
        options["max_tokens"] = _default_max_tokens(folder)
    try:
        return RaterSpec(
            name=name,
            version="1",
            model=str(folder.resolve()),
            format="hf-sequence-classification",
            criteria=criteria,
            domain=domain,
            description=f"built from {folder}/config.json by raters.hf_classifier "
            f"(problem_type {problem}); columns as that module describes",
            **options,
        )
    except TypeError as e:
        raise ConfigError(f"--rater {name}: bad option ({e})") from None


def _default_max_tokens(folder: Path) -> int:
    config = json.loads((folder / "config.json").read_text())
    limit = config.get("max_position_embeddings")
    relative = config.get("position_biased_input", True) is False
    return 512 if not isinstance(limit, int) or relative else max(8, min(512, limit))


class HFClassifierRater(EncoderRater):
    """An ``*ForSequenceClassification`` checkpoint read by its ``problem_type``."""

    problem: str = "single_label_classification"
    labels: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    values: np.ndarray | None = None  # single-label: the number each label names

    @classmethod
    def from_folder(cls, folder: str | Path, name: str = NAME, **options: Any) -> HFClassifierRater:
        """Load ``folder``; ``options``: spec fields (``max_tokens``, ``long_doc``,
        ``max_chunks``, ``max_chars``, ``trust_remote_code``) and engine options
        (``device``, ``dtype``, ``backend``, ``batch_tokens``, ``max_batch_size``)."""
        folder = Path(folder).expanduser()
        if not isinstance(name, str) or not _RATER_NAME.match(name):
            raise ConfigError(f"--rater {name}=...: {name!r} is not a usable rater name")
        problem, labels = read_head_config(folder)
        columns = column_names(labels, "score" if problem == "regression" else "label")
        spec_keys = ("max_tokens", "long_doc", "max_chunks", "max_chars", "trust_remote_code")
        spec_options = {k: options.pop(k) for k in spec_keys if k in options}
        spec = _spec(folder, name, problem, columns, spec_options)
        try:
            rater = cls.from_spec(spec, **options)
        except TypeError as e:
            raise ConfigError(f"--rater {name}: bad option ({e})") from None
        rater.problem, rater.labels = problem, tuple(labels)
        if problem == "regression":
            rater.columns = tuple(c.name for c in spec.criteria)
        else:
            rater.columns = tuple(f"prob.{c}" for c in columns)
            kind = "multilabel" if problem == "multi_label_classification" else "domain"
            rater.heads = [Head("prob", kind, 0, len(labels), labels=tuple(labels))]
        rater.values = _numeric(labels) if problem == "single_label_classification" else None
        rater.info["hf_classifier"] = {
            "problem_type": problem,
            "columns": dict(zip(rater.columns, labels, strict=True)),
            "expected": rater.values is not None,
        }
        return rater

    def score(self, texts: Sequence[str]) -> Columns:
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise AssayError(f"{self.name}: text {i} is {type(t).__name__}, not str")
        return super().score(texts)

    def _columns(
        self, acc: dict[int, np.ndarray], fraction: np.ndarray, n_tok: np.ndarray
    ) -> Columns:
        if self.problem == "regression":
            return super()._columns(acc, fraction, n_tok)
        p = acc[0]
        cols: Columns = {c: p[:, k].astype(np.float32) for k, c in enumerate(self.columns)}
        labels = np.asarray(self.labels, dtype=object)
        if self.problem == "single_label_classification":
            top = p.argmax(axis=1)
            cols["label"] = labels[top]
            cols["label.prob"] = p.max(axis=1).astype(np.float32)
            if self.values is not None:
                cols["expected"] = (p @ self.values).astype(np.float32)
        else:
            on = p >= MULTI_LABEL_THRESHOLD
            cols["labels"] = np.array([",".join(labels[row]) for row in on], dtype=object)
        cols["scored_fraction"] = fraction
        cols["n_tokens"] = n_tok
        return cols


def _numeric(labels: Sequence[str]) -> np.ndarray | None:
    try:
        return np.array([float(x) for x in labels], dtype=np.float64)
    except ValueError:
        return None


__all__ = ["NAME", "HFClassifierRater", "is_sequence_classifier", "read_head_config"]
