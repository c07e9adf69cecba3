"""Exporters: each trainer's syntax, unit conversion and implied epochs, checked against
the format rules quoted in issue 6 (parsed here independently of the exporter's checks)."""

from __future__ import annotations

import json
import math

import pytest
import yaml

from assay.errors import AssayError, ConfigError
from selector.mix_export import FORMATS, export_mixture, to_unit
from selector.mixture import Group, Mixture


@pytest.fixture
def mixture() -> Mixture:
    # a: 100 tokens per doc, b: 10 tokens per doc, c: weight 0 (must be left out)
    return Mixture(
        [
            Group("a", 0.5, tokens_available=1_000, docs_available=10),
            Group("b", 0.5, tokens_available=1_000, docs_available=100),
            Group("c", 0.0, tokens_available=5_000, docs_available=50),
        ],
        group_by="domain",
        budget_tokens=3_000,
    )


def _pairs(tokens: list[str]) -> list[tuple[float, str]]:
    assert len(tokens) % 2 == 0
    out = []
    for w, p in zip(tokens[::2], tokens[1::2], strict=True):
        out.append((float(w), p))
        with pytest.raises(ValueError):
            float(p)  # a prefix, never a number
    return out


def test_units_by_hand(mixture):
    assert to_unit(mixture, "tokens") == {"a": 0.5, "b": 0.5}
    docs = to_unit(mixture, "documents")  # 0.5/100 vs 0.5/10 per document
    assert docs["a"] == pytest.approx(1 / 11) and docs["b"] == pytest.approx(10 / 11)


def test_megatron_pairs_and_blend(mixture, tmp_path):
    m = export_mixture(mixture, "megatron", tmp_path, path_template="/d/{group}_text_document")
    pairs = _pairs((tmp_path / "data_args.txt").read_text().split())
    assert pairs == [(0.5, "/d/a_text_document"), (0.5, "/d/b_text_document")]
    blend = json.loads((tmp_path / "blend.json").read_text())
    assert set(blend) == {"train", "valid", "test"}
    for tokens in blend.values():
        assert all(isinstance(t, str) for t in tokens)
        assert math.fsum(w for w, _ in _pairs(tokens)) == pytest.approx(1.0)
    # implied epochs: 0.5 * 3000 / 1000 = 1.5 passes, flagged
    assert [g["epochs"] for g in m["groups"]] == [1.5, 1.5]
    assert m["repeated_groups"] == ["a", "b"] and m["omitted_zero_weight"] == ["c"]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["kind"] == "mixture-export" and manifest["unit"] == "samples"


def test_nemo_paths(mixture, tmp_path):
    export_mixture(mixture, "nemo", tmp_path)
    paths = json.loads((tmp_path / "paths.json").read_text())
    assert set(paths) == {"train", "validation", "test"}
    assert [p for _, p in _pairs(paths["train"])] == [
        "data/a_text_document",
        "data/b_text_document",
    ]


def test_olmo_core_source_mixture(mixture, tmp_path):
    export_mixture(mixture, "olmo-core", tmp_path, budget_tokens=3_000)
    doc = yaml.safe_load((tmp_path / "source_mixture.yaml").read_text())
    sources = doc["sources"]
    assert [s["source_name"] for s in sources] == ["a", "b"]
    for s in sources:
        assert 0 < s["target_ratio"] <= 1
        assert s["max_repetition_ratio"] >= 1.5  # covers the implied epochs
        assert isinstance(s["paths"], list) and s["paths"]
        assert 0 < s["max_source_fraction"] <= 1
    assert math.fsum(s["target_ratio"] for s in sources) == pytest.approx(1.0, abs=1e-9)


def test_hf_probabilities_are_per_document(mixture, tmp_path):
    export_mixture(mixture, "hf", tmp_path, options={"seed": 3})
    doc = json.loads((tmp_path / "interleave.json").read_text())
    assert doc["datasets"] == ["data/a", "data/b"]
    assert doc["probabilities"] == [
        pytest.approx(1 / 11, abs=1e-6),
        pytest.approx(10 / 11, abs=1e-6),
    ]
    assert sum(doc["probabilities"]) == pytest.approx(1.0) and doc["seed"] == 3
    assert doc["stopping_strategy"] in ("first_exhausted", "all_exhausted")


