"""The pipeline's select filters: ``select.where`` over the lang rater's column and
``select.dedup`` (an ``assay dedup`` pass into OUT/dedup), on a slice of the demo corpus
with the model-free raters only; bad settings are refused before any step runs."""

from __future__ import annotations

import pytest
import yaml

from assay.errors import ConfigError

RECIPE = {
    "split": {"where": "domain=encyclopedic", "docs": 20, "pool_docs": 300},
    "annotate": {"raters": ["heuristics", "lang"], "shard_size": 100, "tokenizer": "smollm2-135m"},
    "embed": {"skip": True},
    "mix": {"skip": True},
    "influence": {"skip": True},
    "select": {
        "budget_tokens": 30_000,
        "score": "heuristics.rps_doc_frac_unique_words",
        "where": "lang == 'en'",
        "dedup": True,
    },
    "export": {"formats": ["jsonl"], "mixture_formats": []},
}


def _write(tmp_path, data):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    "select, match",
    [
        ({"where": "lang = 'en'"}, r"select.where .* is not an expression"),
        ({"where": "lang"}, "is not a comparison"),
        ({"dedup_threshold": 1.2}, "select.dedup_threshold must be in"),
        ({"dedup_num_perm": 1}, "select.dedup_num_perm"),
        ({"dedup": "yes"}, "select.dedup must be bool"),
    ],
)
def test_bad_filters_are_refused_on_load(tmp_path, demo_dir, select, match):
    from assay.pipeline import load_recipe

    data = {"corpus": str(demo_dir), "select": {**RECIPE["select"], **select}}
    with pytest.raises(ConfigError, match=match):
        load_recipe(_write(tmp_path, data))


def test_select_step_filters_by_language_and_near_duplicates(tmp_path, demo_dir):
    from assay import manifest as mf
    from assay.pipeline import load_recipe, run_pipeline

    data = {**RECIPE, "corpus": str(demo_dir), "out": str(tmp_path / "out")}
    lines: list[str] = []
    state = run_pipeline(load_recipe(_write(tmp_path, data)), say=lines.append)
    assert list(state["steps"]) == ["split", "annotate", "select", "export"]
    out = tmp_path / "out"
    dedup = mf.read_manifest(out / "dedup", kind="dedup")
    assert dedup["annotations"]["path"] == str((out / "annotated").resolve())
    sel = mf.read_manifest(out / "selected", kind="selection")
    c = sel["counts"]
    assert sel["config"]["where"] == "lang == 'en'" and sel["inputs"]["dedup"]
    assert c["duplicates_excluded"] >= 0 and c["tokens_selected"] <= 30_000
    assert any("dedup:" in line and "near-duplicate clusters" in line for line in lines)
    assert any("left out:" in line and "failing \"lang == 'en'\"" in line for line in lines)
    exported = (out / "export" / "jsonl").rglob("*.jsonl*")
    assert any(True for _ in exported)
    # a rerun reuses every step, the dedup folder included
    again: list[str] = []
    run_pipeline(load_recipe(_write(tmp_path, data)), say=again.append)
    assert mf.read_manifest(out / "dedup", kind="dedup")["created"] == dedup["created"]
