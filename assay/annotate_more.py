"""More columns on a finished annotated folder, shard for shard.

``add_columns(annotated, out, raters)`` writes ``out``: every shard of ``annotated`` with
its rows, order and columns unchanged, plus each rater's columns, under the same shard
names. The row alignment that embeddings and clusters rely on holds, which re-annotating
the shards would not promise (the annotate engine re-chunks its input by ``shard_size``,
and a filtered folder's shards are shorter than that). Used by the pipeline when
``annotate.use`` names shared annotations and the recipe asks for a rater they lack, such
as a target-dependent ``dsir``.

The folder appears whole (written to ``<out>.tmp``, then renamed); a crash leaves
``annotated`` untouched and no half-written ``out``.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assay import manifest as mf
from assay.errors import AssayError, ConfigError


def add_columns(
    annotated: str | os.PathLike,
    out: str | os.PathLike,
    raters: Sequence[Any],
    *,
    text_field: str | None = None,
    batch: int = 1000,
) -> dict[str, Any]:
    """Write ``out`` (see the module docstring); return its manifest.

    ``raters``: raters of ``raters.base`` (callables adding ``<name>.<column>`` to a
    batch, with ``describe()``). A column ``annotated`` already has is an error.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from assay.shards import shard_meta, shard_name, write_shard

    annotated, out = Path(annotated), Path(out)
    if out.resolve() == annotated.resolve():
        raise ConfigError(f"add_columns writes a new folder; {out} is its input")
    am = mf.read_manifest(annotated, kind="annotations")
    field = text_field or am.get("config", {}).get("text_field", "text")
    started = time.perf_counter()
    staging = out.with_name(out.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for i, name in enumerate(am["shards"]):
        if name != shard_name(i):
            raise AssayError(f"{annotated}: shard {i} is named {name}, expected {shard_name(i)}")
        table = pq.read_table(annotated / name)
        texts = table[field].to_pylist()
        added: dict[str, list[np.ndarray]] = {}
        for start in range(0, len(texts), batch):
            part = {field: texts[start : start + batch]}
            for rater in raters:
                for key, values in rater(part).items():
                    if key != field:
                        added.setdefault(key, []).append(np.asarray(values))
        for key, parts in added.items():
            if key in table.column_names:
                raise ConfigError(f"{annotated} already has column {key!r}")
            table = table.append_column(key, pa.array(np.concatenate(parts)))
        write_shard(staging, i, table, shard_meta(annotated / name))
    manifest = mf.new_manifest(
        "annotations",
        inputs=[
            {
                "path": str((annotated / mf.MANIFEST).resolve()),
                "sha256": mf.sha256_of(annotated / mf.MANIFEST),
            }
        ],
        models=list(am.get("models", [])) + [r.describe() for r in raters],
        tokenizer=am.get("tokenizer"),
        config=am.get("config", {}),
        counts=am["counts"],
        shards=list(am["shards"]),
        columns_stored_as_json=am.get("columns_stored_as_json", []),
        timings={"wall_seconds_this_run": round(time.perf_counter() - started, 3)},
    )
    mf.write_json_atomic(staging / mf.MANIFEST, manifest)
    if out.exists():
        shutil.rmtree(out)
    os.replace(staging, out)
    return manifest
