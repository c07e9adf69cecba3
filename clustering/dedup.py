"""``assay dedup``: near-duplicate clusters (MinHash LSH) over an annotated corpus.

Each document gets ``dedup.cluster`` (the corpus row of the first document of its
near-duplicate cluster; its own row when it has no near-duplicate) and ``dedup.size``
(documents in the cluster). ``assay select --dedup DIR`` then keeps the best-scored
document of each cluster, so the token budget is not spent twice on one text.

Why a pass of its own, and not a rater inside ``assay annotate``: a document's cluster
depends on the whole corpus (a later document can join an earlier one's cluster and
change its size), while a rater sees one shard and must give the same answer wherever
it runs (``annotate``, Ray actors, the HTTP service). A rater holding an LSH index built
over the shards in order could name the earlier document a new one repeats, but not the
final cluster sizes, would have to checkpoint its index with every shard, and could
not run on Ray. So, as datatrove's MinHash stages and NeMo Curator's fuzzy dedup do:

1. **signatures**, streamed shard by shard: word 5-gram shingles, 128-slot datasketch
   MinHash; one ``signatures/part-NNNNN.npy`` per annotation shard, committed
   atomically, so an interrupted run resumes after the last finished shard;
2. **LSH**: the signature files are read (memory-mapped) into one 64-bit key per
   (document, band); documents sharing a key in any band are candidates, kept when
   their signatures agree on at least ``threshold`` of the slots (estimated Jaccard);
3. **clusters**: connected components of the kept pairs (scipy; datatrove's stage 3
   builds the same with union-find); ``part-NNNNN.parquet`` (``id``, ``dedup.cluster``,
   ``dedup.size``) per annotation shard, row-aligned, then ``manifest.json``.

Memory: one shard's text at a time for (1); ``8 x bands + ~40`` bytes per document for
(2)-(3). Defaults (word 5-grams, Jaccard 0.8, 128 permutations, seed 1): datatrove's
``MinhashConfig`` uses word 5-grams and seed 1; 0.8 is the Jaccard threshold of NeMo
Curator's fuzzy deduplication (``FuzzyDuplicatesConfig.jaccard_threshold``, which also
verifies candidates, its ``false_positive_check``); 128 is datasketch's default
``num_perm``, and bands x rows (9 x 13 at 0.8) come from datasketch's ``MinHashLSH``
optimiser. A document without a word has no shingle and stays a cluster of its own
(counted as ``no_shingles``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assay import manifest as mf
from assay.annotate import Progress
from assay.errors import ConfigError, ManifestMismatchError
from clustering.aligned import (
    annotation_shards,
    check_aligned,
    committed_npy,
    npy_name,
    save_npy_atomic,
    shards_record,
)
from clustering.minhash import (
    EMPTY,
    band_keys,
    candidate_pairs,
    components,
    lsh_params,
    shingles,
    signatures,
    similarity,
)

KIND = "dedup"
SIGNATURES = "signatures"
COLUMNS = ("dedup.cluster", "dedup.size")


@dataclass(frozen=True)
class DedupConfig:
    """Settings of ``assay dedup`` (the CLI flags)."""

    threshold: float = 0.8
    """Estimated Jaccard similarity of two documents' shingle sets at which they are near
    duplicates (``--threshold``), in (0, 1)."""
    num_perm: int = 128
    """MinHash permutations (signature slots) per document (``--num-perm``)."""
    ngram: int = 5
    """Words per shingle (``--ngram``)."""
    seed: int = 1
    """Seed of datasketch's permutations (``--seed``)."""

    def __post_init__(self) -> None:
        if not (0.0 < self.threshold < 1.0):
            raise ConfigError(f"--threshold must be in (0, 1), got {self.threshold}")
        if not isinstance(self.num_perm, int) or not 2 <= self.num_perm <= 1024:
            raise ConfigError(f"--num-perm must be an integer in [2, 1024], got {self.num_perm}")
        if not isinstance(self.ngram, int) or self.ngram < 1:
            raise ConfigError(f"--ngram must be an integer >= 1, got {self.ngram}")
        lsh_params(self.threshold, self.num_perm)  # a banding must exist for the pair


