"""eval-rater: the metrics by hand values (checked against scikit-learn / scipy where
installed), and a tiny trained rater evaluated through the engine on its held-out split,
which must reproduce the figures its training wrote."""

from __future__ import annotations

import json
import random
import shutil

import numpy as np
import pytest

from assay.errors import AssayError, ConfigError
from raters.labels import write_labels
from raters.metrics import (
    binary_f1,
    calibration,
    criterion_report,
    domain_report,
    macro_f1,
    mae,
    nearest_class,
    rankdata,
    spearman,
)


def test_metric_hand_values():
    assert macro_f1([0, 0, 1, 1], [0, 1, 1, 1]) == pytest.approx((2 / 3 + 4 / 5) / 2)
    # A class only predicted counts (F1 0), as in scikit-learn.
    assert macro_f1([0, 0], [0, 2]) == pytest.approx((2 / 3 + 0) / 2)
    assert list(rankdata([10, 20, 20, 5])) == [2, 3.5, 3.5, 1]
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3]))
    assert mae([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0)
    assert binary_f1([True, True, False, False], [True, False, True, False]) == pytest.approx(0.5)
    assert list(nearest_class([0.49, 0.5, 2.6, 9], [0, 1, 2, 3])) == [0, 0, 3, 3]


def test_metrics_agree_with_reference_libraries():
    sklearn = pytest.importorskip("sklearn.metrics")
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for _ in range(5):
        y, p = rng.integers(1, 6, 200), rng.integers(1, 6, 200)
        assert macro_f1(y, p) == pytest.approx(sklearn.f1_score(y, p, average="macro"))
        s = rng.normal(size=200)
        assert spearman(y, s) == pytest.approx(stats.spearmanr(y, s).statistic)


def test_calibration_table_hand_values():
    conf = [0.95, 0.92, 0.91, 0.55, 0.6, 0.15]
    correct = [True, True, False, True, False, False]
    table = calibration(conf, correct, bins=10)
    bins = {tuple(b["bin"]): b for b in table["bins"]}
    top = bins[(0.9, 1.0)]
    assert top["n"] == 3 and top["accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    assert top["confidence"] == pytest.approx(0.9267, abs=1e-4)
    ece = (3 * abs(2 / 3 - 0.9267) + 1 * abs(1 - 0.55) + 1 * abs(0 - 0.6) + 1 * 0.15) / 6
    assert table["ece"] == pytest.approx(ece, abs=1e-3)


def test_criterion_report_with_baselines():
    y = np.array([1, 1, 1, 3, 5, 5])
    score = np.array([1.2, 1.4, 3.2, 3.1, 4.4, 4.9])
    r = criterion_report(y, score, classes=[1, 2, 3, 4, 5], threshold=3)
    assert r["prediction"] == "nearest class of the score"
    assert r["accuracy"] == pytest.approx(4 / 6)  # 3.2 -> 3 and 4.4 -> 4 are wrong
    assert r["binary_f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 0))  # 3.2 is a false alarm
    assert r["baseline"]["majority_class"] == 1
    assert r["baseline"]["accuracy"] == pytest.approx(0.5)
    assert r["baseline"]["mae_of_mean"] == pytest.approx(np.mean(np.abs(y - y.mean())))
    assert r["label_counts"] == {1: 3, 3: 1, 5: 2}
    d = domain_report(["a", "a", "b"], ["a", "b", "b"], [0.9, 0.6, 0.8])
    assert d["accuracy"] == pytest.approx(2 / 3) and d["confusion"]["a"] == {"a": 1, "b": 1}
    assert d["baseline"]["majority_class"] == "a"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, demo_records):
    """A head-only rater trained on 120 demo documents (junk vs not, and domain)."""
    from raters.train import train_rater
    from raters.train_config import TrainConfig

    pytest.importorskip("torch")
    rng = random.Random(3)
    picked = rng.sample(demo_records, 120)
    rows = [
        {
            "id": r["id"],
            "text": r["text"],
            "labels": {"quality": int(r["domain"] != "junk"), "stars": 1 + len(r["text"]) % 5},
            "domain": r["domain"],
        }
        for r in picked
    ]
    folder = tmp_path_factory.mktemp("eval")
    labels = write_labels(folder / "labels.jsonl", rows)
    out = folder / "rater"
    config = TrainConfig(method="head", max_tokens=32, threads=1, val_frac=0.2, test_frac=0.3)
    metrics = train_rater(labels, out, config)
    return labels, out, metrics


def test_eval_reproduces_the_training_figures_on_the_held_out_split(tiny):
    from raters.evaluate import evaluate_rater, format_report

    labels, out, metrics = tiny
    report = evaluate_rater(str(out), labels, split="test", device="cpu")
    assert report["labels"]["examples"] == metrics["splits"]["test"]
    assert report["labels"]["trained_on_this_file"] is True
    for head in ("quality", "stars"):
        got, want = report["criteria"][head], metrics["test"][head]
        assert got["n"] == want["n"]
        for key in ("accuracy", "macro_f1", "spearman", "mae", "binary_f1"):
            assert got[key] == pytest.approx(want[key], abs=1e-4), (head, key)
    # 5 classes: the rater names them, so accuracy is scored on its argmax.
    assert report["criteria"]["stars"]["prediction"] == "argmax"
    assert report["criteria"]["quality"]["threshold"] == 0.5
    assert report["domain"]["accuracy"] == pytest.approx(metrics["test"]["domain"]["accuracy"])
    text = format_report(report)
    assert "stars" in text and "calibration of domain" in text and "(base)" in text
    every = evaluate_rater(str(out), labels, split="all", device="cpu", limit=7)
    assert every["labels"]["examples"] == 7


def test_eval_refusals(tiny, tmp_path):
    from raters.evaluate import evaluate_rater

    labels, out, _ = tiny
    with pytest.raises(ConfigError, match="--threshold names criteria the rater lacks"):
        evaluate_rater(str(out), labels, thresholds={"nosuch": 1.0}, device="cpu")
    with pytest.raises(ConfigError, match="--split must be one of"):
        evaluate_rater(str(out), labels, split="dev", device="cpu")
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "train_log.json").unlink()
    with pytest.raises(ConfigError, match=r"--split needs the rater's train_log\.json"):
        evaluate_rater(str(copy), labels, split="test", device="cpu")
    other = write_labels(
        tmp_path / "other.jsonl", [{"id": "a", "text": "Some text.", "labels": {"x": 1}}]
    )
    with pytest.raises(AssayError, match="share no criterion and no domain"):
        evaluate_rater(str(out), other, device="cpu")
    report = evaluate_rater(str(out), labels, thresholds={"stars": 4}, device="cpu", limit=10)
    assert report["criteria"]["stars"]["threshold"] == 4
    assert json.dumps(report)  # JSON-able as written
