"""``assay cluster``: k-means over an embedded corpus, CLIMB prune + merge, a report.

Steps, each recorded in the manifest with its settings, counts and time:

1. check that the embeddings belong to the annotated folder (shards, rows, id digests);
2. k-means (FAISS) on a seeded sample of the embeddings — or, with ``reuse``, the frozen
   centroids of an earlier clusters folder, so that cluster ids stay stable as the
   corpus grows;
3. assign every document, shard by shard, while accumulating per-cluster sizes (docs,
   tokens), quality means and spreads, label make-up, and samples for terms, central
   documents and the map (memory: per-cluster tables, never a copy of the corpus);
4. prune clusters by mean quality (rules ``COLUMN<VALUE``), reported per cluster;
5. merge the kept centroids into topics (agglomerative, by count or distance);
6. write ``part-NNNNN.parquet`` (one per annotation shard, row for row), ``centroids.npy``,
   ``clusters.json``, ``report.json``, ``report.html`` and ``manifest.json``.

The output shards hold only ``id``, ``cluster``, ``cluster.distance``, ``cluster.topic``
and ``cluster.pruned``: the annotation shards already hold the text and scores, and a
thin, row-aligned attribute folder (as Dolma's attribute files) costs almost nothing to
write or read, while a copy of the text would double the corpus on disk for every
clustering tried. Downstream steps read both folders shard by shard (same index, same
row order; ``id`` is there to check it).
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from assay import manifest as mf
from assay.annotate import Progress
from assay.errors import AssayError, ConfigError, ManifestMismatchError
from clustering.aligned import (
    annotation_shards,
    check_aligned,
    gather_rows,
    load_embeddings,
    shards_record,
)
from clustering.config import ClusterConfig
from clustering.kmeans import KMeans, import_faiss
from clustering.prune_merge import PruneRule, merge_centroids, prune_clusters
from clustering.stats import ClusterStats, LabelCounts, SmallestPerGroup

RUN_FILE = "_run.json"
WORK = "_work"
SKIP_COLUMNS = ("scored_fraction", "n_tokens")
MODEL_KEYS = ("weights_sha256", "dim", "normalize", "max_seq_length")


def _prepare_out(out: Path, overwrite: bool) -> None:
    ours = (out / RUN_FILE).exists() or (out / mf.MANIFEST).exists()
    if out.exists() and any(out.iterdir()):
        if not ours:
            raise ManifestMismatchError(
                f"output folder {out} exists, is not empty and is not an assay clusters folder",
                hint="choose another -o (assay never deletes a folder it did not write)",
            )
        if not overwrite:
            raise ManifestMismatchError(
                f"{out} already holds a clustering", hint="pass --overwrite to replace it"
            )
        shutil.rmtree(out)
    (out / WORK).mkdir(parents=True, exist_ok=True)
    mf.write_json_atomic(out / RUN_FILE, {"started": time.time()})


def _columns(annotated: Path, first_shard: str, config: ClusterConfig) -> dict[str, list[str]]:
    """Quality (numeric), token and label columns to read, from the first shard's schema."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(annotated / first_shard)
    numeric = [
        f.name for f in schema if pa.types.is_floating(f.type) or pa.types.is_integer(f.type)
    ]
    numeric = [c for c in numeric if not c.startswith("cluster")]
    if config.quality_columns is None:
        quality = [
            f.name
            for f in schema
            if pa.types.is_floating(f.type)
            and f.name in numeric
            and f.name not in SKIP_COLUMNS
            and not f.name.endswith((".conf", ".prob"))
        ]
    else:
        quality = []
        for pattern in config.quality_columns:
            hits = [c for c in numeric if fnmatch.fnmatchcase(c, pattern) and c not in quality]
            if not hits:
                raise ConfigError(
                    f"--quality-columns pattern {pattern!r} matches no numeric column",
                    hint=f"numeric columns: {', '.join(numeric)}",
                )
            quality += hits
    for rule in config.prune:
        column = PruneRule.parse(rule).column
        if column not in numeric:
            raise ConfigError(
                f"--prune column {column!r} is not a numeric annotation column",
                hint=f"numeric columns: {', '.join(numeric)}",
            )
        if column not in quality:
            quality.append(column)
    strings = {
        f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
    }
    labels = [c for c in config.label_columns if c in strings]
    tokens = ["n_tokens"] if "n_tokens" in numeric else []
    return {"quality": quality, "labels": labels, "tokens": tokens}