def dedup_corpus(
    annotated: str | os.PathLike,
    out: str | os.PathLike,
    cfg: DedupConfig = DedupConfig(),
    *,
    overwrite: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
) -> dict[str, Any]:
    """Near-duplicate clusters of an annotated folder (see the module docstring).

    Returns the manifest. Example::

        dedup_corpus("out/annotated", "out/dedup", DedupConfig(threshold=0.8))
    """
    import importlib.metadata

    import pyarrow.parquet as pq

    annotated, out = Path(annotated), Path(out)
    ann_manifest = mf.read_manifest(annotated, kind="annotations")
    text_field = ann_manifest.get("config", {}).get("text_field", "text")
    id_field = ann_manifest.get("config", {}).get("id_field", "id")
    shards = annotation_shards(annotated, id_field)
    bands, rows = lsh_params(cfg.threshold, cfg.num_perm)
    fingerprint = {
        "annotations": str(annotated.resolve()),
        "shards": shards_record(shards),
        "config": asdict(cfg),
        "datasketch": importlib.metadata.version("datasketch"),
        "hash": "crc32",
        "text_field": text_field,
    }
    if mf.prepare_run_folder(
        out, fingerprint, overwrite, what="an assay dedup run", holds="a dedup of another input"
    ):
        return mf.read_manifest(out, kind=KIND)
    t0 = time.perf_counter()
    sig_dir = out / SIGNATURES
    sig_dir.mkdir(exist_ok=True)
    done = committed_npy(sig_dir)
    if len(done) > len(shards):
        raise ManifestMismatchError(f"{sig_dir} holds more shards than {annotated}")
    progress = Progress(bytes_total=sum(s.rows for s in shards))
    progress.docs = progress.bytes_done = sum(s.rows for s in shards[: len(done)])
    resumed_from = len(done)
    has_tokens = bool(shards) and "n_tokens" in pq.read_schema(annotated / shards[0].name).names
    for index in range(len(done), len(shards)):
        columns = [text_field, "n_tokens"] if has_tokens else [text_field]
        table = pq.read_table(annotated / shards[index].name, columns=columns)
        texts = table.column(text_field).to_pylist()
        if has_tokens:  # for the progress line only
            progress.tokens += int(np.asarray(table.column("n_tokens")).sum())
        sig = signatures((shingles(t, cfg.ngram) for t in texts), cfg.num_perm, cfg.seed)
        save_npy_atomic(sig_dir / npy_name(index), sig)
        progress.docs += len(texts)
        progress.bytes_done = progress.docs
        if on_progress:
            on_progress(progress)
    t_sig = time.perf_counter() - t0

    arrays = [np.load(sig_dir / npy_name(i), mmap_mode="r") for i in range(len(shards))]
    for a, s in zip(arrays, shards, strict=True):
        if a.shape != (s.rows, cfg.num_perm):
            raise ManifestMismatchError(
                f"{sig_dir}: signatures of {s.name} have shape {a.shape}, "
                f"expected ({s.rows}, {cfg.num_perm})",
                hint="rerun with --overwrite",
            )
    cluster, size, found, _ = cluster_signatures(arrays, cfg.threshold, bands, rows)
    t_lsh = time.perf_counter() - t0 - t_sig

    import pyarrow as pa

    from assay.shards import write_shard

    offset = 0
    for index, s in enumerate(shards):
        ids = pq.read_table(annotated / s.name, columns=[id_field]).column(id_field)
        part = pa.table(
            {
                id_field: ids,
                "dedup.cluster": pa.array(cluster[offset : offset + s.rows], pa.int64()),
                "dedup.size": pa.array(size[offset : offset + s.rows], pa.int64()),
            }
        )
        write_shard(out, index, part, {"rows": s.rows})
        offset += s.rows
    n = int(size.size)
    in_dupes = size > 1
    manifest = mf.new_manifest(
        KIND,
        annotations={
            "path": str(annotated.resolve()),
            "manifest_sha256": mf.sha256_of(annotated / mf.MANIFEST),
            "rows": n,
        },
        config={**asdict(cfg), "bands": bands, "rows_per_band": rows, "scheme": "affine32"},
        method={
            "shingles": f"word {cfg.ngram}-grams of lower-cased \\w+ words",
            "minhash": f"datasketch {fingerprint['datasketch']} MinHash (CRC-32, affine32)",
            "lsh": f"{bands} bands x {rows} rows; candidates kept at estimated "
            f"Jaccard >= {cfg.threshold}",
            "clusters": "connected components; cluster = first row (corpus order)",
        },
        counts={
            "rows": n,
            "shards": len(shards),
            "no_shingles": found["no_shingles"],
            "candidate_pairs": found["candidates"],
            "verified_pairs": found["verified"],
            "duplicate_clusters": int(np.unique(cluster[in_dupes]).size),
            "docs_in_duplicate_clusters": int(in_dupes.sum()),
            "duplicates": int(in_dupes.sum() - np.unique(cluster[in_dupes]).size),
            "largest_cluster": int(size.max()) if n else 0,
        },
        columns=list(COLUMNS),
        shards=shards_record(shards),
        timings={
            "resumed_from_shard": resumed_from,
            "signature_seconds_this_run": round(t_sig, 3),
            "lsh_seconds": round(t_lsh, 3),
            "total_seconds_this_run": round(time.perf_counter() - t0, 3),
        },
        run=fingerprint,
    )
    mf.write_json_atomic(out / mf.MANIFEST, manifest)
    (out / mf.RUN_FILE).unlink(missing_ok=True)
    return manifest


