"""The clustering part of ``make demo``: embed the annotated demo corpus, cluster it,
write the report. ``assay.demo`` calls :func:`cluster_demo` after annotating.

k follows the corpus size (:func:`suggest_k`): CLIMB's 1,000 clusters fit hundreds of
billions of tokens; the ~6,000-document demo gets 64 (~90 documents per cluster, enough
for stable means and terms). When the annotations carry the perplexity rater's
``perplexity.nll`` (mean negative log-likelihood per token under SmolLM2-135M), clusters
whose mean is above :data:`DEMO_PRUNE_NLL` are pruned, CLIMB-style; without it nothing is
pruned (the heuristic columns are statistics of form, not a quality score to prune on).

Measured on the demo (64 clusters): the rule drops 19 clusters, every Markov-junk document
but also ~80% of the quotes and ~75% of the dictionary entries (terse text that a small LM
finds as surprising as junk), and at most 7% of any other domain. One perplexity signal,
applied per cluster, is a blunt instrument; the demo prints and the report shows exactly
what it dropped, which is the point of pruning "reported, not silent".
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from assay import manifest as mf
from assay.errors import ManifestMismatchError

DEMO_PRUNE_NLL = 4.6  # nats/token, ~perplexity 100: see the docstring and the report


def suggest_k(n_docs: int, docs_per_cluster: int = 100, k_max: int = 1000) -> int:
    """A power of two near ``n_docs / docs_per_cluster``, between 8 and ``k_max``."""
    target = max(n_docs / docs_per_cluster, 1.0)
    return int(min(k_max, max(8, 2 ** round(math.log2(target)))))


def _pruned_by(annotated: Path, clusters: Path, shards: list[str], column: str = "domain") -> str:
    import numpy as np
    import pyarrow.parquet as pq

    values, pruned = [], []
    for name in shards:
        values += pq.read_table(annotated / name, columns=[column]).column(column).to_pylist()
        pruned.append(pq.read_table(clusters / name, columns=["cluster.pruned"]).column(0))
    mask = np.concatenate([np.asarray(p.to_numpy(zero_copy_only=False)) for p in pruned])
    labels = np.array(values, dtype=object)
    shares = {v: float(mask[labels == v].mean()) for v in sorted(set(values))}
    return ", ".join(f"{v} {s:.0%}" for v, s in sorted(shares.items(), key=lambda kv: -kv[1]))


def cluster_demo(
    annotated: str | os.PathLike,
    out: str | os.PathLike,
    *,
    dtype: str = "auto",
    max_tokens: int | None = None,
) -> dict[str, Path]:
    """Embed and cluster an annotated folder; returns the paths of what it wrote.

    ``dtype="bfloat16"`` embeds ~2x faster on AMX / AVX512-BF16 CPUs (the demo's
    ``cpu_has_bf16()``); ``max_tokens`` shortens what MiniLM reads (default 256).

    Returns ``{"embeddings", "clusters", "report_html", "report_json", "manifest"}``.
    Embedding is resumable; clustering is redone each time (seconds).

    Example::

        paths = cluster_demo("out/demo/annotated", "out/demo")
        print(paths["report_html"])
    """
    import pyarrow.parquet as pq

    from assay.progress import progress_printer
    from clustering.config import ClusterConfig
    from clustering.embed import Embedder, embed_corpus
    from clustering.run import cluster_corpus

    annotated, out = Path(annotated), Path(out)
    manifest = mf.read_manifest(annotated, kind="annotations")
    embeddings, clusters = out / "embeddings", out / "clusters"
    progress = progress_printer("embed demo")
    try:
        embedder = Embedder(dtype=dtype, max_tokens=max_tokens)
        try:
            embed_corpus(annotated, embeddings, embedder, on_progress=progress)
        except ManifestMismatchError:
            # The demo owns out/demo: embeddings of an older demo run are replaced.
            print(f"{embeddings} holds embeddings of an older demo run; starting over")
            embed_corpus(annotated, embeddings, embedder, on_progress=progress, overwrite=True)
    finally:
        progress.close()  # type: ignore[attr-defined]
    schema = pq.read_schema(annotated / manifest["shards"][0])
    prune = [f"perplexity.nll>{DEMO_PRUNE_NLL}"] if "perplexity.nll" in schema.names else []
    config = ClusterConfig(k=suggest_k(manifest["counts"]["rows"]), prune=prune)
    result = cluster_corpus(annotated, embeddings, clusters, config, overwrite=True)
    p = result["prune"]
    print(
        f"\nclustered {result['counts']['rows']:,} documents: {config.k} clusters "
        f"({p['clusters_pruned']} pruned by {', '.join(p['rules']) or 'no rule'}), "
        f"{result['counts']['topics']} topics"
    )
    for column, a in result.get("agreement", {}).items():
        nmi = f"NMI {a['clusters_nmi']:.3f} clusters, {a['topics_nmi']:.3f} topics"
        print(f"agreement with {column}: {nmi}")
    if p["clusters_pruned"] and "domain" in schema.names:
        print(f"pruned share by domain: {_pruned_by(annotated, clusters, manifest['shards'])}")
    print(f"cluster report:   {(clusters / 'report.html').resolve()}")
    return {
        "embeddings": embeddings,
        "clusters": clusters,
        "report_html": clusters / "report.html",
        "report_json": clusters / "report.json",
        "manifest": clusters / mf.MANIFEST,
    }