def _load_reuse(reuse: Path, emb_model: dict[str, Any]) -> tuple[dict, np.ndarray, dict]:
    previous = mf.read_manifest(reuse, kind="clusters")
    old_model = previous["embeddings"]["model"]
    if any(old_model.get(k) != emb_model.get(k) for k in MODEL_KEYS):
        raise ManifestMismatchError(
            f"{reuse} was clustered on embeddings of another model "
            f"({old_model.get('name')}, {str(old_model.get('weights_sha256'))[:12]})",
            hint="embed the corpus with the same model to reuse these centroids",
        )
    centroids = np.load(reuse / "centroids.npy")
    clusters = json.loads((reuse / "clusters.json").read_text())
    return previous, centroids, clusters


def cluster_corpus(
    annotated: str | os.PathLike,
    embeddings: str | os.PathLike,
    out: str | os.PathLike,
    config: ClusterConfig | None = None,
    *,
    reuse: str | os.PathLike | None = None,
    overwrite: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
) -> dict[str, Any]:
    """Cluster, prune, merge and report; returns the manifest.

    ``reuse``: an earlier clusters folder whose centroids, prune decisions and topics are
    kept as they were (new documents are assigned to them); ``config``'s k, prune and merge
    settings are then not used.

    Example::

        cluster_corpus("out/annotated", "out/embeddings", "out/clusters",
                       ClusterConfig(k=64, topics=12))
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from assay.shards import write_shard
    from clustering import report as rp

    config = (config or ClusterConfig()).validate()
    annotated, embeddings, out = Path(annotated), Path(embeddings), Path(out)
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str, t0: float) -> float:
        now = time.perf_counter()
        timings[name] = round(now - t0, 3)
        return now

    ann_manifest = mf.read_manifest(annotated, kind="annotations")
    emb_manifest, arrays = load_embeddings(embeddings)
    shards = annotation_shards(annotated)
    check_aligned(shards, emb_manifest["shards"], what="embeddings", folder=embeddings)
    emb_model = emb_manifest["models"][0]
    n_docs = sum(s.rows for s in shards)
    if n_docs == 0:
        raise AssayError(f"{annotated} holds no documents to cluster")
    offsets = np.r_[0, np.cumsum([s.rows for s in shards])].astype(np.int64)
    previous = None
    if reuse is not None:
        previous, centroids, prev_clusters = _load_reuse(Path(reuse), emb_model)
    columns = _columns(annotated, shards[0].name, config)
    if previous is None and config.k > n_docs:
        raise ConfigError(
            f"--k {config.k} is more than the {n_docs} documents to cluster",
            hint="choose k well below the number of documents (e.g. documents / 100)",
        )
    _prepare_out(out, overwrite)
    t = lap("check_inputs", started)

    # 2. k-means: train on a seeded sample, or take frozen centroids
    if previous is None:
        km = KMeans(
            config.k,
            spherical=config.spherical,
            n_iter=config.n_iter,
            n_init=config.n_init,
            init=config.init,
            sample_size=config.sample_size,
            seed=config.seed,
            gpu=config.gpu,
        )
        train_rows = km.train_rows(n_docs)
        km.fit_sample(gather_rows(arrays, train_rows, offsets))
        kmeans_info = {
            "k": config.k,
            "spherical": config.spherical,
            "n_iter": config.n_iter,
            "n_init": config.n_init,
            "init": config.init,
            "train_rows": len(train_rows),
            "seed": config.seed,
            "gpu": km.gpu_,
            "objective": km.objective_,
            "backend": "faiss.Kmeans",
            "faiss_openblas_coretype": getattr(import_faiss(), "assay_openblas_coretype", None),
        }
    else:
        spherical = previous["kmeans"]["spherical"]
        km = KMeans.from_centroids(centroids, spherical=spherical, gpu=config.gpu)
        kmeans_info = {**previous["kmeans"], "frozen_from": str(Path(reuse).resolve())}
    k = km.centroids_.shape[0]
    t = lap("kmeans_train", t)

    # 3. assign every document, accumulate statistics and samples
    stats = ClusterStats(k, columns["quality"])
    labels_of = {c: LabelCounts(k) for c in columns["labels"]}
    term_sample = SmallestPerGroup(config.terms_docs)
    central = SmallestPerGroup(config.representatives)
    map_sample = SmallestPerGroup(config.map_points)
    read_cols = columns["quality"] + columns["tokens"] + columns["labels"]
    progress = Progress(bytes_total=n_docs)
    for i, shard in enumerate(shards):
        labels, dist = km.assign(arrays[i])
        np.save(out / WORK / f"labels-{i:05d}.npy", labels)
        np.save(out / WORK / f"dist-{i:05d}.npy", dist)
        table = pq.read_table(annotated / shard.name, columns=read_cols)
        values = {c: table.column(c).to_numpy(zero_copy_only=False) for c in columns["quality"]}
        tokens = table.column("n_tokens").to_numpy() if columns["tokens"] else None
        stats.add(labels, values, tokens)
        for c, counts in labels_of.items():
            counts.add(labels, table.column(c).to_pylist())
        rows = offsets[i] + np.arange(shard.rows)
        rng = np.random.default_rng([config.seed, i])
        term_sample.add(labels, rng.random(shard.rows), rows)
        central.add(labels, dist, rows)
        map_sample.add(np.zeros(shard.rows, dtype=np.int64), rng.random(shard.rows), rows)
        progress.docs += shard.rows
        progress.bytes_done = progress.docs
        progress.tokens += int(tokens.sum()) if tokens is not None else 0
        if on_progress:
            on_progress(progress)
    t = lap("assign", t)

    # 4-5. prune, merge (or keep the frozen decisions)
    sizes = stats.tokens if columns["tokens"] else stats.docs
    if previous is None:
        rules = [PruneRule.parse(r) for r in config.prune]
        means = {c: stats.mean(c) for c in columns["quality"]}
        pruned, reasons = prune_clusters(means, rules)
        kept = np.flatnonzero(~pruned)
        if len(kept) == 0:
            raise AssayError(
                f"every one of the {k} clusters was pruned by {', '.join(config.prune)}",
                hint="lower the --prune threshold(s); clusters.json is not written",
            )
        topic_of = np.full(k, -1, dtype=np.int32)
        topic_of[kept] = merge_centroids(
            km.centroids_[kept],
            n_topics=config.topics,
            distance_threshold=config.merge_distance,
            linkage=config.linkage,
            sizes=sizes[kept],
        )
        prune_info = {"rules": [str(r) for r in rules]}
        merge_info = {
            "method": "agglomerative",
            "linkage": config.linkage,
            "metric": "euclidean",
            "target_topics": config.topics,
            "distance_threshold": config.merge_distance,
        }
    else:
        old = prev_clusters["clusters"]
        pruned = np.array([not c["kept"] for c in old], dtype=bool)
        reasons = [c["pruned_reasons"] for c in old]
        topic_of = np.array([c["topic"] for c in old], dtype=np.int32)
        prune_info = {**previous["prune"], "frozen_from": str(Path(reuse).resolve())}
        merge_info = {**previous["merge"], "frozen_from": str(Path(reuse).resolve())}
    n_topics = int(topic_of.max()) + 1
    prune_info |= {
        "clusters_pruned": int(pruned.sum()),
        "clusters_kept": int((~pruned).sum()),
        "docs_pruned": int(stats.docs[pruned].sum()),
        "tokens_pruned": int(stats.tokens[pruned].sum()),
    }
    merge_info["topics"] = n_topics
    t = lap("prune_merge", t)

    # 6. output shards, row-aligned with the annotation shards
    for i, shard in enumerate(shards):
        labels = np.load(out / WORK / f"labels-{i:05d}.npy")
        dist = np.load(out / WORK / f"dist-{i:05d}.npy")
        ids = pq.read_table(annotated / shard.name, columns=["id"]).column("id")
        table = pa.table(
            {
                "id": ids,
                "cluster": pa.array(labels, pa.int32()),
                "cluster.distance": pa.array(dist, pa.float32()),
                "cluster.topic": pa.array(topic_of[labels], pa.int32()),
                "cluster.pruned": pa.array(pruned[labels], pa.bool_()),
            }
        )
        write_shard(out, i, table, {"rows": shard.rows, "annotation_shard": shard.name})
    shutil.rmtree(out / WORK)
    np.save(out / "centroids.npy", km.centroids_)
    t = lap("write_shards", t)

    # report: terms, central documents, map
    terms_rows = term_sample.rows_by_group(k)
    central_rows = central.rows_by_group(k)
    map_rows = np.sort(map_sample.rows)
    term_counts, docs = rp.scan_texts(
        annotated,
        shards,
        offsets,
        terms_rows=terms_rows,
        central=dict(zip(central.rows.tolist(), central.keys.tolist(), strict=True)),
        map_rows=map_rows,
        label_columns=columns["labels"],
    )
    t = lap("read_texts", t)
    report = rp.build_report(
        stats=stats,
        label_counts=labels_of,
        pruned=pruned,
        reasons=reasons,
        topic_of=topic_of,
        term_counts=term_counts,
        sampled=np.array([len(r) for r in terms_rows]),
        central_rows=central_rows,
        docs=docs,
        config=config,
    )
    t = lap("terms", t)
    map_vectors = gather_rows(arrays, map_rows, offsets)
    if config.spherical:  # draw the geometry k-means used: directions, not lengths
        norms = np.linalg.norm(map_vectors, axis=1, keepdims=True)
        map_vectors = map_vectors / np.maximum(norms, 1e-12)
    report["map"] = rp.build_map(
        map_vectors,
        km.predict(map_vectors),
        map_rows,
        topic_of,
        docs,
        label_columns=columns["labels"],
        method=config.map_method,
        seed=config.seed,
    )
    t = lap("map", t)
    report["summary"] |= {
        "annotations": str(annotated.resolve()),
        "embeddings": str(embeddings.resolve()),
        "model": emb_model.get("name"),
        "kmeans": {key: kmeans_info.get(key) for key in ("k", "spherical", "n_iter", "train_rows")},
        "prune": prune_info,
        "merge": merge_info,
    }
    rp.write_report(report, out)
    t = lap("write_report", t)

    clusters_json = {
        "k": k,
        "n_topics": n_topics,
        "spherical": km.spherical,
        "clusters": [
            {
                "cluster": c,
                "docs": int(stats.docs[c]),
                "tokens": int(stats.tokens[c]),
                "kept": bool(not pruned[c]),
                "pruned_reasons": reasons[c],
                "topic": int(topic_of[c]),
                "quality_mean": {
                    col: rp.finite_or_none(stats.mean(col)[c]) for col in columns["quality"]
                },
            }
            for c in range(k)
        ],
    }
    mf.write_json_atomic(out / "clusters.json", clusters_json)
    manifest = mf.new_manifest(
        "clusters",
        annotations={
            "path": str(annotated.resolve()),
            "manifest_sha256": mf.sha256_of(annotated / mf.MANIFEST),
            "rows": ann_manifest["counts"]["rows"],
        },
        embeddings={
            "path": str(embeddings.resolve()),
            "manifest_sha256": mf.sha256_of(embeddings / mf.MANIFEST),
            "model": emb_model,
        },
        config=config.to_dict(),
        seeds={"seed": config.seed},
        columns=columns,
        kmeans=kmeans_info,
        prune=prune_info,
        merge=merge_info,
        agreement=report["summary"].get("agreement", {}),
        counts={
            "rows": n_docs,
            "tokens": int(stats.tokens.sum()),
            "shards": len(shards),
            "clusters": k,
            "topics": n_topics,
        },
        shards=shards_record(shards),
        files=["centroids.npy", "clusters.json", "report.json", "report.html"],
        timings={**timings, "total": round(time.perf_counter() - started, 3)},
    )
    mf.write_json_atomic(out / mf.MANIFEST, manifest)
    (out / RUN_FILE).unlink(missing_ok=True)
    return manifest
