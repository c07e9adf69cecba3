"""Reading an annotated folder for ``assay select``: columns as numpy arrays.

* :func:`read_columns`: score and group columns over all shards, in corpus order;
* :func:`cluster_columns`: ``cluster``, ``cluster.topic``, ``cluster.pruned`` from a
  clusters folder, after checking it is row-aligned with the annotated folder;
* :func:`token_counts`: each document's tokens under the target tokenizer;
* :func:`shard_offsets`: where each shard's rows start in corpus order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from assay import manifest as mf
from assay.errors import ConfigError


def read_columns(annotated: Path, shards: list[str], names: list[str]) -> dict[str, np.ndarray]:
    """``names`` over ``shards``: numbers and booleans as float64, anything else as objects.

    A column the folder lacks is a :class:`ConfigError` that lists the columns it has.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(annotated / shards[0])
    missing = [c for c in names if c not in schema.names]
    if missing:
        raise ConfigError(
            f"{annotated} has no column(s) {missing}",
            hint="columns here: " + ", ".join(schema.names),
        )
    table = pa.concat_tables([pq.read_table(annotated / s, columns=names) for s in shards])
    out = {}
    for c in names:
        col = table.column(c)
        t = col.type
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
            out[c] = col.to_numpy(zero_copy_only=False).astype(np.float64)
        else:
            out[c] = np.asarray(col.to_pylist(), dtype=object)
    return out


def cluster_columns(annotated: Path, clusters: Path) -> dict[str, np.ndarray]:
    """``cluster``, ``cluster.topic`` and ``cluster.pruned``, after checking alignment."""
    import pyarrow.parquet as pq

    from clustering.aligned import annotation_shards, check_aligned

    manifest = mf.read_manifest(clusters, kind="clusters")
    shards = annotation_shards(annotated)
    check_aligned(shards, manifest["shards"], what="clusters", folder=clusters)
    names = ["cluster", "cluster.topic", "cluster.pruned"]
    parts = [pq.read_table(clusters / s.name, columns=names) for s in shards]
    return {c: np.concatenate([p.column(c).to_numpy() for p in parts]) for c in names}


def token_counts(
    annotated: Path, manifest: dict[str, Any], shards: list[str], tokenizer: str
) -> tuple[np.ndarray, str]:
    """Token counts under ``tokenizer`` (int64), and where they came from.

    The ``n_tokens`` column when the annotation counted with the same tokenizer;
    otherwise the text is tokenized again here.
    """
    import pyarrow.parquet as pq

    if manifest.get("tokenizer") == tokenizer:
        counts = read_columns(annotated, shards, ["n_tokens"])["n_tokens"]
        return counts.astype(np.int64), f"n_tokens column ({tokenizer})"
    from raters.tokens import TokenCounter

    counter = TokenCounter(tokenizer)
    text = manifest.get("config", {}).get("text_field", "text")
    parts = [
        counter(pq.read_table(annotated / s, columns=[text]).column(text).to_pylist())
        for s in shards
    ]
    return np.concatenate(parts).astype(np.int64), f"counted ({tokenizer})"


def shard_offsets(annotated: Path, shards: list[str]) -> np.ndarray:
    """First global row of each shard, then the total (``len(shards) + 1`` values, int64);
    read from the Parquet footers only."""
    import pyarrow.parquet as pq

    rows = [int(pq.read_metadata(annotated / s).num_rows) for s in shards]
    return np.r_[0, np.cumsum(rows)].astype(np.int64)


__all__ = ["cluster_columns", "read_columns", "shard_offsets", "token_counts"]
