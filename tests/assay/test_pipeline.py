"""assay pipeline: recipe loading and validation, and the whole path on a slice of the
real demo corpus with micro proxies (split -> ... -> export), resume, --from, skips."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from assay.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

# A slice of the demo recipe: 300 pool documents, the heuristic rater only (seconds),
# micro proxies (0.02M params, 8k tokens), 24 probes, a 20k-token budget.
SLICE = {
    "seed": 0,
    "split": {"where": "domain=encyclopedic", "docs": 40, "pool_docs": 300},
    "annotate": {"raters": ["heuristics", "dsir"], "shard_size": 100},
    "embed": {"max_tokens": 64, "dtype": "float32"},  # float32: compared to the text path
    "cluster": {"k": 8, "prune": []},
    "mix": {
        "group_by": "cluster",
        "method": "trust",  # the default search, at its smallest: 8 runs + 2 x 2 checks
        "proxies": 8,
        "candidates": 500,
        "verify": 2,
        "proxy": {"hidden": 32, "layers": 1, "heads": 2, "seq_len": 128, "tokens": 8000},
    },
    "influence": {
        "probes": 24,
        "reference_docs": 16,
        "max_tokens": 64,
        "proxy": {"hidden": 32, "layers": 1, "heads": 2, "seq_len": 128, "tokens": 8000},
    },
    "select": {
        "budget_tokens": 20_000,
        "score": "-zscore(influence.score) + zscore(heuristics.rps_doc_frac_unique_words)"
        " + 0.5 * zscore(dsir.per_ngram)",
    },
    "export": {"formats": ["jsonl", "megatron"], "mixture_formats": ["megatron", "hf"]},
}


def _write(tmp: Path, data: dict, name: str = "recipe.yaml") -> Path:
    path = tmp / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_unknown_key_lists_the_allowed_ones(tmp_path, demo_dir):
    from assay.pipeline import load_recipe

    path = _write(tmp_path, {"corpus": str(demo_dir), "select": {"budget": 5}})
    with pytest.raises(ConfigError, match=r"unknown key.*budget") as e:
        load_recipe(path)
    assert "budget_tokens" in (e.value.hint or str(e.value))


@pytest.mark.parametrize(
    "change, match",
    [
        ({"select": {"budget_tokens": -5}}, "budget_tokens must be > 0, got -5"),
        ({"split": {"where": "encyclopedic"}}, "COLUMN=VALUE"),
        ({"influence": {"skip": True}}, "influence step is skipped"),
        ({"cluster": {"skip": True}}, "needs the cluster step"),
        ({"split": {"skip": True}}, "target_path"),
        ({"mix": {"proxies": 0}}, "mix.proxies must be >= 1"),
        ({"select": {"budget_tokens": "lots"}}, "select.budget_tokens must be int"),
        ({"embed": {"skip": "yes"}}, "embed.skip must be bool"),
    ],
)
def test_bad_recipes_name_the_key(tmp_path, demo_dir, change, match):
    from assay.pipeline import load_recipe

    with pytest.raises(ConfigError, match=match):
        load_recipe(_write(tmp_path, {"corpus": str(demo_dir), **change}))


def test_unknown_step_for_from(tmp_path, demo_dir):
    from assay.pipeline import load_recipe, run_pipeline

    recipe = load_recipe(_write(tmp_path, {"corpus": str(demo_dir), "out": str(tmp_path)}))
    with pytest.raises(ConfigError, match="--from must be one of split, annotate"):
        run_pipeline(recipe, start="train")


@pytest.fixture(scope="module")
def slice_run(tmp_path_factory, demo_dir):
    from assay.pipeline import load_recipe, run_pipeline

    tmp = tmp_path_factory.mktemp("pipeline")
    path = _write(tmp, {"corpus": str(demo_dir), "out": str(tmp / "out"), **SLICE})
    lines: list[str] = []
    state = run_pipeline(load_recipe(path), say=lines.append)
    return tmp, path, state, lines


@pytest.mark.slow
def test_slice_runs_every_step_and_links_artifacts(slice_run):
    import pyarrow.parquet as pq

    from assay import manifest as mf
    from assay.corpus import read_documents

    tmp, _, state, lines = slice_run
    out = tmp / "out"
    assert list(state["steps"]) == [
        "split", "annotate", "embed", "cluster", "mix", "influence", "select", "export"
    ]  # fmt: skip
    target_ids = {d["id"] for d in read_documents([out / "split" / "target.jsonl"])}
    pool = list(read_documents([out / "split" / "pool.jsonl"]))
    assert len(target_ids) == 40 and len(pool) == 300
    assert not target_ids & {d["id"] for d in pool}  # the target never enters the pool

    # the chain: each manifest names the artifact it was made from
    ann = mf.read_manifest(out / "annotated", kind="annotations")
    assert ann["counts"]["rows"] == 300
    # dsir, named without a target, is pointed at the split's target and pool
    dsir = next(r for r in ann["models"] if r["name"] == "dsir")
    assert dsir["target"] == {"inputs": [str(out / "split" / "target.jsonl")], "docs": 40}
    assert dsir["raw"]["docs"] == 300
    mixture = json.loads((out / "mixture" / "mixture.json").read_text())
    assert mixture["provenance"]["path"] == str((out / "clusters").resolve())
    sel = mf.read_manifest(out / "selected", kind="selection")
    assert sel["inputs"]["annotated"] == str((out / "influence" / "scored").resolve())
    assert sel["inputs"]["mixture"] == str((out / "mixture" / "mixture.json").resolve())
    assert 0 < sel["counts"]["tokens_selected"] <= 20_000
    assert sel["group_by"] == "cluster"

    # the selection holds pool documents only, scored by the influence model
    files = [out / "selected" / f for g in sel["groups"] for f in g["files"]]
    rows = [r for f in files for r in pq.read_table(f, columns=["id"]).to_pylist()]
    assert len(rows) == sel["counts"]["docs_selected"]
    assert not target_ids & {r["id"] for r in rows}
    assert "influence.score" in pq.read_schema(files[0]).names

    # exports: JSONL, Megatron .bin/.idx + blend, and the searched mixture's files
    exp = mf.read_manifest(out / "export", kind="pipeline-export")
    assert set(exp["exports"]) == {"jsonl", "megatron", "mixture-megatron", "mixture-hf"}
    jsonl = sorted((out / "export" / "jsonl").rglob("*.jsonl*"))
    assert sum(1 for _ in read_documents(jsonl)) == sel["counts"]["docs_selected"]
    assert list((out / "export" / "megatron").rglob("*.idx"))
    args = (out / "export" / "mixture-megatron" / "data_args.txt").read_text().split()
    # the blend names the exported prefixes, absolute: weight, prefix, weight, prefix, ...
    prefixes = args[1::2]
    assert prefixes and all(Path(p + ".idx").exists() for p in prefixes)

    # the summary: per group, then where each artifact is
    text = "\n".join(lines)
    assert "Selected" in text and "Artifacts:" in text and "pipeline.json" in text
    for i in range(1, 9):
        assert f"[{i}/8 " in text


@pytest.mark.slow
def test_influence_scores_the_pool_from_the_embed_vectors(slice_run):
    """Head mode reads the embed step's vectors: no second MiniLM pass over the pool, and
    the same scores (within float16 storage) as the saved model run on the texts."""
    import numpy as np

    from assay import manifest as mf
    from assay.annotate import annotate, read_annotations
    from clustering.aligned import annotation_shards, check_aligned
    from raters.encoder import load_rater_dir

    tmp, _, state, lines = slice_run
    out = tmp / "out"
    summary = state["steps"]["influence"]["summary"]
    assert summary["features"] == "embeddings" and summary["features_why"] is None
    assert any("from the embed step's vectors" in line for line in lines)
    scored = mf.read_manifest(out / "influence" / "scored", kind="annotations")
    assert scored["models"][0]["features"] == "embeddings"
    # row-aligned with the annotations (and so with the clusters the select step joins)
    clusters = mf.read_manifest(out / "clusters", kind="clusters")
    check_aligned(
        annotation_shards(out / "influence" / "scored"), clusters["shards"], what="c", folder=out
    )
    reused = read_annotations(out / "influence" / "scored")
    assert "influence.n_tokens" not in reused.column_names  # no rater pass ran

    # the text path: the saved model as a rater over the same pool texts
    shards = mf.read_manifest(out / "annotated", kind="annotations")["shards"]
    rater = load_rater_dir(out / "influence" / "model", device="cpu")
    annotate([out / "annotated" / s for s in shards], tmp / "text-path", [rater])
    text = read_annotations(tmp / "text-path")
    assert text["id"].to_pylist() == reused["id"].to_pylist()
    a = reused["influence.score"].to_numpy().astype(np.float64)
    b = text["influence.score"].to_numpy().astype(np.float64)
    assert np.abs(a - b).max() < 1e-2 * b.std(), (np.abs(a - b).max(), b.std())
    assert np.corrcoef(a, b)[0, 1] > 0.9999


@pytest.mark.slow
def test_influence_embedding_checks_name_what_differs(slice_run):
    from assay import manifest as mf
    from assay.pipeline_influence import embedding_mismatches

    out = slice_run[0] / "out"
    model = mf.read_manifest(out / "embeddings", kind="embeddings")["models"][0]
    kw = {"backbone": "all-minilm-l6-v2", "method": "head", "max_tokens": 64}
    assert embedding_mismatches(model, **kw) == []
    assert "max_tokens" in " ".join(embedding_mismatches(model, **{**kw, "max_tokens": 128}))
    assert "'full'" in " ".join(embedding_mismatches(model, **{**kw, "method": "full"}))
    unit = {**model, "normalize": True}
    assert "normalize" in " ".join(embedding_mismatches(unit, **kw))
    other = {**model, "weights_sha256": "0" * 64, "name": "e5"}
    assert "'e5'" in " ".join(embedding_mismatches(other, **kw))


def test_st_pooling_reads_the_sentence_transformers_modules(tmp_path):
    from assay.pipeline_influence import st_pooling
    from raters.hub import resolve_model

    assert st_pooling(resolve_model("all-minilm-l6-v2")) == "mean"
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ]
    (tmp_path / "modules.json").write_text(json.dumps(modules))
    (tmp_path / "1_Pooling").mkdir()
    config = {"word_embedding_dimension": 384, "pooling_mode_cls_token": True,
              "pooling_mode_mean_tokens": False, "include_prompt": True}  # fmt: skip
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(config))
    assert st_pooling(tmp_path) == "cls_token"
    dense = {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}
    (tmp_path / "modules.json").write_text(json.dumps([*modules, dense]))
    assert "Dense" in st_pooling(tmp_path)


@pytest.mark.slow
def test_influence_falls_back_to_the_texts_and_says_why(slice_run, tmp_path):
    """influence.max_tokens differs from embed.max_tokens: the step encodes the texts."""
    from assay import manifest as mf
    from assay.pipeline import load_recipe, run_pipeline

    tmp, path, _, _ = slice_run
    shutil.copy(tmp / "out" / "pipeline.json", tmp_path / "pipeline.json")
    data = yaml.safe_load(path.read_text())
    data["out"] = str(tmp_path)
    data["influence"]["max_tokens"] = 48
    lines: list[str] = []
    state = run_pipeline(load_recipe(_write(tmp_path, data)), only="influence", say=lines.append)
    summary = state["steps"]["influence"]["summary"]
    assert summary["features"] == "texts" and "influence.max_tokens 48" in summary["features_why"]
    assert any("encoding the pool's texts again" in line for line in lines)
    scored = mf.read_manifest(tmp_path / "influence" / "scored", kind="annotations")
    assert scored["counts"]["rows"] == 300 and scored["models"][0]["class"] == "EncoderRater"


@pytest.mark.slow
def test_rerun_reuses_and_a_changed_step_reruns_what_follows(slice_run):
    from assay.pipeline import load_recipe, run_pipeline

    _, path, first, _ = slice_run
    lines: list[str] = []
    again = run_pipeline(load_recipe(path), say=lines.append)
    assert sum("done earlier, reused" in line for line in lines) == 8
    assert not any(line.endswith("running") for line in lines)
    assert again["steps"]["select"] == first["steps"]["select"]

    data = yaml.safe_load(path.read_text())
    data["select"]["budget_tokens"] = 12_000
    path.write_text(yaml.safe_dump(data))
    lines.clear()
    third = run_pipeline(load_recipe(path), say=lines.append)
    ran = [line.split()[1].rstrip("]") for line in lines if line.endswith("running")]
    assert ran == ["select", "export"]  # earlier steps are untouched
    assert third["steps"]["select"]["summary"]["tokens_selected"] <= 12_000
    assert third["steps"]["mix"] == first["steps"]["mix"]


@pytest.mark.slow
def test_cli_from_and_only(slice_run):
    from typer.testing import CliRunner

    from assay.cli import app

    _, path, _, _ = slice_run
    result = CliRunner().invoke(app, ["pipeline", str(path), "--only", "export"])
    assert result.exit_code == 0, result.output
    assert "[8/8 export] running" in result.output and "select] running" not in result.output
    result = CliRunner().invoke(app, ["pipeline", str(path), "--from", "nope"])
    assert result.exit_code != 0 and "--from must be one of" in result.output


@pytest.mark.slow
def test_skipped_steps_use_what_is_there(slice_run, tmp_path):
    """No clusters and no influence: the mixture groups by domain, the score is heuristic."""
    from assay import manifest as mf
    from assay.pipeline import load_recipe, run_pipeline

    src = slice_run[0] / "out"
    shutil.copytree(src / "annotated", tmp_path / "out" / "annotated")
    recipe = {
        **SLICE,
        "corpus": str(src / "split" / "pool.jsonl"),
        "out": str(tmp_path / "out"),
        "split": {"skip": True, "target_path": str(src / "split" / "target.jsonl")},
        "annotate": {**SLICE["annotate"], "skip": True},
        "embed": {"skip": True},
        "influence": {"skip": True},
        "mix": {**SLICE["mix"], "group_by": "domain"},
        "select": {"budget_tokens": 15_000, "score": "heuristics.rps_doc_frac_unique_words"},
        "export": {"formats": ["jsonl"], "mixture_formats": ["olmo-core"]},
    }
    lines: list[str] = []
    state = run_pipeline(load_recipe(_write(tmp_path, recipe)), say=lines.append)
    assert list(state["steps"]) == ["mix", "select", "export"]
    assert any("[2/8 annotate] skipped" in line and "using" in line for line in lines)
    sel = mf.read_manifest(tmp_path / "out" / "selected", kind="selection")
    assert sel["group_by"] == "domain" and sel["counts"]["tokens_selected"] <= 15_000
    assert "encyclopedic" in {g["name"] for g in sel["groups"]}


def _bench():
    from assay.cli_pipeline import _benchmark_module

    return _benchmark_module("efficacy_common")


def test_efficacy_tokens_to_reach_by_hand():
    bench = _bench()
    x = bench.np.array([100.0, 200.0, 300.0])
    y = bench.np.array([8.0, 7.0, 6.0])
    assert bench.tokens_to_reach(x, y, 6.5) == 250.0  # halfway between 200 and 300
    assert bench.tokens_to_reach(x, y, 9.0) == 100.0
    assert bench.tokens_to_reach(x, y, 5.0) is None


def test_efficacy_bigram_prefers_matching_statistics():
    bench = _bench()
    rng = bench.np.random.default_rng(0)
    target = rng.integers(0, 4, 500)  # tokens 0-3 only
    same = rng.integers(0, 4, 5000)
    other = rng.integers(4, 8, 5000)
    assert bench.bigram_nats(same, target, 8) < bench.bigram_nats(other, target, 8)


def test_bench_efficacy_rejects_a_bad_preset(tmp_path):
    from typer.testing import CliRunner

    from assay.cli import app

    result = CliRunner().invoke(
        app, ["bench", "efficacy", "--preset", "huge", "-o", str(tmp_path / "b")]
    )
    assert result.exit_code != 0 and "--preset must be one of" in result.output
