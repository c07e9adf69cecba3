"""clustering.subset on real demo text: held-out ids leave both folders, the copies stay
row-aligned (cluster and the pipeline's embed ``use`` accept them), nothing else is lost."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from assay import manifest as mf
from assay.annotate import annotate
from assay.errors import ConfigError
from clustering.aligned import load_embeddings
from clustering.config import ClusterConfig
from clustering.embed import Embedder, embed_corpus
from clustering.run import cluster_corpus
from clustering.subset import subset_folders


@pytest.fixture(scope="module")
def folders(tmp_path_factory, demo_records):
    from raters.heuristics import HeuristicRater

    root = tmp_path_factory.mktemp("subset")
    docs = demo_records[:90]
    (root / "in.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    annotate([root / "in.jsonl"], root / "ann", [HeuristicRater()], shard_size=30,
             hash_inputs=False)  # fmt: skip
    embed_corpus(root / "ann", root / "emb", Embedder("all-minilm-l6-v2", max_tokens=64))
    return root, docs


def _ids(folder):
    m = mf.read_manifest(folder, kind="annotations")
    return [i for s in m["shards"] for i in pq.read_table(folder / s)["id"].to_pylist()]


def test_subset_leaves_out_the_ids_and_keeps_the_rest_aligned(folders, tmp_path):
    root, docs = folders
    ids = [str(d["id"]) for d in docs]
    drop = set(ids[:30]) | {ids[45], "not-in-the-corpus"}  # a whole shard and one row
    r = subset_folders(root / "ann", root / "emb", tmp_path / "sub", drop)
    assert (r["rows"], r["rows_removed"], r["shards"], r["not_found"]) == (59, 31, 2, 1)
    kept = _ids(tmp_path / "sub" / "annotated")
    assert kept == [i for i in ids if i not in drop]  # order kept, nothing else lost
    m, arrays = load_embeddings(tmp_path / "sub" / "embeddings")
    _, full = load_embeddings(root / "emb")
    whole = np.concatenate([np.asarray(a) for a in full])
    part = np.concatenate([np.asarray(a) for a in arrays])
    keep = np.array([i not in drop for i in ids])
    np.testing.assert_array_equal(part, whole[keep])  # each vector stays with its document
    assert m["counts"]["rows"] == 59 and m["subset"]["rows_removed"] == 31
    ann = mf.read_manifest(tmp_path / "sub" / "annotated", kind="annotations")
    assert ann["counts"]["rows"] == 59 and "run" not in ann
    # the copies are ordinary finished folders: clustering accepts them as aligned
    out = cluster_corpus(tmp_path / "sub" / "annotated", tmp_path / "sub" / "embeddings",
                         tmp_path / "cl", ClusterConfig(k=3, seed=0, topics=2))  # fmt: skip
    assert out["counts"]["rows"] == 59


def test_subset_refuses_to_leave_nothing(folders, tmp_path):
    root, docs = folders
    with pytest.raises(ConfigError, match="leaves nothing"):
        subset_folders(root / "ann", None, tmp_path / "sub", {str(d["id"]) for d in docs})


def test_the_pipeline_runs_on_the_copies_through_annotate_and_embed_use(folders, tmp_path):
    from assay.pipeline import load_recipe, run_pipeline

    root, docs = folders
    drop = {str(d["id"]) for d in docs[:20]}
    subset_folders(root / "ann", root / "emb", tmp_path / "sub", drop)
    recipe = {
        "corpus": [str(root / "in.jsonl")], "out": str(tmp_path / "run"),
        "split": {"skip": True},
        "annotate": {"use": str(tmp_path / "sub" / "annotated")},
        "embed": {"use": str(tmp_path / "sub" / "embeddings")},
        "cluster": {"k": 3, "topics": 2},
        "mix": {"skip": True}, "influence": {"skip": True},
        "select": {"budget_tokens": 5_000, "score": "`heuristics.rps_doc_frac_unique_words`"},
        "export": {"skip": True},
    }  # fmt: skip
    (tmp_path / "recipe.yaml").write_text(json.dumps(recipe))
    state = run_pipeline(load_recipe(tmp_path / "recipe.yaml"), say=lambda _: None)
    assert state["steps"]["annotate"]["artifact"] == str(tmp_path / "sub" / "annotated")
    assert state["steps"]["cluster"]["summary"]["rows"] == 70
    sel = tmp_path / "run" / "selected"
    m = mf.read_manifest(sel, kind="selection")
    chosen = {i for g in m["groups"] for f in g["files"] for i in pq.read_table(sel / f)["id"].to_pylist()}  # fmt: skip
    assert chosen and not chosen & drop  # what was left out is never selected
    # a foreign embeddings folder is refused, not silently misaligned
    recipe["embed"]["use"] = str(root / "emb")
    recipe["out"] = str(tmp_path / "run2")
    (tmp_path / "recipe.yaml").write_text(json.dumps(recipe))
    with pytest.raises(Exception, match=r"annotation shards|does not match"):
        run_pipeline(load_recipe(tmp_path / "recipe.yaml"), say=lambda _: None)


def test_columns_added_to_a_subset_keep_its_shards_and_alignment(folders, tmp_path):
    """annotate.use + a rater the shared annotations lack (the pipeline's dsir): the copy
    has the same shards, rows and columns plus the new ones, and stays aligned."""
    from assay.annotate_more import add_columns
    from raters.dsir import DSIRRater

    root, docs = folders
    ids = [str(d["id"]) for d in docs]
    subset_folders(root / "ann", root / "emb", tmp_path / "sub", set(ids[3:40]))
    sub = tmp_path / "sub" / "annotated"
    (tmp_path / "target.jsonl").write_text(
        "".join(json.dumps(d) + "\n" for d in docs if d["domain"] == docs[0]["domain"])
    )
    shards = [str(sub / s) for s in mf.read_manifest(sub, kind="annotations")["shards"]]
    dsir = DSIRRater(str(tmp_path / "target.jsonl"), shards)
    m = add_columns(sub, tmp_path / "more", [dsir], batch=7)  # batches cross no shard
    before = mf.read_manifest(sub, kind="annotations")
    assert m["shards"] == before["shards"] and m["counts"] == before["counts"]
    assert [x["name"] for x in m["models"]][-1] == "dsir"
    for name in m["shards"]:
        old, new = pq.read_table(sub / name), pq.read_table(tmp_path / "more" / name)
        added = [*old.column_names, "dsir.score", "dsir.per_ngram"]
        assert new.num_rows == old.num_rows and new.column_names == added
        assert new.select(old.column_names).equals(old)
        expect = dsir.score(old["text"].to_pylist())["score"]
        np.testing.assert_allclose(new["dsir.score"].to_numpy(), expect, rtol=1e-6)
    out = cluster_corpus(tmp_path / "more", tmp_path / "sub" / "embeddings", tmp_path / "cl",
                         ClusterConfig(k=3, seed=0, topics=2))  # fmt: skip
    assert out["counts"]["rows"] == before["counts"]["rows"]
    with pytest.raises(ConfigError, match="already has column"):
        add_columns(tmp_path / "more", tmp_path / "again", [dsir])