def cluster_signatures(
    arrays: list[np.ndarray], threshold: float, bands: int, rows: int
) -> tuple[np.ndarray, np.ndarray, dict[str, int], tuple[np.ndarray, np.ndarray]]:
    """``(cluster, size, counts, (a, b))`` over the row-aligned signature shards: the LSH
    candidates, verified by signature agreement >= ``threshold``, joined into connected
    components; ``(a, b)`` are the verified pairs (global rows)."""
    n = sum(len(a) for a in arrays)
    keys = np.empty((n, bands), dtype=np.uint64)
    empty = np.empty(n, dtype=bool)
    offset = 0
    for a in arrays:  # one shard in memory at a time
        keys[offset : offset + len(a)] = band_keys(a, bands, rows)
        empty[offset : offset + len(a)] = (a == EMPTY).all(axis=1)
        offset += len(a)
    pairs = [candidate_pairs(keys[:, j]) for j in range(bands)]
    del keys
    a = np.concatenate([p[0] for p in pairs]) if pairs else np.empty(0, np.int64)
    b = np.concatenate([p[1] for p in pairs]) if pairs else np.empty(0, np.int64)
    if a.size:
        ab = np.unique(np.sort(np.stack([a, b], axis=1), axis=1), axis=0)
        a, b = ab[:, 0], ab[:, 1]
    candidates = int(a.size)
    keep = ~(empty[a] | empty[b])
    a, b = a[keep], b[keep]
    if a.size:
        offsets = np.r_[0, np.cumsum([len(x) for x in arrays])].astype(np.int64)
        sim = np.empty(a.size)
        for lo in range(0, a.size, 65536):  # bounded memory for many candidates
            hi = lo + 65536
            sa, sb = _gather(arrays, a[lo:hi], offsets), _gather(arrays, b[lo:hi], offsets)
            sim[lo:hi] = similarity(sa, sb)
        a, b = a[sim >= threshold], b[sim >= threshold]
    cluster, size = components(n, a, b)
    counts = {"no_shingles": int(empty.sum()), "candidates": candidates, "verified": int(a.size)}
    return cluster, size, counts, (a, b)


def _gather(arrays: list[np.ndarray], rows: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Signature rows (``uint32``) by global row, from the memory-mapped shards."""
    out = np.empty((rows.size, arrays[0].shape[1]), dtype=np.uint32)
    shard = np.searchsorted(offsets, rows, side="right") - 1
    for s in np.unique(shard):
        pick = shard == s
        out[pick] = arrays[s][rows[pick] - offsets[s]]
    return out


def dedup_columns(annotated: Path, folder: Path) -> dict[str, np.ndarray]:
    """``dedup.cluster`` and ``dedup.size`` of a dedup folder, after checking that it was
    made from ``annotated`` (same shards, rows and ids)."""
    import pyarrow.parquet as pq

    manifest = mf.read_manifest(folder, kind=KIND)
    ann = mf.read_manifest(annotated, kind="annotations")
    shards = annotation_shards(annotated, ann.get("config", {}).get("id_field", "id"))
    check_aligned(shards, manifest["shards"], what="dedup clusters", folder=folder)
    parts = [pq.read_table(folder / s.name, columns=list(COLUMNS)) for s in shards]
    return {c: np.concatenate([p.column(c).to_numpy() for p in parts]) for c in COLUMNS}


__all__ = ["COLUMNS", "KIND", "DedupConfig", "cluster_signatures", "dedup_columns", "dedup_corpus"]
