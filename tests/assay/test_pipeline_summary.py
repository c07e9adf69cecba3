"""The pipeline's final summary on a small fake run (no step runs): each selected group is
named by its topic terms from the cluster report, and the report, the mixture files and
the exports are listed with how to open them."""

from __future__ import annotations

from pathlib import Path

from assay import manifest as mf
from assay.pipeline_context import Context
from assay.pipeline_output import group_terms, print_final_summary
from assay.pipeline_recipe import Recipe


def _fake_run(tmp_path: Path, group_by: str) -> tuple[Context, dict]:
    out = tmp_path / "out"
    folders = {s: out / s for s in ("clusters", "mixture", "selected", "export")}
    for f in folders.values():
        f.mkdir(parents=True)
    mf.write_json_atomic(
        folders["clusters"] / "report.json",
        {
            "topics": [
                {"topic": 0, "terms": [["self", 0.04], ["return", 0.03], ["function", 0.02]]},
                {"topic": 1, "terms": [["city", 0.05], ["river", 0.04]]},
            ],
            "clusters": [{"cluster": 0, "topic": 1, "terms": [["sea", 0.1]]}],
        },
    )
    (folders["mixture"] / "mixture.json").write_text("{}")
    groups = [
        {"name": "0", "target_weight": 0.6, "tokens_selected": 600, "docs_selected": 6,
         "epochs": 0.5},
        {"name": "1", "target_weight": 0.4, "tokens_selected": 400, "docs_selected": 4,
         "epochs": None},
    ]  # fmt: skip
    selection = mf.new_manifest(
        "selection",
        counts={"docs_selected": 10, "tokens_selected": 1000, "budget_tokens": 1000},
        score={"expression": "quality"},
        group_by=group_by,
        groups=groups,
    )
    mf.write_json_atomic(folders["selected"] / mf.MANIFEST, selection)
    export = folders["export"]
    exports = {
        "megatron": {
            "folder": str(export / "megatron"),
            "blend": {
                "megatron": [str(export / "megatron/blend/megatron/data_args.txt")],
                "nemo": [str(export / "megatron/blend/nemo/paths.json")],
            },
        },
        "jsonl": {"folder": str(export / "jsonl"), "blend": {}},
        "mixture-olmo-core": {
            "folder": str(export / "mixture-olmo-core"),
            "files": [str(export / "mixture-olmo-core/source_mixture.yaml")],
        },
    }
    mf.write_json_atomic(export / mf.MANIFEST, mf.new_manifest("pipeline-export", exports=exports))
    ctx = Context(Recipe(corpus=["unused"], out=str(out)), print)
    ctx.artifacts = {
        "cluster": folders["clusters"],
        "mix": folders["mixture"],
        "select": folders["selected"],
        "export": export,
    }
    state = {"steps": {k: {"artifact": str(v)} for k, v in ctx.artifacts.items()}, "seconds": 3}
    return ctx, state


def test_summary_names_groups_by_their_terms_and_says_how_to_open(tmp_path):
    ctx, state = _fake_run(tmp_path, "cluster.topic")
    lines: list[str] = []
    print_final_summary(ctx, state, lines.append)
    text = "\n".join(lines)
    row0 = next(line for line in lines if line.strip().startswith("0 "))
    assert row0.endswith("self, return, function")
    assert next(line for line in lines if line.strip().startswith("1 ")).endswith("city, river")
    assert "top terms" in text and "Artifacts:" in text and "Where to look:" in text
    out = ctx.out.resolve()
    assert f"cluster report: {out / 'clusters' / 'report.html'}" in text
    assert "open it in a browser" in text
    assert f"mixture: {out / 'mixture' / 'mixture.json'}" in text
    assert "source_mixture.yaml\n    OLMo-core SourceMixtureList.from_yaml(FILE)" in text
    blend = str(out / "export/megatron/blend/megatron/data_args.txt")
    assert f"Megatron-LM --data-args-path {blend}" in text
    assert "assay export-merge" in text and "head -n 1 FILE" in text
    assert text.rstrip().endswith("pipeline finished in 3 s")


def test_terms_for_clusters_and_none_for_other_groupings(tmp_path):
    ctx, _ = _fake_run(tmp_path, "cluster")
    clusters = ctx.artifact("cluster")
    assert group_terms(clusters, "cluster") == {"0": "sea"}
    assert group_terms(clusters, "cluster.topic", n=1) == {"0": "self", "1": "city"}
    assert group_terms(clusters, "domain") == {}
    assert group_terms(None, "cluster") == {}
    assert group_terms(tmp_path / "nowhere", "cluster") == {}
    lines: list[str] = []
    print_final_summary(ctx, {"steps": {}}, lines.append)
    assert next(line for line in lines if line.strip().startswith("0 ")).endswith("sea")
