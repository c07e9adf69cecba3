"""Row alignment between an annotated corpus and the folders derived from it.

An embeddings folder and a clusters folder hold one shard per annotation shard, row for
row (``part-00003.npy`` is the embeddings of ``part-00003.parquet``, in the same order).
Nothing else joins them, so each derived folder records, per shard, the annotation
shard's name, row count and a digest of its ids, and a later step compares them with the
annotated folder it is given before trusting the alignment.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assay import manifest as mf
from assay.errors import ManifestMismatchError

NPY_RE = re.compile(r"^part-(\d{5,})\.npy$")


@dataclass(frozen=True)
class ShardInfo:
    """What identifies one annotation shard's rows."""

    name: str
    """File name, ``part-NNNNN.parquet``."""
    rows: int
    """Number of documents in the shard."""
    ids_sha1: str
    """SHA-1 over the shard's ids in row order (each id + a NUL byte)."""


def ids_digest(ids: list[Any]) -> str:
    h = hashlib.sha1()
    for value in ids:
        h.update(str(value).encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def annotation_shards(folder: str | os.PathLike, id_field: str = "id") -> list[ShardInfo]:
    """Name, row count and id digest of every shard of a finished annotated folder."""
    import pyarrow.parquet as pq

    folder = Path(folder)
    manifest = mf.read_manifest(folder, kind="annotations")
    out = []
    for name in manifest["shards"]:
        ids = pq.read_table(folder / name, columns=[id_field]).column(id_field).to_pylist()
        out.append(ShardInfo(name, len(ids), ids_digest(ids)))
    return out


def shards_record(shards: list[ShardInfo]) -> list[dict[str, Any]]:
    return [asdict(s) for s in shards]


def check_aligned(
    expected: list[ShardInfo], recorded: list[dict[str, Any]], *, what: str, folder: Path
) -> None:
    """Refuse a derived folder whose recorded shards are not the annotated folder's."""
    if len(expected) != len(recorded):
        raise ManifestMismatchError(
            f"{folder} was made from {len(recorded)} annotation shards, "
            f"the annotated folder has {len(expected)}",
            hint=f"recompute the {what} from this annotated folder",
        )
    for e, r in zip(expected, recorded, strict=True):
        if (e.name, e.rows, e.ids_sha1) != (r.get("name"), r.get("rows"), r.get("ids_sha1")):
            field = "rows" if e.rows != r.get("rows") else "ids"
            raise ManifestMismatchError(
                f"{folder}: shard {e.name} does not match the annotated folder ({field} differ: "
                f"{r.get('rows')} rows recorded, {e.rows} found)",
                hint=f"the {what} belong to another annotation run; recompute them",
            )


def npy_name(index: int) -> str:
    return f"part-{index:05d}.npy"


def committed_npy(folder: Path) -> list[Path]:
    """Committed ``part-NNNNN.npy`` files in index order; stale temp files are removed."""
    if not folder.exists():
        return []
    for stale in folder.glob(".part-*.tmp"):
        stale.unlink(missing_ok=True)
    found = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := NPY_RE.match(p.name)))
    for expected, (index, path) in enumerate(found):
        if index != expected:
            raise ManifestMismatchError(f"{folder}: {path.name} follows a gap at {expected}")
    return [p for _, p in found]


def save_npy_atomic(path: Path, array: np.ndarray) -> None:
    """``np.save`` to a temp file, fsync, rename: the shard appears whole or not at all."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.save(f, array)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_embeddings(folder: str | os.PathLike) -> tuple[dict[str, Any], list[np.ndarray]]:
    """An embeddings folder's manifest and its shards, memory-mapped (read-only)."""
    folder = Path(folder)
    manifest = mf.read_manifest(folder, kind="embeddings")
    arrays = [np.load(folder / s["file"], mmap_mode="r") for s in manifest["shards"]]
    for s, a in zip(manifest["shards"], arrays, strict=True):
        if a.shape[0] != s["rows"]:
            raise ManifestMismatchError(
                f"{folder / s['file']} has {a.shape[0]} rows, its manifest says {s['rows']}"
            )
    return manifest, arrays


def gather_rows(
    arrays: list[np.ndarray], rows: np.ndarray, offsets: np.ndarray | None = None
) -> np.ndarray:
    """float32 copy of the given global rows, in the order given, from row-aligned shard
    arrays (memory-mapped ``.npy`` files); ``offsets``: each shard's first global row."""
    if offsets is None:
        offsets = np.r_[0, np.cumsum([len(a) for a in arrays])].astype(np.int64)
    out = np.empty((len(rows), arrays[0].shape[1]), dtype=np.float32)
    shard = np.searchsorted(offsets, rows, side="right") - 1
    for s in np.unique(shard):
        pick = shard == s
        out[pick] = arrays[s][rows[pick] - offsets[s]]
    return out
