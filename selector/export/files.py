"""Plain file exports of a selection: JSONL and Parquet shards, HF ``datasets`` folders,
MosaicML MDS shards (when ``mosaicml-streaming`` is installed)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from assay.errors import AssayError

MDS_HINT = "pip install mosaicml-streaming (MDS export writes with its MDSWriter)"


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def write_jsonl(shards: Sequence[Path], folder: Path) -> dict[str, int]:
    """One ``part-NNNNN.jsonl`` per selection shard, same rows and columns."""
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    docs = 0
    for i, shard in enumerate(shards):
        final = folder / f"part-{i:05d}.jsonl"
        tmp = folder / f".{final.name}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            for row in pq.read_table(shard).to_pylist():
                row = {k: _jsonable(v) for k, v in row.items()}
                f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
                docs += 1
        os.replace(tmp, final)
    return {"docs": docs, "files": len(shards)}


def write_parquet(shards: Sequence[Path], folder: Path) -> dict[str, int]:
    """The selection's shards, copied byte for byte (they already are Parquet)."""
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    docs = 0
    for i, shard in enumerate(shards):
        tmp = folder / f".part-{i:05d}.parquet.tmp"
        shutil.copyfile(shard, tmp)
        os.replace(tmp, folder / f"part-{i:05d}.parquet")
        docs += pq.read_metadata(shard).num_rows
    return {"docs": docs, "files": len(shards)}


def write_hf(shards: Sequence[Path], folder: Path) -> dict[str, int]:
    """An HF ``datasets`` folder (``Dataset.save_to_disk``): ``load_from_disk`` reads it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        from datasets import Dataset
    except ImportError:  # pragma: no cover - datasets is a core dependency
        raise AssayError(
            "HF export needs the datasets package", hint="pip install datasets"
        ) from None
    from raters.hub import quiet_datasets

    quiet_datasets()  # no "Saving the dataset" bar per group
    table = pa.concat_tables([pq.read_table(s) for s in shards], promote_options="permissive")
    # The selection's own schema metadata (shard cursors) means nothing to datasets.
    table = table.replace_schema_metadata(None)
    Dataset(table).save_to_disk(str(folder))
    return {"docs": table.num_rows, "files": len(list(folder.glob("*.arrow")))}


def write_mds(shards: Sequence[Path], folder: Path) -> dict[str, int]:
    """MDS shards + ``index.json`` for ``StreamingDataset`` (``text`` and ``id``)."""
    import pyarrow.parquet as pq

    try:
        from streaming import MDSWriter
    except ImportError as e:
        raise AssayError(
            f"MDS export needs mosaicml-streaming, which cannot be imported ({e})", hint=MDS_HINT
        ) from None
    docs = 0
    columns = {"id": "str", "text": "str"}
    with MDSWriter(out=str(folder), columns=columns, compression=None) as writer:
        for shard in shards:
            for row in pq.read_table(shard, columns=["id", "text"]).to_pylist():
                writer.write({"id": str(row["id"]), "text": row["text"]})
                docs += 1
    return {"docs": docs, "files": len(list(folder.glob("shard.*.mds")))}
