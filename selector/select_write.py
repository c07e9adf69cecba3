"""Writing a selection: a staged output folder, and the chosen rows as group shards.

* :func:`prepare_out` / :func:`commit_out`: the artifact is written into a staging folder
  beside ``out`` and renamed into place at the end, so a killed run leaves no
  half-written artifact (``selector.export`` writes its output the same way);
* :func:`write_groups`: the chosen rows, in corpus order, as
  ``group=<name>/part-NNNNN.parquet`` with ``select.score`` and ``select.copy`` added.

``selector.select`` writes the realised ``mixture.json`` and ``manifest.json`` beside
the group folders.
"""

from __future__ import annotations

import os
import shutil
import urllib.parse
from pathlib import Path

import numpy as np

from assay import manifest as mf
from assay.errors import AssayError, ManifestMismatchError
from selector.gumbel import Choice

KIND = "selection"
STAGING_MARK = ".assay-staging"


def prepare_out(out: Path, overwrite: bool, kind: str = KIND) -> Path:
    """Check ``out`` and return a fresh staging folder beside it: the artifact is written
    there and renamed into place by :func:`commit_out`, so a killed run leaves no
    half-written artifact in ``out``."""
    if out.exists() and any(out.iterdir()):
        try:
            ours = mf.read_manifest(out).get("kind") == kind
        except AssayError:
            ours = False
        if not ours:
            raise ManifestMismatchError(
                f"output folder {out} exists, is not empty and is not a finished {kind}",
                hint="choose another -o (assay never deletes a folder it did not write)",
            )
        if not overwrite:
            raise ManifestMismatchError(
                f"{out} already holds a {kind}", hint="pass --overwrite to replace it"
            )
    staging = out.parent / f".{out.name}.staging"
    if staging.exists():
        if not (staging / STAGING_MARK).exists():
            raise ManifestMismatchError(f"{staging} exists and was not written by assay")
        shutil.rmtree(staging)  # a killed earlier run of ours
    staging.mkdir(parents=True)
    (staging / STAGING_MARK).touch()
    return staging


def commit_out(staging: Path, out: Path) -> None:
    """Move the finished artifact into place (replacing a checked earlier one)."""
    (staging / STAGING_MARK).unlink()
    if out.exists():
        shutil.rmtree(out)  # empty, or an artifact of ours that prepare_out accepted
    os.replace(staging, out)


def group_dir(name: str) -> str:
    """Folder of a group: ``group=<name>``, percent-quoted so any name is a safe path."""
    return "group=" + urllib.parse.quote(name, safe="-_.")


def write_groups(
    annotated: Path,
    shards: list[str],
    offsets: np.ndarray,
    choice: Choice,
    group: np.ndarray,
    names: list[str],
    score: np.ndarray,
    extra: dict[str, np.ndarray],
    out: Path,
    shard_size: int,
) -> dict[str, list[str]]:
    """Selected rows, in corpus order, into ``group=<name>/part-NNNNN.parquet``.

    Each input shard is read once; a row keeps its input columns and gains
    ``select.score`` (``score`` of the row), ``select.copy`` (0 the first time it is
    chosen) and the ``extra`` columns it lacks. Returns each group's files, relative to
    ``out``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from assay.shards import write_shard

    order = np.lexsort((choice.copies, choice.rows))
    rows, copies = choice.rows[order], choice.copies[order]
    buffers: dict[int, list[pa.Table]] = {}
    written: dict[int, list[str]] = {}

    def flush(g: int) -> None:
        table = pa.concat_tables(buffers.pop(g), promote_options="permissive")
        folder = out / group_dir(names[g])
        folder.mkdir(exist_ok=True)
        index = len(written.setdefault(g, []))
        path = write_shard(folder, index, table, {"rows": table.num_rows, "group": names[g]})
        written[g].append(f"{folder.name}/{path.name}")

    for s, name in enumerate(shards):
        lo, hi = np.searchsorted(rows, [offsets[s], offsets[s + 1]])
        if lo == hi:
            continue
        table = pq.read_table(annotated / name)
        local = rows[lo:hi] - offsets[s]
        part = table.take(pa.array(local))
        part = part.append_column("select.score", pa.array(score[rows[lo:hi]], pa.float64()))
        part = part.append_column("select.copy", pa.array(copies[lo:hi], pa.int32()))
        for c, values in extra.items():
            if c not in part.column_names:
                part = part.append_column(c, pa.array(values[rows[lo:hi]]))
        g_of = group[rows[lo:hi]]
        for g in np.unique(g_of):
            buffers.setdefault(int(g), []).append(part.filter(pa.array(g_of == g)))
            if sum(t.num_rows for t in buffers[int(g)]) >= shard_size:
                flush(int(g))
    for g in list(buffers):
        flush(g)
    return {names[g]: files for g, files in sorted(written.items())}


__all__ = ["KIND", "STAGING_MARK", "commit_out", "group_dir", "prepare_out", "write_groups"]
