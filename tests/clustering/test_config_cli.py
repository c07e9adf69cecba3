"""configs/cluster.yaml mirrors ClusterConfig; bad settings name their flag; the embed and
cluster commands run, print where things are, and fail with `error:` and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from assay.annotate import annotate
from assay.cli_clustering import cluster, embed
from assay.errors import ConfigError
from clustering.config import ClusterConfig
from clustering.demo import suggest_k

REPO = Path(__file__).resolve().parents[2]


def test_yaml_defaults_equal_the_dataclass_defaults():
    assert ClusterConfig.from_yaml(REPO / "configs" / "cluster.yaml") == ClusterConfig()
    ClusterConfig().validate()


def test_settings_are_checked_and_name_the_flag(tmp_path):
    with pytest.raises(ConfigError, match="unknown cluster setting") as e:
        ClusterConfig().replace(clusters=5)
    assert "k" in (e.value.hint or "")
    bad = tmp_path / "bad.yaml"
    bad.write_text("k: 10\nlinkage: median\n")
    with pytest.raises(ConfigError, match="--linkage"):
        ClusterConfig.from_yaml(bad).validate()
    for changes, flag in [
        ({"k": 0}, "--k"),
        ({"n_iter": -1}, "--n-iter"),
        ({"sample_size": 5, "k": 10}, "--sample-size"),
        ({"map_method": "umap"}, "--map-method"),
        ({"prune": ["q<=3"]}, "--prune"),
        ({"gpu": "cuda"}, "--gpu"),
        ({"topics": 0}, "--topics"),
    ]:
        with pytest.raises(ConfigError, match=flag):
            ClusterConfig().replace(**changes).validate()
    # --merge-distance replaces the default --topics; giving both is refused
    assert ClusterConfig().replace(merge_distance=1.5).topics is None
    with pytest.raises(ConfigError, match="exactly one"):
        ClusterConfig().replace(merge_distance=1.5, topics=4).validate()


def test_suggest_k_follows_corpus_size():
    assert suggest_k(5962) == 64
    assert suggest_k(300) == 8 and suggest_k(10) == 8
    assert suggest_k(10_000_000) == 1000


def test_embed_and_cluster_commands(tmp_path, demo_records):
    app = typer.Typer()
    app.command()(embed)
    app.command()(cluster)
    runner = CliRunner()
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in demo_records[:40]))
    from raters.heuristics import HeuristicRater

    annotate([src], tmp_path / "ann", [HeuristicRater()], shard_size=25, hash_inputs=False)

    r = runner.invoke(
        app, ["embed", str(tmp_path / "ann"), "-o", str(tmp_path / "emb"), "--max-tokens", "32"]
    )
    assert r.exit_code == 0, r.output
    assert "embedded 40 documents (all-minilm-l6-v2, 384-d, 2 shards)" in r.output

    args = [
        "cluster",
        str(tmp_path / "ann"),
        "-e",
        str(tmp_path / "emb"),
        "-o",
        str(tmp_path / "c"),
    ]
    r = runner.invoke(app, [*args, "--k", "4", "--topics", "2", "--map-method", "pca"])
    assert r.exit_code == 0, r.output
    assert "into 4 clusters (0 pruned, 0 docs) and 2 topics" in r.output
    assert f"report: {tmp_path / 'c' / 'report.html'}" in r.output
    assert "agreement with domain: NMI" in r.output

    config = tmp_path / "my.yaml"
    config.write_text("k: 3\nmerge_distance: 1.9\nlinkage: average\nmap_method: pca\n")
    r = runner.invoke(
        app,
        [
            *args,
            "--config",
            str(config),
            "--overwrite",
            "--prune",
            "heuristics.rps_doc_word_count<1",
        ],
    )
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert (
        m["config"]["k"] == 3
        and m["merge"]["distance_threshold"] == 1.9
        and m["merge"]["target_topics"] is None
    )
    assert m["prune"]["rules"] == ["heuristics.rps_doc_word_count<1"]

    r = runner.invoke(app, [*args, "--overwrite", "--prune", "heuristics.word_count<=1"])
    assert r.exit_code == 2 and "error: --prune must look like COLUMN<VALUE" in r.output
    r = runner.invoke(app, [*args, "--overwrite", "--k", "400"])
    assert r.exit_code == 2 and "error: --k 400 is more than the 40 documents" in r.output
    r = runner.invoke(app, ["embed", str(tmp_path / "nowhere"), "-o", str(tmp_path / "e2")])
    assert r.exit_code == 2 and "error:" in r.output and "manifest.json" in r.output
