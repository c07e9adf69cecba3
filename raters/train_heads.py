"""The heads of a multi-head rater: layout of the output vector, targets, loss weights,
the loss, and held-out figures from logits.

Layout: criteria in label-file order (a classification criterion takes one logit per
class, a regression criterion one logit), then the domain head. A classification
criterion's classes are the whole numbers of its scale (1-5 -> 5 classes valued
1, 2, 3, 4, 5), so the rater's column is the expected score on that scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from assay.errors import ConfigError
from raters.labels import LabelSet, class_weights
from raters.metrics import criterion_report, domain_report

MAX_CLASSES = 11


@dataclass(frozen=True)
class HeadPlan:
    name: str
    """Criterion name, or ``domain``."""
    kind: str
    """``classification`` | ``regression`` | ``domain``."""
    start: int
    end: int
    scale: tuple[float, float] = (0.0, 1.0)
    classes: tuple[float, ...] | None = None
    """Classification: the score of each class, in logit order."""
    labels: tuple[str, ...] | None = None
    """Domain: labels in logit order."""
    column: int | None = None
    """Criterion: its column in the LabelSet."""

    def spec_entry(self) -> dict[str, Any]:
        """This head as a ``rater.json`` criterion."""
        entry: dict[str, Any] = {
            "name": self.name,
            "type": self.kind,
            "logits": [self.start, self.end],
            "scale": list(self.scale),
        }
        if self.kind == "classification":
            assert self.classes is not None
            entry["values"] = list(self.classes)
            if len(self.classes) > 2:
                # Named classes give a `<name>.label` column: the argmax class, which
                # eval-rater scores (rounding the expected score is not the argmax).
                entry["labels"] = [_class_name(v) for v in self.classes]
        return entry


def plan_heads(
    labels: LabelSet,
    types: dict[str, str],
    criteria: tuple[str, ...] | None,
    with_domain: bool,
) -> list[HeadPlan]:
    """Decide each head's type and slice. ``types``: criterion -> classification |
    regression | auto."""
    wanted = list(criteria) if criteria is not None else list(labels.criteria)
    unknown = [c for c in [*wanted, *types] if c not in labels.criteria]
    if unknown:
        raise ConfigError(
            f"--criteria/--head name {sorted(set(unknown))}, not in the labels",
            hint=f"the labels have: {', '.join(labels.criteria) or 'no criteria'}",
        )
    plans: list[HeadPlan] = []
    start = 0
    for name in wanted:
        j = labels.criteria.index(name)
        lo, hi = labels.scales[name]
        kind = types.get(name, "auto")
        whole = labels.integer[name] and float(lo).is_integer() and float(hi).is_integer()
        levels = int(hi - lo) + 1 if whole else 0
        if kind == "auto":
            kind = "classification" if whole and levels <= MAX_CLASSES else "regression"
        if kind == "classification":
            if not whole or levels > MAX_CLASSES:
                raise ConfigError(
                    f"--head {name}=classification: labels must be whole numbers on a scale "
                    f"of at most {MAX_CLASSES} levels (scale [{lo}, {hi}])",
                    hint=f"use --head {name}=regression",
                )
            classes = tuple(float(lo + k) for k in range(levels))
            plans.append(HeadPlan(name, kind, start, start + levels, (lo, hi), classes, column=j))
            start += levels
        else:
            plans.append(HeadPlan(name, "regression", start, start + 1, (lo, hi), column=j))
            start += 1
    domains = labels.domain_labels()
    if with_domain and len(domains) >= 2:
        end = start + len(domains)
        plans.append(HeadPlan("domain", "domain", start, end, labels=tuple(domains)))
    elif with_domain and len(domains) == 1:
        raise ConfigError(
            f"the labels have one domain only ({domains[0]}): a domain head needs two",
            hint="pass --no-domain",
        )
    if not plans:
        raise ConfigError("nothing to train: no criteria selected and no domain labels")
    return plans


def targets(
    labels: LabelSet, plan: HeadPlan, use_expected: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """``(y, mask)``: class index (classification, domain) or value (regression)."""
    if plan.kind == "domain":
        assert plan.labels is not None
        index = {d: k for k, d in enumerate(plan.labels)}
        mask = np.array([d is not None for d in labels.domains])
        y = np.array([index.get(d, 0) if d is not None else 0 for d in labels.domains])
        return y.astype(np.float64), mask
    assert plan.column is not None
    values = labels.values[:, plan.column].copy()
    if plan.kind == "regression" and use_expected:
        expected = labels.expected[:, plan.column]
        values = np.where(np.isnan(expected), values, expected)
    mask = ~np.isnan(values)
    if plan.kind == "classification":
        values = np.where(mask, values - plan.scale[0], 0.0)
    return np.where(mask, values, 0.0), mask


def example_weights(
    y: np.ndarray, mask: np.ndarray, train: np.ndarray, plan: HeadPlan, power: float
) -> np.ndarray:
    """Per-example loss weights that balance the classes (regression: the score bins)
    as counted on the training rows ``train`` (a boolean mask), applied to every row, so
    the validation loss weighs errors as the training loss does. Mean 1 over training."""
    w = np.zeros(len(y))
    fit = mask & train
    if not fit.any():
        return w
    if plan.kind == "regression":
        lo, hi = plan.scale
        bins = 5
        index = np.clip(((y - lo) / (hi - lo) * bins).astype(np.int64), 0, bins - 1)
    else:
        bins = plan.end - plan.start
        index = y.astype(np.int64)
    per_class = class_weights(index[fit], bins, power)
    w[mask] = per_class[index[mask]]
    return w / w[fit].mean()


def multihead_loss(logits: Any, y: Any, mask: Any, w: Any, plans: list[HeadPlan]) -> tuple:
    """Mean over heads of each head's weighted loss (cross-entropy, or squared error on
    the scale normalised to [0, 1]); heads with no label in the batch are skipped.
    ``y``, ``mask``, ``w``: ``[batch, heads]`` tensors. Returns (total, per-head list)."""
    import torch
    import torch.nn.functional as F

    per_head = []
    for h, plan in enumerate(plans):
        m = mask[:, h]
        if not bool(m.any()):
            per_head.append(None)
            continue
        out = logits[m, plan.start : plan.end]
        target, weight = y[m, h], w[m, h]
        if plan.kind == "regression":
            lo, hi = plan.scale
            loss = ((out[:, 0] - target) / (hi - lo)) ** 2
        else:
            loss = F.cross_entropy(out, target.long(), reduction="none")
        per_head.append((loss * weight).sum() / weight.sum().clamp(min=1e-12))
    present = [loss for loss in per_head if loss is not None]
    total = torch.stack(present).mean() if present else logits.sum() * 0.0
    return total, per_head


def predictions(logits: np.ndarray, plan: HeadPlan) -> dict[str, np.ndarray]:
    """What the rater's columns will hold, from raw logits (the engine's rules)."""
    x = logits[:, plan.start : plan.end].astype(np.float64)
    if plan.kind == "regression":
        return {"score": np.clip(x[:, 0], *plan.scale)}
    p = np.exp(x - x.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    top = p.argmax(axis=1)
    out = {"top": top, "conf": p.max(axis=1), "probs": p}
    if plan.classes is not None:
        classes = np.asarray(plan.classes)
        out["score"] = np.clip(p @ classes, *plan.scale)
        out["predicted"] = classes[top]
    return out


def heads_report(
    logits: np.ndarray, labels: LabelSet, plans: list[HeadPlan], bins: int = 10
) -> dict[str, Any]:
    """Held-out figures of every head against ``labels`` (same metrics as eval-rater)."""
    report: dict[str, Any] = {}
    for plan in plans:
        y, mask = targets(labels, plan)
        if not mask.any():
            continue
        pred = predictions(logits[mask], plan)
        if plan.kind == "domain":
            assert plan.labels is not None
            names = np.array(plan.labels, dtype=object)
            report["domain"] = domain_report(
                names[y[mask].astype(int)], names[pred["top"]], pred["conf"], bins
            )
            continue
        truth = labels.values[mask, plan.column]
        report[plan.name] = criterion_report(
            truth,
            pred["score"],
            classes=plan.classes,
            threshold=default_threshold(plan.scale),
            predicted=pred.get("predicted"),
            confidence=pred.get("conf"),
            bins=bins,
        )
    return report


def default_threshold(scale: tuple[float, float]) -> float:
    """Binary threshold at the middle of the scale, as a whole number where the scale is
    (1-5 -> 3, FineWeb-Edu's and DataMan's cut; 0-5 -> 3; 0-1 -> 0.5)."""
    lo, hi = scale
    mid = (lo + hi) / 2
    if float(lo).is_integer() and float(hi).is_integer() and hi - lo >= 2:
        return float(np.ceil(mid))
    return mid


def _class_name(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
