"""The shipped default rater, assay-mini-v1: it is small, loads by name, writes the
documented columns, separates junk and damaged text from curated text, names domains,
and its model card states the figures its training measured."""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pytest

from raters.registry import RELEASED, available, build_rater, released_dir

pytest.importorskip("torch")
NAME = "assay-mini-v1"
FOLDER = released_dir(NAME)


@pytest.fixture(scope="module")
def rater():
    return build_rater(NAME, device="cpu")


def test_folder_is_small_and_self_describing():
    assert NAME in RELEASED and NAME in available()
    names = sorted(p.name for p in FOLDER.iterdir())
    assert names == [
        "MODEL_CARD.md",
        "heads.json",
        "heads.safetensors",
        "manifest.json",
        "metrics.json",
        "rater.json",
        "train_log.json",
    ]
    assert (FOLDER / "heads.safetensors").stat().st_size < 50_000
    spec = json.loads((FOLDER / "rater.json").read_text())
    assert spec["name"] == NAME and spec["format"] == "assay-heads"
    assert spec["backbone"] == "all-minilm-l6-v2" and spec["long_doc"] == "head"
    assert [c["name"] for c in spec["criteria"]] == ["quality"]
    assert len(spec["domain"]["labels"]) == 10 and "junk" in spec["domain"]["labels"]
    assert "NOT a DataMan" in spec["description"]


def test_columns_are_the_documented_ones(rater, demo_sample):
    batch = {"id": [d["id"] for d in demo_sample[:5]], "text": [d["text"] for d in demo_sample[:5]]}
    out = rater(batch)
    added = sorted(set(out) - set(batch))
    assert added == sorted(
        f"{NAME}.{c}"
        for c in ("quality", "quality.conf", "domain", "domain.prob", "scored_fraction", "n_tokens")
    )
    q = np.asarray(out[f"{NAME}.quality"])
    assert np.all((q >= 0) & (q <= 1))
    conf = np.asarray(out[f"{NAME}.quality.conf"])
    np.testing.assert_allclose(conf, np.maximum(q, 1 - q), atol=1e-6)  # binary: max(p, 1-p)
    description = rater.describe()
    assert (
        description["backbone"]["backbone_sha256"]
        == json.loads((FOLDER / "heads.json").read_text())["backbone_sha256"]
    )


def test_scores_separate_junk_and_damage_from_curated_text(rater, demo_sample):
    from raters.corruptions import CORRUPTIONS, corrupt

    curated = [d for d in demo_sample if d["domain"] != "junk"]
    junk = [d for d in demo_sample if d["domain"] == "junk"]
    rng = random.Random(12345)  # other draws than the training labels used
    damaged = [
        corrupt(d["text"], kind, rng)
        for d in curated
        for kind in sorted(CORRUPTIONS)
        if kind != "word_shuffle" or len(d["text"].split()) >= 8
    ]
    score = rater.score([d["text"] for d in curated] + [d["text"] for d in junk] + damaged)
    q = score["quality"]
    q_curated, q_junk, q_damaged = (
        q[: len(curated)],
        q[len(curated) : -len(damaged)],
        q[-len(damaged) :],
    )
    assert np.median(q_curated) > 0.8
    assert np.median(q_junk) < 0.2
    assert np.mean(q_damaged < 0.5) > 0.7
    domains = score["domain"][: len(curated) + len(junk)]
    truth = [d["domain"] for d in curated + junk]
    assert np.mean(domains == np.array(truth, dtype=object)) > 0.8


def test_model_card_states_the_measured_figures():
    card = (FOLDER / "MODEL_CARD.md").read_text()
    assert "not** a DataMan" in card
    metrics = json.loads((FOLDER / "metrics.json").read_text())["test"]
    row = re.search(r"^\| quality \| ([0-9.]+) \| ([0-9.]+) \| ([0-9.]+) \|", card, re.M)
    assert row, "quality row missing from MODEL_CARD.md"
    acc, f1, majority = (float(x) for x in row.groups())
    assert acc == pytest.approx(metrics["quality"]["accuracy"], abs=0.006)
    assert f1 == pytest.approx(metrics["quality"]["macro_f1"], abs=0.006)
    assert majority == pytest.approx(metrics["quality"]["baseline"]["accuracy"], abs=0.0006)
    assert acc > majority  # the card's claim: better than always answering "intact"
    row = re.search(r"^\| domain \| ([0-9.]+) \| ([0-9.]+) \|", card, re.M)
    assert float(row.group(1)) == pytest.approx(metrics["domain"]["accuracy"], abs=0.006)


def test_annotate_with_the_default_rater(tmp_path, demo_sample):
    from assay.annotate import annotate, read_annotations

    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in demo_sample[:8]))
    annotate([path], tmp_path / "out", [build_rater(NAME, device="cpu")])
    table = read_annotations(tmp_path / "out")
    assert table.num_rows == 8
    assert f"{NAME}.quality" in table.column_names and f"{NAME}.domain" in table.column_names
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["models"][0]["name"] == NAME
