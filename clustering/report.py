"""The cluster report: ``report.json`` (everything, for programs) and ``report.html`` (a
self-contained page for people: no script, font or image is fetched from anywhere).

Per cluster and per topic: size in documents and tokens and their shares of the corpus,
mean and spread of every quality column, top c-TF-IDF terms, the make-up by each label
column present (e.g. ``domain``), and the documents nearest the centroid. A topic's
central documents are the most central document of each of its largest clusters; its
terms are computed from its clusters' term samples, each scaled to its cluster's size.
The 2-D map is t-SNE (or PCA) of a uniform sample of documents, coloured by topic.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from assay import manifest as mf
from clustering.config import ClusterConfig
from clustering.stats import ClusterStats, LabelCounts, nmi_from_counts

SNIPPET_CHARS = 320
TOP_LABELS = 3


def finite_or_none(value: Any, digits: int = 6) -> float | None:
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


def snippet(text: str, n: int = SNIPPET_CHARS) -> str:
    text = re.sub(r"\s+", " ", text or "").strip()
    return text if len(text) <= n else text[: n - 1].rstrip() + "…"


def _quality(stats: ClusterStats, g: int) -> dict[str, dict[str, float | None]]:
    return {
        c: {
            "mean": finite_or_none(stats.mean(c)[g]),
            "std": finite_or_none(stats.std(c)[g]),
            "n": int(stats.n[c][g]),
        }
        for c in stats.columns
    }


def _labels(counts: dict[str, np.ndarray], names: dict[str, list[str]], g: int) -> dict:
    out = {}
    for column, table in counts.items():
        row = table[g]
        total = row.sum()
        order = np.argsort(-row, kind="stable")[:TOP_LABELS]
        out[column] = [
            [names[column][j], round(float(row[j] / total), 4)] for j in order if row[j] > 0
        ]
    return out


def scan_texts(
    annotated: Path,
    shards: list[Any],
    offsets: np.ndarray,
    *,
    terms_rows: list[np.ndarray],
    central: dict[int, float],
    map_rows: np.ndarray,
    label_columns: list[str],
) -> tuple[Any, dict[int, dict[str, Any]]]:
    """One pass over the texts: term counts of each cluster's sample, and id, labels and a
    snippet of the central and map documents (texts are never all held in memory)."""
    import pyarrow.parquet as pq

    from clustering.terms import TermCounter

    counter = TermCounter()
    term_cluster = np.concatenate([np.full(len(r), c) for c, r in enumerate(terms_rows)] + [[]])
    term_rows = np.concatenate([*terms_rows, []]).astype(np.int64)
    keep = np.union1d(np.fromiter(central, dtype=np.int64, count=len(central)), map_rows)
    docs: dict[int, dict[str, Any]] = {}
    for i, shard in enumerate(shards):
        lo, hi = offsets[i], offsets[i + 1]
        mine = (term_rows >= lo) & (term_rows < hi)
        kept_here = keep[(keep >= lo) & (keep < hi)]
        if not mine.any() and not len(kept_here):
            continue
        table = pq.read_table(annotated / shard.name, columns=["id", "text", *label_columns])
        texts = table.column("text")
        rows, clusters = term_rows[mine], term_cluster[mine].astype(np.int64)
        for c in np.unique(clusters):
            local = rows[clusters == c] - lo
            counter.add(int(c), (texts[int(j)].as_py() for j in local))
        for row in kept_here.tolist():
            j = row - lo
            doc = {"id": table.column("id")[j].as_py()}
            doc |= {c: table.column(c)[j].as_py() for c in label_columns}
            if row in central:
                doc["distance"] = round(float(central[row]), 5)
                doc["snippet"] = snippet(texts[j].as_py())
            docs[row] = doc
    return counter, docs


def build_report(
    *,
    stats: ClusterStats,
    label_counts: dict[str, LabelCounts],
    pruned: np.ndarray,
    reasons: list[list[str]],
    topic_of: np.ndarray,
    term_counts: Any,
    sampled: np.ndarray,
    central_rows: list[np.ndarray],
    docs: dict[int, dict[str, Any]],
    config: ClusterConfig,
) -> dict[str, Any]:
    """The report as a JSON-ready dict (without the map; see :func:`build_map`)."""
    from scipy.sparse import csr_matrix, diags

    from clustering.terms import ctfidf_top_terms

    k = stats.k
    n_topics = int(topic_of.max()) + 1
    topic_stats = stats.grouped(topic_of, n_topics)
    corpus = stats.grouped(np.zeros(k, dtype=np.int64), 1)
    total_docs, total_tokens = max(int(stats.docs.sum()), 1), max(int(stats.tokens.sum()), 1)
    names = {c: lc.names() for c, lc in label_counts.items()}
    cluster_labels = {c: lc.counts for c, lc in label_counts.items()}
    topic_labels = {c: lc.grouped(topic_of, n_topics) for c, lc in label_counts.items()}

    vocab = term_counts.terms()
    counts = term_counts.matrix(k)
    cluster_terms = ctfidf_top_terms(counts, vocab, config.top_terms)
    scale = np.where(sampled > 0, stats.docs / np.maximum(sampled, 1), 0.0)
    kept = np.flatnonzero(topic_of >= 0)
    members = csr_matrix((np.ones(len(kept)), (topic_of[kept], kept)), shape=(n_topics, k))
    topic_terms = ctfidf_top_terms(members @ diags(scale) @ counts, vocab, config.top_terms)

    def central(rows: np.ndarray) -> list[dict[str, Any]]:
        return [docs[int(r)] for r in rows if int(r) in docs]

    clusters = []
    for c in range(k):
        clusters.append(
            {
                "cluster": c,
                "topic": int(topic_of[c]),
                "kept": bool(not pruned[c]),
                "pruned_reasons": reasons[c],
                "docs": int(stats.docs[c]),
                "tokens": int(stats.tokens[c]),
                "doc_share": round(int(stats.docs[c]) / total_docs, 6),
                "token_share": round(int(stats.tokens[c]) / total_tokens, 6),
                "quality": _quality(stats, c),
                "terms": cluster_terms[c],
                "labels": _labels(cluster_labels, names, c),
                "representatives": central(central_rows[c]),
            }
        )
    topics = []
    for t in range(n_topics):
        ids = np.flatnonzero(topic_of == t)
        by_size = ids[np.lexsort((ids, -stats.tokens[ids], -stats.docs[ids]))]
        reps = [r for c in by_size for r in central(central_rows[c][:1])]
        topics.append(
            {
                "topic": t,
                "clusters": by_size.tolist(),
                "docs": int(topic_stats.docs[t]),
                "tokens": int(topic_stats.tokens[t]),
                "doc_share": round(int(topic_stats.docs[t]) / total_docs, 6),
                "token_share": round(int(topic_stats.tokens[t]) / total_tokens, 6),
                "quality": _quality(topic_stats, t),
                "terms": topic_terms[t],
                "labels": _labels(topic_labels, names, t),
                "representatives": reps[: max(config.representatives, 1)],
            }
        )
    agreement = {
        column: {
            "clusters_nmi": round(nmi_from_counts(cluster_labels[column]), 4),
            "topics_nmi": round(nmi_from_counts(topic_labels[column]), 4),
            "note": "NMI against this column; topics count kept documents only",
        }
        for column in label_counts
    }
    summary = {
        "docs": int(stats.docs.sum()),
        "tokens": int(stats.tokens.sum()),
        "clusters": k,
        "clusters_kept": int((~pruned).sum()),
        "clusters_pruned": int(pruned.sum()),
        "docs_pruned": int(stats.docs[pruned].sum()),
        "tokens_pruned": int(stats.tokens[pruned].sum()),
        "topics": n_topics,
        "quality_columns": stats.columns,
        "corpus_quality": _quality(corpus, 0),
        "label_columns": list(label_counts),
        "agreement": agreement,
    }
    return {"summary": summary, "topics": topics, "clusters": clusters, "config": config.to_dict()}


def build_map(
    vectors: np.ndarray,
    clusters: np.ndarray,
    rows: np.ndarray,
    topic_of: np.ndarray,
    docs: dict[int, dict[str, Any]],
    *,
    label_columns: list[str],
    method: str,
    seed: int,
) -> dict[str, Any]:
    """2-D coordinates of the sampled documents, with their cluster, topic, id and labels."""
    from clustering.map2d import project_2d

    xy = project_2d(vectors, method=method, seed=seed)
    return {
        "method": method,
        "points": len(rows),
        "x": [round(float(v), 4) for v in xy[:, 0]],
        "y": [round(float(v), 4) for v in xy[:, 1]],
        "cluster": clusters.astype(int).tolist(),
        "topic": topic_of[clusters].astype(int).tolist(),
        "id": [docs.get(int(r), {}).get("id") for r in rows],
        "labels": {c: [docs.get(int(r), {}).get(c) for r in rows] for c in label_columns},
    }


def write_report(report: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` into ``out``; returns their paths."""
    from clustering.report_html import render_html

    json_path, html_path = out / "report.json", out / "report.html"
    mf.write_json_atomic(json_path, report)
    tmp = html_path.with_name(".report.html.tmp")
    tmp.write_text(render_html(report), encoding="utf-8")
    tmp.replace(html_path)
    return json_path, html_path
