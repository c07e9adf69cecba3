"""Rater specs: round trips, presets, and errors that name the field."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from assay.errors import ConfigError
from raters.spec import RaterSpec, class_values, criterion_labels, domain_labels

REPO = Path(__file__).resolve().parents[2]
# Encoder presets (decoder presets are covered by tests/raters/test_decoder.py).
PRESETS = [
    p
    for p in sorted((REPO / "configs" / "raters").glob("*.json"))
    if json.loads(p.read_text()).get("kind", "encoder") == "encoder"
]

SPEC = {
    "name": "edu-minilm",
    "version": "1",
    "kind": "encoder",
    "model": "model",
    "format": "hf-sequence-classification",
    "criteria": [
        {"name": "educational_value", "type": "regression", "logits": [0, 1], "scale": [0, 5]},
        {"name": "readability", "type": "classification", "logits": [1, 7], "scale": [0, 5]},
    ],
    "domain": {"labels": ["code", "legal", "news", "prose"], "logits": [7, 11]},
    "max_tokens": 512,
    "long_doc": "chunks",
    "max_chunks": 4,
}


DELETE = object()


def spec_with(**changes) -> dict:
    """A copy of SPEC with ``a__0__b=value`` setting data["a"][0]["b"] (DELETE removes)."""
    data = copy.deepcopy(SPEC)
    for dotted, value in changes.items():
        target = data
        *path, last = dotted.split("__")
        for key in path:
            target = target[int(key)] if key.isdigit() else target[key]
        if value is DELETE:
            del target[last]
        else:
            target[last] = value
    return data


def test_round_trip_through_dict_and_file(tmp_path):
    spec = RaterSpec.from_dict(SPEC)
    assert RaterSpec.from_dict(spec.to_dict()) == spec
    assert spec.criteria[1].logits == (1, 7)
    path = spec.save(tmp_path)
    assert path == tmp_path / "rater.json"
    again = RaterSpec.load(tmp_path)
    assert again == spec
    assert json.loads(path.read_text())["domain"]["labels"] == ["code", "legal", "news", "prose"]


def test_relative_model_resolves_against_the_spec_folder(tmp_path):
    (tmp_path / "model").mkdir()
    RaterSpec.from_dict(SPEC).save(tmp_path)
    assert RaterSpec.load(tmp_path / "rater.json").model_dir() == tmp_path / "model"


def test_rater_json_without_model_means_its_own_folder(tmp_path):
    RaterSpec.from_dict(spec_with(model=None)).save(tmp_path)
    spec = RaterSpec.load(tmp_path)
    assert spec.model == "."
    assert spec.model_dir().resolve() == tmp_path.resolve()


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_presets_load_and_bind_to_a_folder(preset, tmp_path):
    spec = RaterSpec.load(preset)
    assert spec.model is None
    assert spec.name == preset.stem
    assert RaterSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ConfigError, match="model is not set"):
        spec.model_dir()
    bound = spec.with_model(tmp_path)
    assert bound.model_dir() == tmp_path.resolve()
    assert bound.criteria == spec.criteria


def test_with_model_keeps_named_models_and_resolves_relative_paths(tmp_path, monkeypatch):
    spec = RaterSpec.from_dict(spec_with(model=None))
    assert spec.with_model("all-minilm-l6-v2").model == "all-minilm-l6-v2"
    monkeypatch.chdir(tmp_path)
    assert spec.with_model("here").model == str(tmp_path.resolve() / "here")


def test_chars_limit_derives_from_tokens_and_policy():
    assert RaterSpec.from_dict(spec_with(long_doc="head")).chars_limit == 5120
    assert RaterSpec.from_dict(SPEC).chars_limit == 5120 * 4  # chunks x max_chunks
    assert RaterSpec.from_dict(spec_with(max_chars=777)).chars_limit == 777


def test_class_values_default_to_evenly_spaced():
    spec = RaterSpec.from_dict(SPEC)
    assert class_values(spec.criteria[1], None) == [0, 1, 2, 3, 4, 5]
    three = spec_with(criteria__1__logits=[1, 4], criteria__1__scale=[0, 2])
    assert class_values(RaterSpec.from_dict(three).criteria[1], None) == [0, 1, 2]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "bad.name"}, "name: 'bad.name'"),
        ({"version": ""}, "version:"),
        ({"version": DELETE}, "version: missing"),
        ({"kind": "decoder"}, "kind: 'decoder': this is a decoder rater"),
        ({"kind": "lstm"}, "kind: 'lstm' is not one of encoder"),
        ({"format": "onnx"}, "format: 'onnx'"),
        ({"long_doc": "middle"}, "long_doc: 'middle'"),
        ({"max_tokens": 0}, "max_tokens: must be an integer > 0"),
        ({"max_chunks": -1}, "max_chunks:"),
        ({"max_chars": 1.5}, "max_chars:"),
        ({"max_token": 12}, "unknown field(s) max_token"),
        ({"trust_remote_code": "yes"}, "trust_remote_code:"),
        ({"criteria": [], "domain": None}, "criteria: empty and no domain head"),
        ({"criteria__1__logits": [3, 2]}, "criteria[1].logits: [3, 2] is not a slice"),
        ({"criteria__1__logits": [1]}, "criteria[1].logits: expected [start, end]"),
        ({"criteria__0__logits": [0, 2]}, "criteria[0].logits: a regression criterion reads 1"),
        ({"criteria__1__logits": [0, 6]}, "criteria[1].logits: [0, 6) overlaps criteria[0]"),
        ({"domain__logits": [6, 10]}, "domain.logits: [6, 10) overlaps criteria[1]"),
        ({"criteria__1__name": "educational_value"}, "criteria[1].name: 'educational_value' is"),
        ({"criteria__1__name": "read.ability"}, "criteria[1].name: 'read.ability' is not usable"),
        ({"criteria__1__name": "domain"}, "criteria[1].name: 'domain' is reserved"),
        ({"criteria__1__type": "ordinal"}, "criteria[1].type: 'ordinal'"),
        ({"criteria__1__scale": [5, 0]}, "criteria[1].scale: [5.0, 0.0] needs min < max"),
        ({"criteria__1__values": [0, 1]}, "criteria[1].values: 2 values for 6 classes"),
        ({"criteria__1__values": [0, 1, 2, 3, 4, 9]}, "criteria[1].values: [0.0, 1.0"),
        ({"criteria__1__labels": ["a", "b"]}, "criteria[1].labels: 2 labels for 6 classes"),
        ({"criteria__0__values": [1]}, "criteria[0]: values/labels apply to classification"),
        ({"criteria__1__frobnicate": 1}, "criteria[1]: unknown field(s) frobnicate"),
        ({"criteria__1__type": DELETE}, "criteria[1].type: missing"),
        ({"domain__labels": ["a", "b"]}, "domain.labels: 2 labels for 4 logits"),
        ({"domain__labels": ["a", "a", "b", "c"]}, "domain.labels: labels must be unique"),
        ({"domain__logits": [10, 11]}, "domain.logits: a domain head needs >= 2 outputs"),
    ],
)
def test_errors_name_the_field(changes, message):
    with pytest.raises(ConfigError) as err:
        RaterSpec.from_dict(spec_with(**changes), source="rater.json")
    text = str(err.value)
    assert text.startswith("rater.json: ")
    assert message in text


def test_load_reports_bad_json_with_the_path(tmp_path):
    (tmp_path / "rater.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"rater\.json: not valid JSON"):
        RaterSpec.load(tmp_path)
    with pytest.raises(ConfigError, match="no rater spec"):
        RaterSpec.load(tmp_path / "elsewhere")


def test_check_model_slices_against_num_labels():
    spec = RaterSpec.from_dict(SPEC)
    spec.check_model(11, None)
    with pytest.raises(ConfigError, match=r"domain.logits: \[7, 11\) is out of range .*=10"):
        spec.check_model(10, None)


def test_labels_are_checked_against_the_model():
    spec = RaterSpec.from_dict(SPEC)
    generic = {k: f"LABEL_{k}" for k in range(11)}
    assert domain_labels(spec, generic) == ["code", "legal", "news", "prose"]
    named = dict(generic) | {7: "code", 8: "news", 9: "legal", 10: "prose"}
    with pytest.raises(ConfigError, match=r"domain\.labels differ from the model's id2label"):
        spec.check_model(11, named)
    unnamed = RaterSpec.from_dict(spec_with(domain__labels=None))
    assert domain_labels(unnamed, named) == ["code", "news", "legal", "prose"]
    assert domain_labels(unnamed, generic) == ["LABEL_7", "LABEL_8", "LABEL_9", "LABEL_10"]


def test_values_keyed_by_label_follow_the_models_order():
    quality = {
        "name": "q",
        "version": "1",
        "format": "nemo-deberta",
        "criteria": [
            {
                "name": "quality",
                "type": "classification",
                "logits": [0, 3],
                "scale": [0, 2],
                "values": {"Low": 0, "Medium": 1, "High": 2},
            }
        ],
    }
    spec = RaterSpec.from_dict(quality)
    id2label = {0: "High", 1: "Low", 2: "Medium"}
    labels = criterion_labels(spec, 0, id2label)
    assert labels == ["High", "Low", "Medium"]
    assert class_values(spec.criteria[0], labels) == [2, 0, 1]
    with pytest.raises(ConfigError, match="keyed by label, but the model names no labels"):
        spec.check_model(3, {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"})
    with pytest.raises(ConfigError, match=r"values: keys .* do not match the labels"):
        spec.check_model(3, {0: "Good", 1: "Low", 2: "Medium"})
