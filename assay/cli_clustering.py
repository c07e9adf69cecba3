"""``assay embed``, ``assay cluster`` and ``assay dedup``: thin typed commands over
``clustering``.

Registered in ``assay.cli`` with ``app.command()(embed)`` etc.; the clustering modules
(and torch, FAISS, datasketch) are imported only when a command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from assay.cli_common import fail as _fail
from assay.errors import AssayError


def embed(
    annotated: Path = typer.Argument(..., help="Annotated corpus folder (assay annotate -o)"),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder (part-NNNNN.npy + manifest)"),
    model: str = typer.Option(
        "all-minilm-l6-v2", help="Named model or a local sentence-transformers folder"
    ),
    batch_size: int = typer.Option(64, help="Texts per forward pass"),
    max_tokens: int | None = typer.Option(
        None, help="Tokens read per text (default: the model's max_seq_length, 256 for MiniLM)"
    ),
    max_chars: int | None = typer.Option(
        None, help="Characters kept before tokenising (default: 16 x the token limit)"
    ),
    text_field: str = typer.Option("text", help="Column holding the document text"),
    device: str = typer.Option("auto", help="auto | cpu | cuda[:N]"),
    dtype: str = typer.Option("auto", help="auto (bf16 on GPU, fp32 on CPU) | float32 | bfloat16"),
    overwrite: bool = typer.Option(False, help="Discard an earlier run in OUT and start over"),
    engine: str = typer.Option("local", help="local (this process) | ray (Ray Data actors)"),
    address: str | None = typer.Option(
        None, help="Ray cluster: auto | ray://HOST:10001 (default: start a local Ray)"
    ),
    concurrency: int = typer.Option(1, help="Ray: embedding actors (one shard per call)"),
    num_cpus: float = typer.Option(1.0, help="Ray: CPUs per actor"),
    num_gpus: float = typer.Option(0.0, help="Ray: GPUs per actor (1 = one per GPU)"),
) -> None:
    """Embed every document (float16, one shard per annotation shard); resumable.

    ``--engine ray`` embeds shards on a Ray cluster (``--address auto``); same output.
    """
    try:
        import functools

        from assay.errors import ConfigError
        from assay.progress import progress_printer
        from assay.ray_engine import RayConfig
        from clustering.embed import Embedder, embed_corpus

        if engine not in ("local", "ray"):
            raise ConfigError(f"--engine must be local or ray, got {engine!r}")
        ray = None
        if engine == "ray":
            ray = RayConfig(address, concurrency, num_cpus, num_gpus)
            ray.validate()
        elif address is not None:
            raise ConfigError("--address needs --engine ray")
        make_embedder = functools.partial(
            Embedder,
            model,
            device=device,
            dtype=dtype,
            batch_size=batch_size,
            max_tokens=max_tokens,
            max_chars=max_chars,
        )
        embedder = make_embedder()
        progress = progress_printer("embed")
        try:
            manifest = embed_corpus(
                annotated,
                out,
                embedder,
                text_field=text_field,
                overwrite=overwrite,
                on_progress=progress,
                ray=ray,
                make_embedder=make_embedder,
            )
        finally:
            progress.close()  # type: ignore[attr-defined]
    except AssayError as e:
        _fail(e)
        return
    counts, m = manifest["counts"], manifest["models"][0]
    typer.echo(
        f"embedded {counts['rows']:,} documents ({m['name']}, {counts['dim']}-d, "
        f"{counts['shards']} shards): {out}"
    )


def cluster(
    annotated: Path = typer.Argument(..., help="Annotated corpus folder"),
    embeddings: Path = typer.Option(..., "--embeddings", "-e", help="Folder from assay embed"),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder (shards, report, manifest)"),
    config: Path | None = typer.Option(
        None, help="YAML settings (see configs/cluster.yaml); flags override it"
    ),
    k: int | None = typer.Option(None, "--k", help="k-means clusters (default: 1000)"),
    spherical: bool | None = typer.Option(
        None, "--spherical/--euclidean", help="Cosine (default) or Euclidean k-means"
    ),
    n_iter: int | None = typer.Option(None, help="k-means iterations (default: 20)"),
    n_init: int | None = typer.Option(None, help="k-means starts, best kept (default: 1)"),
    init: str | None = typer.Option(None, help="random | k-means++ (default: random)"),
    sample_size: int | None = typer.Option(
        None, help="Documents k-means trains on (default: 256 x k)"
    ),
    seed: int | None = typer.Option(
        None, help="Seed of samples and initial centroids (default: 0)"
    ),
    gpu: str | None = typer.Option(None, help="auto | yes | no: FAISS on GPU (default: auto)"),
    prune: list[str] = typer.Option(
        [], help="Drop clusters by mean: 'COLUMN<VALUE' or 'COLUMN>VALUE' (repeatable)"
    ),
    topics: int | None = typer.Option(None, help="Merge kept clusters into N topics (default: 16)"),
    merge_distance: float | None = typer.Option(
        None, help="Merge kept centroids closer than this instead of --topics"
    ),
    linkage: str | None = typer.Option(
        None, help="ward | average | complete | single (default: ward)"
    ),
    quality_column: list[str] = typer.Option(
        [], help="Quality column(s) to report, fnmatch patterns (default: all float columns)"
    ),
    label_column: list[str] = typer.Option(
        [], help="Label column(s) whose make-up per cluster is reported (default: domain)"
    ),
    map_method: str | None = typer.Option(None, help="tsne | pca (default: tsne)"),
    map_points: int | None = typer.Option(None, help="Documents drawn on the map (default: 2000)"),
    reuse: Path | None = typer.Option(
        None,
        "--from",
        help="Earlier clusters folder: keep its centroids, pruning and topics (stable ids)",
    ),
    overwrite: bool = typer.Option(False, help="Replace an earlier clustering in OUT"),
) -> None:
    """Cluster (FAISS k-means), prune by mean quality, merge into topics, write a report."""
    try:
        from assay.progress import progress_printer
        from clustering.config import ClusterConfig
        from clustering.run import cluster_corpus

        settings = ClusterConfig.from_yaml(config) if config else ClusterConfig()
        flags: dict[str, Any] = {
            "k": k,
            "spherical": spherical,
            "n_iter": n_iter,
            "n_init": n_init,
            "init": init,
            "sample_size": sample_size,
            "seed": seed,
            "gpu": gpu,
            "prune": prune or None,
            "topics": topics,
            "merge_distance": merge_distance,
            "linkage": linkage,
            "quality_columns": quality_column or None,
            "label_columns": label_column or None,
            "map_method": map_method,
            "map_points": map_points,
        }
        settings = settings.replace(**{n: v for n, v in flags.items() if v is not None})
        progress = progress_printer("cluster")
        try:
            manifest = cluster_corpus(
                annotated,
                embeddings,
                out,
                settings,
                reuse=reuse,
                overwrite=overwrite,
                on_progress=progress,
            )
        finally:
            progress.close()  # type: ignore[attr-defined]
    except AssayError as e:
        _fail(e)
        return
    p, counts = manifest["prune"], manifest["counts"]
    typer.echo(
        f"clustered {counts['rows']:,} documents into {counts['clusters']} clusters "
        f"({p['clusters_pruned']} pruned, {p['docs_pruned']:,} docs) and "
        f"{counts['topics']} topics: {out}"
    )
    for column, a in manifest.get("agreement", {}).items():
        typer.echo(
            f"agreement with {column}: NMI {a['clusters_nmi']:.3f} (clusters), "
            f"{a['topics_nmi']:.3f} (topics)"
        )
    typer.echo(f"report: {out / 'report.html'}")


def dedup(
    annotated: Path = typer.Argument(..., help="Annotated corpus folder (assay annotate -o)"),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder (shards + manifest)"),
    threshold: float = typer.Option(0.8, help="Jaccard similarity of near duplicates"),
    num_perm: int = typer.Option(128, help="MinHash permutations per document"),
    ngram: int = typer.Option(5, help="Words per shingle"),
    seed: int = typer.Option(1, help="Seed of the MinHash permutations"),
    overwrite: bool = typer.Option(False, help="Discard an earlier run in OUT and start over"),
) -> None:
    """Near-duplicate clusters (MinHash LSH): dedup.cluster, dedup.size; resumable."""
    try:
        from assay.progress import progress_printer
        from clustering.dedup import DedupConfig, dedup_corpus

        cfg = DedupConfig(threshold=threshold, num_perm=num_perm, ngram=ngram, seed=seed)
        progress = progress_printer("dedup")
        try:
            manifest = dedup_corpus(annotated, out, cfg, overwrite=overwrite, on_progress=progress)
        finally:
            progress.close()  # type: ignore[attr-defined]
    except AssayError as e:
        _fail(e)
        return
    c = manifest["counts"]
    typer.echo(
        f"{c['docs_in_duplicate_clusters']:,} of {c['rows']:,} documents are in "
        f"{c['duplicate_clusters']:,} near-duplicate clusters ({c['duplicates']:,} beyond one "
        f"per cluster; largest {c['largest_cluster']}): {out}"
    )
    typer.echo(f"use it: assay select {annotated} --dedup {out} ...")
