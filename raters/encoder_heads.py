"""The heads of an encoder rater: which slice of the model's output vector each reads, and
how a document's windows are averaged into one value per head.

Kinds: ``regression`` (the raw value, clipped to the scale), ``classification`` and
``domain`` (a softmax over the slice), ``multilabel`` (an independent sigmoid per output,
for ``problem_type: multi_label_classification`` checkpoints). Windows of one document are
averaged after the activation, weighted by their tokens, so a chunked document's value is
the length-weighted mean of its windows' probabilities (or clipped values).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raters.spec import RaterSpec, class_values, criterion_labels, domain_labels

KINDS = ("regression", "classification", "domain", "multilabel")


@dataclass(frozen=True)
class Head:
    """One slice of the output vector and how to turn it into columns."""

    name: str
    kind: str  # one of KINDS
    start: int
    end: int
    scale: tuple[float, float] = (0.0, 1.0)
    values: np.ndarray | None = None  # classification: score of each class
    labels: tuple[str, ...] | None = None


def aggregate(
    head: Head, logits: np.ndarray, weights: np.ndarray, starts: np.ndarray
) -> np.ndarray:
    """Per-document value of a head: the ``weights``-weighted mean over each document's
    windows (rows ``starts[d]`` up to ``starts[d + 1]`` of ``logits``)."""
    x = logits[:, head.start : head.end].astype(np.float64)
    if head.kind == "regression":
        x = np.clip(x, *head.scale)
    elif head.kind == "multilabel":
        x = 1.0 / (1.0 + np.exp(-x))
    else:
        x = np.exp(x - x.max(axis=1, keepdims=True))
        x /= x.sum(axis=1, keepdims=True)
    w = weights[:, None]
    return np.add.reduceat(x * w, starts, axis=0) / np.add.reduceat(w, starts)


def build_heads(spec: RaterSpec, id2label: dict[int, str] | None) -> list[Head]:
    """Heads in spec order, labels resolved against the model's ``id2label``."""
    heads = []
    for i, c in enumerate(spec.criteria):
        if c.type == "regression":
            heads.append(Head(c.name, "regression", *c.logits, scale=c.scale))
            continue
        labels = criterion_labels(spec, i, id2label)
        values = np.array(class_values(c, labels), dtype=np.float64)
        heads.append(
            Head(
                c.name,
                "classification",
                *c.logits,
                scale=c.scale,
                values=values,
                labels=tuple(labels) if labels is not None else None,
            )
        )
    if spec.domain is not None:
        labels = tuple(domain_labels(spec, id2label))
        heads.append(Head("domain", "domain", *spec.domain.logits, labels=labels))
    return heads
