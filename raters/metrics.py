"""Agreement metrics between a rater and its labels: numpy in, numbers out.

Used by ``assay eval-rater`` and by ``train-rater`` (held-out figures in metrics.json),
so both report the same numbers the same way.

>>> round(spearman([1, 2, 3, 4], [10, 20, 40, 30]), 3)
0.8
>>> macro_f1([0, 0, 1, 1], [0, 1, 1, 1])
0.7333333333333334
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def accuracy(y: Sequence, pred: Sequence) -> float:
    y, pred = np.asarray(y), np.asarray(pred)
    return float(np.mean(y == pred)) if len(y) else float("nan")


def f1_per_class(y: Sequence, pred: Sequence, classes: Sequence) -> dict[Any, float]:
    """F1 of each class (0 where a class is neither true nor predicted... nor anything)."""
    y, pred = np.asarray(y), np.asarray(pred)
    out = {}
    for c in classes:
        tp = float(np.sum((y == c) & (pred == c)))
        fp = float(np.sum((y != c) & (pred == c)))
        fn = float(np.sum((y == c) & (pred != c)))
        out[c] = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return out


def macro_f1(y: Sequence, pred: Sequence) -> float:
    """Unweighted mean F1 over the classes that occur in ``y`` or ``pred`` (as
    scikit-learn's ``f1_score(average="macro")``)."""
    classes = sorted(set(np.asarray(y).tolist()) | set(np.asarray(pred).tolist()))
    if not classes:
        return float("nan")
    return float(np.mean(list(f1_per_class(y, pred, classes).values())))


def binary_f1(y_pos: Sequence[bool], pred_pos: Sequence[bool]) -> float:
    """F1 of the positive class (0 when nothing is positive in either)."""
    return f1_per_class(np.asarray(y_pos, bool), np.asarray(pred_pos, bool), [True])[True]


def rankdata(x: Sequence[float]) -> np.ndarray:
    """Ranks 1..n, ties get their average rank (scipy's ``rankdata`` default)."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    sorted_x = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rho (Pearson on average ranks); NaN when either side is constant."""
    ra, rb = rankdata(a), rankdata(b)
    if len(ra) < 2 or ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def mae(y: Sequence[float], pred: Sequence[float]) -> float:
    y, pred = np.asarray(y, float), np.asarray(pred, float)
    return float(np.mean(np.abs(y - pred))) if len(y) else float("nan")


def calibration(confidence: Sequence[float], correct: Sequence[bool], bins: int = 10) -> dict:
    """Reliability table of a top-class probability: per equal-width bin, how many
    predictions, their mean confidence and how many were right; plus the expected
    calibration error ``sum_b n_b / n * |accuracy_b - confidence_b|``."""
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=bool)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # floor(conf * bins), not a search in `edges`: linspace's 0.6000000000000001 would
    # put a confidence of exactly 0.6 in the bin below.
    index = np.clip(np.floor(conf * bins).astype(np.int64), 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        mask = index == b
        n = int(mask.sum())
        if n == 0:
            continue
        mean_conf, acc = float(conf[mask].mean()), float(ok[mask].mean())
        ece += n / len(conf) * abs(acc - mean_conf)
        rows.append(
            {
                "bin": [round(float(edges[b]), 3), round(float(edges[b + 1]), 3)],
                "n": n,
                "confidence": round(mean_conf, 4),
                "accuracy": round(acc, 4),
            }
        )
    return {"ece": round(ece, 4) if len(conf) else None, "bins": rows}


def nearest_class(values: Sequence[float], classes: Sequence[float]) -> np.ndarray:
    """Each value's nearest class value (ties go to the lower class)."""
    v = np.asarray(values, dtype=np.float64)[:, None]
    c = np.asarray(classes, dtype=np.float64)[None, :]
    return np.asarray(classes, dtype=np.float64)[np.argmin(np.abs(v - c), axis=1)]


def criterion_report(
    y: np.ndarray,
    score: np.ndarray,
    *,
    classes: Sequence[float] | None,
    threshold: float,
    predicted: np.ndarray | None = None,
    confidence: np.ndarray | None = None,
    bins: int = 10,
) -> dict[str, Any]:
    """Agreement of one criterion with its labels.

    Args:
        y: label values. score: the rater's score (expected score, or regression value).
        classes: the class values (classification), or None (regression: accuracy and
            F1 then compare labels and scores rounded to the nearest whole number).
        threshold: binary F1 counts ``>= threshold`` as positive on both sides.
        predicted: the predicted class (argmax); default: ``score`` rounded to the
            nearest class.
        confidence: top-class probability, for the calibration table.
    """
    y = np.asarray(y, dtype=np.float64)
    score = np.asarray(score, dtype=np.float64)
    grid = classes if classes is not None else np.unique(np.round(y))
    pred = predicted if predicted is not None else nearest_class(score, grid)
    pred = np.asarray(pred, dtype=np.float64)
    y_class = y if classes is not None else np.round(y)
    values, counts = np.unique(y_class, return_counts=True)
    majority = values[np.argmax(counts)] if len(values) else np.nan
    out: dict[str, Any] = {
        "n": len(y),
        "accuracy": accuracy(y_class, pred),
        "macro_f1": macro_f1(y_class, pred),
        "spearman": spearman(y, score),
        "mae": mae(y, score),
        "binary_f1": binary_f1(y >= threshold, score >= threshold),
        "threshold": threshold,
        "prediction": "argmax" if predicted is not None else "nearest class of the score",
        "label_counts": {_key(v): int(c) for v, c in zip(values, counts, strict=True)},
        "baseline": {
            "majority_class": _key(majority),
            "accuracy": accuracy(y_class, np.full(len(y), majority)),
            "macro_f1": macro_f1(y_class, np.full(len(y), majority)),
            "mae_of_mean": mae(y, np.full(len(y), y.mean() if len(y) else np.nan)),
            "binary_f1_all_positive": binary_f1(y >= threshold, np.ones(len(y), bool)),
        },
    }
    if confidence is not None:
        out["calibration"] = calibration(confidence, pred == y_class, bins)
    return out


def domain_report(
    y: Sequence[str], pred: Sequence[str], prob: Sequence[float] | None = None, bins: int = 10
) -> dict[str, Any]:
    y_arr, pred_arr = np.asarray(y, dtype=object), np.asarray(pred, dtype=object)
    labels = sorted(set(y_arr.tolist()) | set(pred_arr.tolist()))
    values, counts = np.unique(y_arr.astype(str), return_counts=True)
    majority = values[np.argmax(counts)] if len(values) else None
    confusion = {
        t: {
            p: int(np.sum((y_arr == t) & (pred_arr == p)))
            for p in labels
            if np.any((y_arr == t) & (pred_arr == p))
        }
        for t in labels
        if np.any(y_arr == t)
    }
    out: dict[str, Any] = {
        "n": len(y_arr),
        "accuracy": accuracy(y_arr, pred_arr),
        "macro_f1": macro_f1(y_arr, pred_arr),
        "per_label_f1": {k: round(v, 4) for k, v in f1_per_class(y_arr, pred_arr, labels).items()},
        "confusion": confusion,
        "baseline": {
            "majority_class": majority,
            "accuracy": accuracy(y_arr, np.full(len(y_arr), majority, dtype=object)),
            "macro_f1": macro_f1(y_arr, np.full(len(y_arr), majority, dtype=object)),
        },
    }
    if prob is not None:
        out["calibration"] = calibration(prob, y_arr == pred_arr, bins)
    return out


def _key(v: Any) -> Any:
    """A class value as JSON likes it: 3.0 -> 3."""
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return int(v)
    return v.item() if isinstance(v, np.generic) else v
