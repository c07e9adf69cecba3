"""Building raters from command-line references; every preset in configs/raters loads."""

from __future__ import annotations

import pytest

from assay.errors import ConfigError
from raters.registry import available, build_rater, presets


def test_builtins_build_and_ignore_model_options():
    rater = build_rater("heuristics", device="cpu", dtype="float32")
    assert rater.name == "heuristics"
    assert "heuristics.rps_doc_word_count" in rater({"text": ["One two three."]})


def test_bad_references_say_what_is_valid():
    with pytest.raises(ConfigError, match="unknown rater 'nosuch'") as info:
        build_rater("nosuch")
    assert "heuristics" in str(info.value)
    with pytest.raises(ConfigError, match="takes no model folder"):
        build_rater("heuristics=/some/model")
    with pytest.raises(ConfigError, match="bad option"):
        build_rater("heuristics", max_tokens=3)


@pytest.mark.parametrize("name", sorted(presets()))
def test_every_preset_loads_and_published_ones_need_local_weights(name):
    from raters.registry import load_spec

    spec = load_spec(presets()[name])
    assert spec.name == name and (spec.criteria or spec.domain)
    assert name in available()
    if spec.model is None:  # published weights: the user binds a folder
        with pytest.raises(ConfigError, match=f"{name}=/path/to/model_folder"):
            build_rater(name)
    else:  # a schema on a model that ships with assay
        assert spec.kind == "decoder" and spec.model == "smollm2-135m"


def test_name_equals_folder_renames_a_rater_folder(tmp_path):
    import shutil

    from raters.registry import released_dir

    folder = tmp_path / "mini"
    shutil.copytree(released_dir("assay-mini-v1"), folder)
    rater = build_rater(f"quality={folder}", device="cpu")
    assert rater.name == "quality"
    out = rater({"text": ["A short plain sentence about rivers."]})
    assert any(k.startswith("quality.") for k in out)
    with pytest.raises(ConfigError, match="not a usable rater name"):
        build_rater(f"bad.name={folder}")
