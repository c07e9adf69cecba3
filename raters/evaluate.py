"""``assay eval-rater``: how well a rater agrees with a labels file (its teacher).

The rater scores the labelled texts exactly as ``assay annotate`` would (same engine,
same windows); each of its criteria that the labels also have is compared with them:

- accuracy and macro-F1 of the predicted class: the argmax class where the rater names
  its classes (``<criterion>.label``), else the class nearest to the expected score
  (exactly the argmax for two classes; for regression heads, scores and labels are both
  rounded to whole numbers);
- Spearman and MAE of the score (the expected score, or the regression value);
- binary F1 at a threshold (``score >= t`` vs ``label >= t``; default the middle of
  the scale, 3 on 1-5 and 0-5 as DataMan and FineWeb-Edu cut, 0.5 on 0-1);
- a calibration table of the top-class probability (``.conf``) against correctness,
  with its expected calibration error;
- the same figures for a constant predictor (majority class, mean score) as a baseline.

The domain head gets accuracy, macro-F1, per-label F1, a confusion table and
calibration. ``split`` picks the train/val/test split a rater trained by
``assay train-rater`` used (recomputed from its ``train_log.json``: seeded hash of each
label group), so held-out figures are held out.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from assay.errors import AssayError, ConfigError
from raters.labels import assign_splits, read_labels
from raters.metrics import criterion_report, domain_report
from raters.train_heads import default_threshold

SPLIT_CHOICES = ("all", "train", "val", "test")


def evaluate_rater(
    rater_ref: str,
    labels_path: str | os.PathLike,
    *,
    split: str = "all",
    thresholds: dict[str, float] | None = None,
    bins: int = 10,
    device: str = "auto",
    dtype: str = "auto",
    limit: int | None = None,
) -> dict[str, Any]:
    """Score the labelled texts with a rater and compare. Returns the report (JSON-able).

    Args:
        rater_ref: anything ``--rater`` accepts (``assay-mini-v1``, a folder, NAME=DIR).
        split: ``all`` or the ``train``/``val``/``test`` split of the rater's training.
        thresholds: criterion -> binary threshold (default: middle of the scale).
        limit: evaluate the first ``limit`` selected examples only.

    Example::

        report = evaluate_rater("assay-mini-v1", "labels.jsonl", split="test")
        print(format_report(report))
    """
    from raters.encoder import EncoderRater
    from raters.registry import build_rater

    if split not in SPLIT_CHOICES:
        raise ConfigError(f"--split must be one of {', '.join(SPLIT_CHOICES)}, got {split!r}")
    if bins < 1:
        raise ConfigError(f"--bins must be > 0, got {bins}")
    labels = read_labels(labels_path)
    rater = build_rater(rater_ref, device=device, dtype=dtype)
    if not isinstance(rater, EncoderRater):
        raise ConfigError(f"--rater {rater_ref}: eval-rater needs a model rater with heads")
    rater_dir = Path(rater.info["model_path"])
    split_config = None
    if split != "all":
        split_config = _training_split(rater_dir)
        sides = assign_splits(
            labels.groups, split_config["val_frac"], split_config["test_frac"], split_config["seed"]
        )
        labels = labels.subset(np.flatnonzero(sides == split))
        if len(labels) == 0:
            raise AssayError(f"no labelled example falls in the {split} split")
    if limit is not None:
        labels = labels.subset(np.arange(min(limit, len(labels))))

    t0 = time.perf_counter()
    columns = rater.score(labels.texts)
    seconds = time.perf_counter() - t0
    report: dict[str, Any] = {
        "rater": {
            "ref": rater_ref,
            "name": rater.name,
            "version": rater.version,
            "path": str(rater_dir),
            "spec": rater.info.get("spec"),
        },
        "labels": {
            "path": str(Path(labels_path).resolve()),
            "sha256": labels.sha256,
            "split": split,
            "split_config": split_config,
            "trained_on_this_file": _trained_on(rater_dir, labels.sha256),
            "examples": len(labels),
        },
        "criteria": {},
        "timing": {"score_s": round(seconds, 3), "docs_per_s": round(len(labels) / seconds, 2)},
    }
    thresholds = dict(thresholds or {})
    rater_criteria = [h for h in rater.heads if h.kind != "domain"]
    unknown = sorted(set(thresholds) - {h.name for h in rater_criteria})
    if unknown:
        raise ConfigError(f"--threshold names criteria the rater lacks: {unknown}")
    for head in rater_criteria:
        if head.name not in labels.criteria:
            continue
        y = labels.values[:, labels.criteria.index(head.name)]
        have = ~np.isnan(y)
        if not have.any():
            continue
        predicted = None
        if f"{head.name}.label" in columns and head.values is not None and head.labels:
            value_of = dict(zip(head.labels, head.values, strict=True))
            predicted = np.array([value_of[v] for v in columns[f"{head.name}.label"][have]])
        report["criteria"][head.name] = criterion_report(
            y[have],
            np.asarray(columns[head.name], dtype=np.float64)[have],
            classes=None if head.values is None else list(head.values),
            threshold=thresholds.get(head.name, default_threshold(head.scale)),
            predicted=predicted,
            confidence=columns[f"{head.name}.conf"][have]
            if f"{head.name}.conf" in columns
            else None,
            bins=bins,
        )
    report["not_compared"] = {
        "label_criteria_without_head": [
            c for c in labels.criteria if c not in {h.name for h in rater_criteria}
        ],
        "heads_without_labels": [
            h.name for h in rater_criteria if h.name not in report["criteria"]
        ],
    }
    has_domain = [d is not None for d in labels.domains]
    if "domain" in columns and any(has_domain):
        keep = np.flatnonzero(has_domain)
        truth = [labels.domains[i] for i in keep]
        known = set(next(h for h in rater.heads if h.kind == "domain").labels or ())
        report["domain"] = domain_report(
            truth, columns["domain"][keep].tolist(), columns["domain.prob"][keep], bins
        )
        report["domain"]["labels_unknown_to_rater"] = sorted(set(truth) - known)
    if not report["criteria"] and "domain" not in report:
        raise AssayError(
            f"the rater {rater.name!r} and the labels share no criterion and no domain",
            hint=f"rater heads: {[h.name for h in rater.heads]}; labels: {labels.criteria}",
        )
    return report


def _training_split(rater_dir: Path) -> dict[str, Any]:
    path = rater_dir / "train_log.json"
    if not path.is_file():
        raise ConfigError(
            f"--split needs the rater's train_log.json ({path} not found)",
            hint="only raters trained by assay train-rater know their split; use --split all",
        )
    return json.loads(path.read_text())["split"]


def _trained_on(rater_dir: Path, sha256: str) -> bool | None:
    path = rater_dir / "manifest.json"
    if not path.is_file():
        return None
    inputs = json.loads(path.read_text()).get("inputs") or []
    return any(i.get("sha256") == sha256 for i in inputs)


def format_report(report: dict[str, Any]) -> str:
    """The report as a plain-text table (what the CLI prints)."""
    lab = report["labels"]
    lines = [
        f"rater {report['rater']['name']} v{report['rater']['version']} on {lab['examples']:,} "
        f"labelled examples ({Path(lab['path']).name}, split {lab['split']})",
        "",
        f"{'criterion':<24}{'n':>7}{'acc':>8}{'(base)':>8}{'mF1':>8}{'(base)':>8}"
        f"{'rho':>8}{'MAE':>8}{'(base)':>8}{'F1@t':>8}{'t':>6}{'ECE':>8}",
    ]

    def f(x: Any) -> str:
        return "-" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.3f}"

    for name, r in report["criteria"].items():
        b = r["baseline"]
        ece = (r.get("calibration") or {}).get("ece")
        lines.append(
            f"{name:<24}{r['n']:>7}{f(r['accuracy']):>8}{f(b['accuracy']):>8}"
            f"{f(r['macro_f1']):>8}{f(b['macro_f1']):>8}{f(r['spearman']):>8}"
            f"{f(r['mae']):>8}{f(b['mae_of_mean']):>8}{f(r['binary_f1']):>8}"
            f"{r['threshold']:>6g}{f(ece):>8}"
        )
    if "domain" in report:
        r = report["domain"]
        b = r["baseline"]
        lines.append(
            f"{'domain':<24}{r['n']:>7}{f(r['accuracy']):>8}{f(b['accuracy']):>8}"
            f"{f(r['macro_f1']):>8}{f(b['macro_f1']):>8}{'':>40}{f(r['calibration']['ece']):>8}"
        )
    lines += ["", "(base): constant predictor (majority class; mean score for MAE)"]
    for name, r in [*report["criteria"].items(), *[("domain", report.get("domain"))]]:
        if not r or not r.get("calibration"):
            continue
        lines += ["", f"calibration of {name} (top-class probability vs correct):"]
        lines.append(f"  {'bin':<14}{'n':>7}{'conf':>8}{'acc':>8}")
        for row in r["calibration"]["bins"]:
            lo, hi = row["bin"]
            lines.append(
                f"  {f'[{lo:.1f}, {hi:.1f})':<14}{row['n']:>7}{row['confidence']:>8.3f}"
                f"{row['accuracy']:>8.3f}"
            )
    return "\n".join(lines)
