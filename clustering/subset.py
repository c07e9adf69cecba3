"""A finished annotated folder (and its row-aligned embeddings) without some documents.

Held-out evaluation text must not be in the pool a selection draws from. Annotating and
embedding are the slow steps, so rather than redo them per held-out set,
:func:`subset_folders` writes copies of both folders with the given ids left out: every
shard filtered row for row (a shard left empty is dropped from both), the manifests
rewritten with the new counts, shards, id digests and a ``subset`` record (source folder,
its manifest's sha256, how many rows were removed). The copies are ordinary finished
folders: ``assay cluster``, ``assay mix search``, the influence step and ``assay select``
read them as they read any other, and their alignment checks hold.

    from clustering.subset import subset_folders
    subset_folders("out/annotated", "out/embeddings", "out/eval-free", exclude={"wiki-00042"})
"""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from assay import manifest as mf
from assay.errors import ConfigError
from clustering.aligned import ids_digest, load_embeddings, save_npy_atomic

ANNOTATED, EMBEDDINGS = "annotated", "embeddings"  # subfolders of ``out``


def subset_folders(
    annotated: str | os.PathLike,
    embeddings: str | os.PathLike | None,
    out: str | os.PathLike,
    exclude: Iterable[str],
    *,
    id_field: str = "id",
) -> dict[str, Any]:
    """Write ``out/annotated`` (and ``out/embeddings`` when ``embeddings`` is given)
    without the documents whose id is in ``exclude``; returns the counts.

    ``out`` is replaced if it exists (it is derived data). Ids in ``exclude`` that the
    folder does not hold are counted (``not_found``), not an error: a held-out set is
    often sampled from a larger corpus than the pool.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    annotated, out = Path(annotated), Path(out)
    drop = {str(i) for i in exclude}
    src = mf.read_manifest(annotated, kind="annotations")
    emb_manifest, arrays = load_embeddings(embeddings) if embeddings is not None else (None, [])
    if emb_manifest is not None and [s["name"] for s in emb_manifest["shards"]] != src["shards"]:
        raise ConfigError(
            f"{embeddings} is not row-aligned with {annotated} (other shards)",
            hint="give the embeddings folder made from this annotated folder",
        )
    if out.exists():
        shutil.rmtree(out)
    ann_out = out / ANNOTATED
    ann_out.mkdir(parents=True)
    kept_shards: list[str] = []
    emb_shards: list[dict[str, Any]] = []
    rows = tokens = removed = 0
    found: set[str] = set()
    drop_array = pa.array(sorted(drop), type=pa.string())
    for k, name in enumerate(src["shards"]):
        table = pq.read_table(annotated / name)
        ids = table.column(id_field).cast("string")
        mask = pc.is_in(ids, value_set=drop_array)
        hit = mask.to_numpy(zero_copy_only=False)
        found.update(ids.filter(mask).to_pylist())
        keep = ~hit
        removed += int(hit.sum())
        if not keep.any():
            continue
        part = table.filter(keep)
        pq.write_table(part, ann_out / name)
        kept_shards.append(name)
        rows += part.num_rows
        if "n_tokens" in part.column_names:
            tokens += int(pc.sum(part.column("n_tokens")).as_py() or 0)
        if emb_manifest is not None:
            record = emb_manifest["shards"][k]
            emb_out = out / EMBEDDINGS
            emb_out.mkdir(exist_ok=True)
            save_npy_atomic(emb_out / record["file"], np.asarray(arrays[k])[keep])
            emb_shards.append({
                **record, "rows": part.num_rows,
                "ids_sha1": ids_digest(part.column(id_field).to_pylist()),
            })  # fmt: skip
    if not kept_shards:
        raise ConfigError(f"excluding {len(drop):,} ids leaves nothing of {annotated}")
    subset = {
        "of": str(annotated.resolve()),
        "of_manifest_sha256": mf.sha256_of(annotated / mf.MANIFEST),
        "excluded_ids": len(drop),
        "rows_removed": removed,
        "not_found": len(drop - found),
    }
    manifest = copy.deepcopy(src)
    manifest.pop("run", None)  # a resume fingerprint of the source run: not this folder's
    manifest["shards"] = kept_shards
    manifest["counts"] = {**src["counts"], "rows": rows, "shards": len(kept_shards)}
    if "tokens" in src["counts"]:
        manifest["counts"]["tokens"] = tokens
    manifest["subset"] = subset
    mf.write_json_atomic(ann_out / mf.MANIFEST, manifest)
    if emb_manifest is not None:
        em = copy.deepcopy(emb_manifest)
        em.pop("run", None)
        em["annotations"] = {
            "path": str(ann_out.resolve()),
            "manifest_sha256": mf.sha256_of(ann_out / mf.MANIFEST),
            "rows": rows,
        }
        em["shards"] = emb_shards
        em["counts"] = {**emb_manifest["counts"], "rows": rows, "shards": len(emb_shards)}
        em["subset"] = {**subset, "of": str(Path(embeddings).resolve())}  # type: ignore[arg-type]
        mf.write_json_atomic(out / EMBEDDINGS / mf.MANIFEST, em)
    return {"rows": rows, "rows_removed": removed, "shards": len(kept_shards), **subset}


__all__ = ["ANNOTATED", "EMBEDDINGS", "subset_folders"]
