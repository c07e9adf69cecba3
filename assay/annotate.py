"""Annotate a corpus: stream documents, run raters, write Parquet shards + manifest.json.

The input stream is cut into shards of ``shard_size`` documents in input order. Each shard
is rated and committed atomically together with the input cursor after its last record
(see ``assay.shards``). A run killed at any moment and rerun with the same command skips
what is committed and produces exactly the rows of an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from assay import manifest as mf
from assay.corpus import Cursor, Item, Source, expand_inputs, iter_items
from assay.errors import AssayError, BadRecordError, ConfigError
from assay.records import Batch, Fields, rows_to_batch
from assay.shards import committed_shards, shard_meta, shard_name, write_shard

RUN_FILE = "_run.json"
QUARANTINE = "_quarantine"
ON_ERROR = ("raise", "quarantine")


class BatchRater(Protocol):
    """What annotate needs of a rater (``raters.base.Rater`` provides it)."""

    name: str

    def __call__(self, batch: Batch) -> dict[str, Any]: ...

    def describe(self) -> dict[str, Any]: ...


class RatingEngine(Protocol):
    """Where rater calls run when not in this process (``assay.ray_engine.RayEngine``).

    It reads the sources from ``start`` and yields every record in input order with the
    columns its raters (and token counter) added, or None for a bad record; annotate
    keeps shards, quarantine, errors, resume and the manifest exactly as locally.
    """

    rater_seconds: dict[str, float]
    expected: list[dict[str, Any]] | None
    """The driver's rater descriptions (the manifest's); the engine refuses other models."""

    def items(
        self, sources: Sequence[Source], fields: Fields, start: Cursor
    ) -> Generator[tuple[Item, dict[str, Any] | None], None, None]: ...

    def describe(self) -> dict[str, Any]: ...


@dataclass
class Progress:
    """Counters handed to a progress callback after every committed shard."""

    docs: int = 0
    tokens: int = 0
    bad: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    started: float = field(default_factory=time.perf_counter)


def _fingerprint(
    sources: Sequence[Source],
    raters: Sequence[BatchRater],
    fields: Fields,
    shard_size: int,
    on_error: str,
    tokenizer: str | None,
) -> dict[str, Any]:
    """What must match for a rerun to resume instead of starting over."""
    inputs = []
    for s in sources:
        st = s.path.stat()
        inputs.append({"path": str(s.path.resolve()), "size": st.st_size, "mtime": st.st_mtime_ns})
    return {
        "inputs": inputs,
        "raters": [r.describe() for r in raters],
        "fields": {"text": fields.text, "id": fields.id},
        "shard_size": shard_size,
        "on_error": on_error,
        "tokenizer": tokenizer,
    }


def _to_table(batch: Batch, reference: pa.Schema | None) -> tuple[pa.Table, list[str]]:
    """Arrow table of a batch; columns of mixed Python types are stored as JSON text."""
    arrays, as_json = {}, []
    for name, values in batch.items():
        try:
            arrays[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
            arrays[name] = pa.array([None if v is None else json.dumps(v) for v in values])
            as_json.append(name)
    table = pa.table(arrays)
    if reference is not None:
        # A column that is all-null in this shard takes the type it had in shard 0, so
        # the folder reads back as one dataset.
        for i, f in enumerate(table.schema):
            if pa.types.is_null(f.type) and f.name in reference.names:
                target = reference.field(f.name).type
                table = table.set_column(i, f.name, pa.nulls(len(table), target))
    return table, as_json


def _write_quarantine(out: Path, index: int, bad: list[Item], sources: Sequence[Source]) -> None:
    folder = out / QUARANTINE
    folder.mkdir(exist_ok=True)
    final = folder / f"part-{index:05d}.jsonl"
    tmp = folder / f".{final.name}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for item in bad:
            source = sources[item.source]
            row = {
                "file": str(source.path),
                source.unit: item.unit,
                "reason": item.reason,
                "raw": item.raw,
            }
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, final)


def annotate(
    inputs: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    raters: Sequence[BatchRater],
    *,
    fields: Fields = Fields(),
    shard_size: int = 2000,
    on_error: str = "raise",
    count_tokens: Callable[[list[str]], np.ndarray] | None = None,
    tokenizer_name: str | None = None,
    overwrite: bool = False,
    hash_inputs: bool = True,
    on_progress: Callable[[Progress], None] | None = None,
    engine: RatingEngine | None = None,
) -> dict[str, Any]:
    """Rate every document of ``inputs`` with ``raters``; write shards and a manifest.

    Args:
        inputs: files, globs or folders (JSONL, Parquet, HF ``save_to_disk``).
        out: output folder (``part-NNNNN.parquet``, ``manifest.json``, ``_quarantine/``).
        raters: callables that add ``<name>.<column>`` columns to a batch.
        shard_size: documents per output shard (also the unit of resume).
        on_error: ``raise`` stops at the first bad record naming file and line;
            ``quarantine`` writes it to ``_quarantine/`` with the reason and goes on.
        count_tokens: texts -> token counts for the ``n_tokens`` column (target tokenizer).
        engine: None rates in this process; a ``RayEngine`` runs reading and the rater
            calls on Ray (its actors build their own raters and token counter; ``raters``
            then only name them for the fingerprint and manifest). Rows, shards, resume
            and the manifest are the same either way, so a run started on one engine
            resumes on the other.

    Returns the manifest. Example::

        annotate(["data/demo"], "out/annotated", [HeuristicRater()])
    """
    if shard_size <= 0:
        raise ConfigError(f"--shard-size must be > 0, got {shard_size}")
    if on_error not in ON_ERROR:
        raise ConfigError(f"--on-error must be one of {', '.join(ON_ERROR)}, got {on_error!r}")
    if engine is not None and count_tokens is not None:
        raise ConfigError("with a Ray engine the token counter runs in its actors; pass it there")
    names = [r.name for r in raters]
    if len(set(names)) != len(names):
        raise ConfigError(f"--rater names must be unique, got {names}")
    out = Path(out)
    sources = expand_inputs(inputs)
    fingerprint = _fingerprint(sources, raters, fields, shard_size, on_error, tokenizer_name)
    if mf.prepare_run_folder(
        out,
        fingerprint,
        overwrite,
        what="an assay annotation run",
        holds="a run of a different command or input",
    ):
        return mf.read_manifest(out, kind="annotations")

    done = committed_shards(out)
    cursor, reference = Cursor(), None
    progress = Progress(bytes_total=sum(s.path.stat().st_size for s in sources))
    for path in done:
        meta = shard_meta(path)
        cursor = Cursor(**meta["cursor"])
        progress.docs += meta["rows"]
        progress.bad += meta["quarantined"]
        progress.tokens += meta.get("tokens", 0)
    if done:
        import pyarrow.parquet as pq

        reference = pq.read_schema(done[0])
    resumed_from = len(done)
    prior_bytes = [sum(s.path.stat().st_size for s in sources[:i]) for i in range(len(sources))]
    timings = {"read": 0.0, "rate": 0.0, "write": 0.0}
    rater_seconds = dict.fromkeys(names, 0.0)
    as_json_columns: set[str] = set()

    def flush(
        rows: list[dict[str, Any]], rated: list[dict[str, Any]], bad: list[Item], last: Item
    ) -> None:
        nonlocal reference
        index = len(done)
        batch = rows_to_batch(rows, fields) if rows else {fields.text: [], fields.id: []}
        t0 = time.perf_counter()
        tokens = 0
        if engine is not None:  # rated already, on Ray, row by row
            from assay.ray_engine import unpack_columns

            batch.update(unpack_columns(rated))
            if "n_tokens" in batch:
                tokens = int(np.asarray(batch["n_tokens"]).sum())
        else:
            if count_tokens is not None:
                counts = np.asarray(count_tokens(batch[fields.text]), dtype=np.int64)
                batch["n_tokens"] = counts
                tokens = int(counts.sum())
            for rater in raters:
                t = time.perf_counter()
                batch = rater(batch) if rows else batch
                rater_seconds[rater.name] += time.perf_counter() - t
        t1 = time.perf_counter()
        table, as_json = _to_table(batch, reference)
        as_json_columns.update(as_json)
        if bad:
            _write_quarantine(out, index, bad, sources)
        meta = {
            "cursor": {"source": last.source, "unit": last.unit},
            "rows": len(rows),
            "quarantined": len(bad),
            "tokens": tokens,
        }
        path = write_shard(out, index, table, meta)
        if reference is None:
            reference = table.schema
        done.append(path)
        timings["rate"] += t1 - t0
        timings["write"] += time.perf_counter() - t1
        progress.docs += len(rows)
        progress.bad += len(bad)
        progress.tokens += tokens
        progress.bytes_done = prior_bytes[last.source] + last.offset
        if on_progress:
            on_progress(progress)

    rows: list[dict[str, Any]] = []
    rated: list[dict[str, Any]] = []
    bad: list[Item] = []
    last: Item | None = None
    stream: Generator[tuple[Item, dict[str, Any] | None], None, None]
    if engine is None:
        stream = ((item, None) for item in iter_items(sources, fields, cursor))
    else:
        engine.expected = [r.describe() for r in raters]
        stream = engine.items(sources, fields, cursor)
    t_read = time.perf_counter()
    try:
        for item, columns in stream:
            last = item
            if item.record is None:
                if on_error == "raise":
                    source = sources[item.source]
                    raise BadRecordError(
                        str(source.path), item.unit, item.reason or "", unit=source.unit
                    )
                bad.append(item)
                continue
            rows.append(item.record)
            if columns is not None:
                rated.append(columns)
            if len(rows) == shard_size:
                timings["read"] += time.perf_counter() - t_read
                flush(rows, rated, bad, item)
                rows, rated, bad = [], [], []
                t_read = time.perf_counter()
        timings["read"] += time.perf_counter() - t_read
        if (rows or bad) and last is not None:
            flush(rows, rated, bad, last)
    finally:
        # Stop a Ray pipeline now (actors, read tasks) when we stop early on an error or
        # interrupt, rather than when the traceback holding the generator is collected.
        stream.close()
    if engine is not None:
        # On Ray "read" is the wait for rated rows; the actors report their own time.
        rater_seconds.update({k: engine.rater_seconds.get(k, 0.0) for k in names})

    manifest = mf.new_manifest(
        "annotations",
        inputs=mf.describe_inputs([s.path for s in sources], hash_files=hash_inputs),
        models=[r.describe() for r in raters],
        tokenizer=tokenizer_name,
        config={
            "text_field": fields.text,
            "id_field": fields.id,
            "shard_size": shard_size,
            "on_error": on_error,
        },
        engine=engine.describe() if engine is not None else {"engine": "local"},
        seeds={},
        counts={
            "rows": progress.docs,
            "quarantined": progress.bad,
            "tokens": progress.tokens,
            "shards": len(done),
        },
        shards=[p.name for p in done],
        columns_stored_as_json=sorted(as_json_columns),
        timings={
            "resumed_from_shard": resumed_from,
            "seconds_this_run": {k: round(v, 3) for k, v in timings.items()},
            "rater_seconds_this_run": {k: round(v, 3) for k, v in rater_seconds.items()},
            "wall_seconds_this_run": round(time.perf_counter() - progress.started, 3),
        },
        run=fingerprint,
    )
    mf.write_json_atomic(out / mf.MANIFEST, manifest)
    (out / RUN_FILE).unlink(missing_ok=True)
    return manifest


def read_annotations(folder: str | os.PathLike) -> pa.Table:
    """All shards of a finished annotation folder as one table (small corpora, tests)."""
    import pyarrow.parquet as pq

    folder = Path(folder)
    manifest = mf.read_manifest(folder, kind="annotations")
    tables = [pq.read_table(folder / name) for name in manifest["shards"]]
    if not tables:
        raise AssayError(f"{folder} has no shards")
    return pa.concat_tables(tables, promote_options="permissive")


__all__ = ["Progress", "annotate", "read_annotations", "shard_name"]
