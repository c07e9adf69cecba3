"""Parquet shards with atomic commit: ``part-NNNNN.parquet`` appears whole or not at all.

Each shard stores, in its Parquet key-value metadata, the input cursor after its last
record. Rows and cursor are committed by the same rename, so a run killed at any moment
resumes after the last committed shard with nothing lost and nothing repeated.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

META_KEY = b"assay"
SHARD_RE = re.compile(r"^part-(\d{5,})\.parquet$")


def shard_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def write_shard(folder: Path, index: int, table: pa.Table, meta: dict[str, Any]) -> Path:
    """Write ``table`` as shard ``index`` atomically (temp file + fsync + rename)."""
    final = folder / shard_name(index)
    tmp = folder / f".{final.name}.{os.getpid()}.tmp"
    schema_meta = dict(table.schema.metadata or {})
    schema_meta[META_KEY] = json.dumps(meta).encode()
    table = table.replace_schema_metadata(schema_meta)
    try:
        pq.write_table(table, tmp, compression="zstd")
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


def shard_meta(path: Path) -> dict[str, Any]:
    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta[META_KEY]) if META_KEY in meta else {}


def committed_shards(folder: Path) -> list[Path]:
    """Committed shards in index order; stale temp files from a killed run are removed."""
    if not folder.exists():
        return []
    for stale in folder.glob(".part-*.tmp"):
        stale.unlink(missing_ok=True)
    found = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := SHARD_RE.match(p.name)))
    for expected, (index, path) in enumerate(found):
        if index != expected:
            raise RuntimeError(f"{folder}: shard {path.name} follows a gap at {expected}")
    return [p for _, p in found]