def test_mds_streams_one_scheme(mixture, tmp_path):
    export_mixture(mixture, "mds", tmp_path)
    streams = yaml.safe_load((tmp_path / "streams.yaml").read_text())["train_loader"]["dataset"][
        "streams"
    ]
    assert {k for s in streams.values() for k in ("proportion", "repeat", "choose") if k in s} == {
        "proportion"
    }
    assert streams["b"]["proportion"] == pytest.approx(10 / 11, abs=1e-6)
    export_mixture(
        mixture, "mds", tmp_path / "choose", options={"scheme": "choose", "budget_tokens": 3_000}
    )
    streams = yaml.safe_load((tmp_path / "choose" / "streams.yaml").read_text())
    chosen = streams["train_loader"]["dataset"]["streams"]
    # 1500 tokens from a at 100 tokens/doc = 15 docs; from b at 10 tokens/doc = 150
    assert chosen["a"]["choose"] == 15 and chosen["b"]["choose"] == 150


def test_megatron_group_names_fill_as_the_token_export_names_its_prefixes(tmp_path):
    """A name with a space and a slash: ``{group}`` of a Megatron / NeMo template is filled
    as ``assay export -f megatron`` names the prefix, so the blend names the exported files."""
    from selector.export.megatron import megatron_prefix

    mix = Mixture(
        [Group("topic 3/web", 0.25, 1_000, 10), Group("b", 0.75, 1_000, 10)], group_by="topic"
    )
    export_mixture(mix, "megatron", tmp_path / "meg")
    pairs = _pairs((tmp_path / "meg" / "data_args.txt").read_text().split())
    want = [f"data/{megatron_prefix('topic 3/web')}", f"data/{megatron_prefix('b')}"]
    assert want == ["data/topic_3_web_text_document", "data/b_text_document"]
    assert [p for _, p in pairs] == want
    export_mixture(mix, "nemo", tmp_path / "nemo")
    paths = json.loads((tmp_path / "nemo" / "paths.json").read_text())
    assert paths["train"][1::2] == want


def test_megatron_groups_that_share_a_prefix_are_refused(tmp_path):
    mix = Mixture([Group("a b", 0.5, 1_000, 10), Group("a/b", 0.5, 1_000, 10)], group_by="g")
    with pytest.raises(ConfigError, match="'a b' and 'a/b'"):
        export_mixture(mix, "megatron", tmp_path)


def test_nanotron_dataset_folder(mixture, tmp_path):
    export_mixture(mixture, "nanotron", tmp_path, path_template="/tok/{group}")
    doc = yaml.safe_load((tmp_path / "nanoset.yaml").read_text())
    dataset = doc["data_stages"][0]["data"]["dataset"]
    assert dataset == {"dataset_folder": ["/tok/a", "/tok/b"], "dataset_weights": [0.5, 0.5]}


def test_every_format_round_trips_a_searched_style_mixture(tmp_path):
    groups = [
        Group(str(i), w, 10_000 * (i + 1), 20 * (i + 1))
        for i, w in enumerate([0.123457, 0.2, 0.3, 0.376543])
    ]
    mix = Mixture(groups, "cluster.topic", budget_tokens=50_000)
    path = tmp_path / "mixture.json"
    mix.write(path)
    for fmt in FORMATS:
        m = export_mixture(Mixture.read(path), fmt, tmp_path / fmt)
        assert math.fsum(g["weight"] for g in m["groups"]) == pytest.approx(1.0)


def test_errors(mixture, tmp_path):
    with pytest.raises(ConfigError, match="--format"):
        export_mixture(mixture, "torch", tmp_path)
    with pytest.raises(ConfigError, match="same data path"):
        export_mixture(mixture, "megatron", tmp_path, path_template="/d/all")
    no_counts = Mixture([Group("a", 1.0, 0, 0)], "domain")
    with pytest.raises(AssayError, match="per-document"):
        export_mixture(no_counts, "hf", tmp_path)
    with pytest.raises(AssayError, match="whitespace"):
        export_mixture(mixture, "megatron", tmp_path, path_template="/d d/{group}")
