"""Streaming corpus readers: JSONL (plain, .gz, .zst), Parquet, HF ``save_to_disk`` folders.

Inputs may be files, globs or folders of these. Records stream in input order, one at a
time, so memory does not grow with the corpus. Every record comes with its position
(source index, 1-based line or row), so a bad one is reported by file and line and a
resumed run can skip exactly what an earlier run already consumed.
"""

from __future__ import annotations

import glob
import gzip
import io
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from assay.errors import AssayError
from assay.records import Fields, check_record

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
COMPRESSIONS = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}


@dataclass(frozen=True)
class Source:
    """One readable input file."""

    path: Path
    kind: str  # "jsonl" | "parquet" | "arrow"
    compression: str | None = None

    @property
    def unit(self) -> str:
        return "line" if self.kind == "jsonl" else "row"


@dataclass(frozen=True)
class Cursor:
    """Position after the last consumed record: source index and its line/row number."""

    source: int = 0
    unit: int = 0


@dataclass
class Item:
    """A record read from a source: a document, or a bad record with the reason."""

    source: int
    unit: int
    record: dict[str, Any] | None
    reason: str | None = None
    raw: str | None = None
    offset: int = 0
    """Bytes of the source file consumed so far (compressed bytes for .gz/.zst); progress."""


def _classify(path: Path) -> Source | None:
    name = path.name.lower()
    compression = None
    for suffix, kind in COMPRESSIONS.items():
        if name.endswith(suffix):
            compression, name = kind, name[: -len(suffix)]
            break
    if name.endswith(JSONL_SUFFIXES):
        return Source(path, "jsonl", compression)
    if name.endswith(".parquet") and compression is None:
        return Source(path, "parquet")
    return None


def _hf_sources(folder: Path) -> list[Source]:
    if (folder / "dataset_dict.json").exists():
        splits = json.loads((folder / "dataset_dict.json").read_text()).get("splits", [])
        raise AssayError(
            f"{folder} is an HF DatasetDict with splits {splits}",
            hint=f"point at one split folder, e.g. {folder / (splits[0] if splits else 'train')}",
        )
    state = json.loads((folder / "state.json").read_text())
    files = [f["filename"] for f in state.get("_data_files", [])]
    if not files:
        raise AssayError(f"{folder}/state.json lists no data files")
    return [Source(folder / f, "arrow") for f in files]


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith((".", "_")) for part in path.relative_to(root).parts)


def expand_inputs(inputs: Sequence[str | os.PathLike]) -> list[Source]:
    """Files, globs and folders -> the ordered list of sources (sorted within each input)."""
    sources: list[Source] = []
    for given in inputs:
        text = str(given)
        if any(ch in text for ch in "*?["):
            paths = [Path(p) for p in sorted(glob.glob(text, recursive=True))]
            if not paths:
                raise AssayError(f"input glob {text!r} matches no files")
        else:
            paths = [Path(text)]
        for path in paths:
            if not path.exists():
                raise AssayError(f"input {path} does not exist")
            if path.is_dir():
                if (path / "state.json").exists() or (path / "dataset_dict.json").exists():
                    sources += _hf_sources(path)
                    continue
                found = [
                    s
                    for p in sorted(path.rglob("*"))
                    if p.is_file() and not _is_hidden(p, path) and (s := _classify(p))
                ]
                if not found:
                    raise AssayError(f"folder {path} holds no JSONL/Parquet files")
                sources += found
            else:
                source = _classify(path)
                if source is None:
                    raise AssayError(
                        f"cannot read {path}: unknown file type",
                        hint="use .jsonl/.ndjson (optionally .gz or .zst), .parquet, "
                        "or an HF save_to_disk folder",
                    )
                sources.append(source)
    if not sources:
        raise AssayError("no input files given")
    return sources


def _open_bytes(source: Source) -> tuple[BinaryIO, BinaryIO]:
    """(decompressed stream, raw file); the raw file's position measures progress."""
    raw = open(source.path, "rb")  # noqa: SIM115 (closed by the caller's with-block)
    if source.compression == "gzip":
        return gzip.GzipFile(fileobj=raw), raw  # type: ignore[return-value]
    if source.compression == "zstd":
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)
        return io.BufferedReader(reader), raw  # type: ignore[arg-type]
    return raw, raw


def _read_jsonl(source: Source, index: int, fields: Fields, skip: int) -> Iterator[Item]:
    f, raw_file = _open_bytes(source)
    with f, raw_file:
        line_no = 0
        while True:
            try:
                line = f.readline()
            except (OSError, EOFError, ValueError) as e:
                raise AssayError(
                    f"{source.path}:{line_no + 1}: file is corrupt or truncated ({e})"
                ) from e
            if not line:
                return
            line_no += 1
            if line_no <= skip or not line.strip():
                continue
            offset = raw_file.tell()
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as e:
                raw = line.decode("utf-8", "backslashreplace").rstrip("\n")
                yield Item(index, line_no, None, f"invalid UTF-8 at byte {e.start}", raw, offset)
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as e:
                yield Item(index, line_no, None, f"invalid JSON: {e}", text.rstrip("\n"), offset)
                continue
            reason = check_record(record, fields)
            if reason:
                yield Item(index, line_no, None, reason, text.rstrip("\n"), offset)
            else:
                yield Item(index, line_no, record, offset=offset)


def _check_columns(source: Source, names: Sequence[str], fields: Fields) -> None:
    if fields.text not in names:
        raise AssayError(
            f"{source.path} has no column {fields.text!r} (columns: {', '.join(names)})",
            hint="name the text column with --text-field",
        )


def _rows(
    source: Source, index: int, fields: Fields, batches, first_row: int, total_rows: int
) -> Iterator[Item]:
    row = first_row
    size = source.path.stat().st_size
    for batch in batches:
        for record in batch.to_pylist():
            row += 1
            offset = size * row // max(total_rows, 1)
            reason = check_record(record, fields)
            if reason:
                raw = json.dumps(record, default=str)[:10_000]
                yield Item(index, row, None, reason, raw, offset)
            else:
                yield Item(index, row, record, offset=offset)


def _read_parquet(source: Source, index: int, fields: Fields, skip: int) -> Iterator[Item]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(source.path)
    except (pa.ArrowException, OSError) as e:
        raise AssayError(f"{source.path}: not a readable Parquet file ({e})") from e
    _check_columns(source, pf.schema_arrow.names, fields)
    start, groups = 0, []
    for g in range(pf.num_row_groups):
        n = pf.metadata.row_group(g).num_rows
        if start + n > skip:
            groups.append(g)
        else:
            start += n  # whole row group already consumed by an earlier run
    if not groups:
        return
    try:
        batches = pf.iter_batches(batch_size=1024, row_groups=groups)
        for item in _rows(source, index, fields, batches, start, pf.metadata.num_rows):
            if item.unit > skip:
                yield item
    except pa.ArrowException as e:
        raise AssayError(f"{source.path}: corrupt Parquet data ({e})") from e


def _read_arrow(source: Source, index: int, fields: Fields, skip: int) -> Iterator[Item]:
    import pyarrow as pa

    try:
        reader = pa.ipc.open_stream(pa.memory_map(str(source.path)))
    except (pa.ArrowException, OSError) as e:
        raise AssayError(f"{source.path}: not a readable Arrow stream ({e})") from e
    _check_columns(source, reader.schema.names, fields)
    total = sum(b.num_rows for b in pa.ipc.open_stream(pa.memory_map(str(source.path))))
    for item in _rows(source, index, fields, reader, 0, total):
        if item.unit > skip:
            yield item


READERS = {"jsonl": _read_jsonl, "parquet": _read_parquet, "arrow": _read_arrow}


def iter_items(
    sources: Sequence[Source], fields: Fields = Fields(), start: Cursor = Cursor()
) -> Iterator[Item]:
    """Every record after ``start``, in order, good or bad."""
    for index in range(start.source, len(sources)):
        skip = start.unit if index == start.source else 0
        source = sources[index]
        yield from READERS[source.kind](source, index, fields, skip)


def read_documents(
    inputs: Sequence[str | os.PathLike], fields: Fields = Fields()
) -> Iterator[dict[str, Any]]:
    """Documents from inputs; the first bad record raises ``BadRecordError``."""
    from assay.errors import BadRecordError

    sources = expand_inputs(inputs)
    for item in iter_items(sources, fields):
        if item.record is None:
            source = sources[item.source]
            raise BadRecordError(str(source.path), item.unit, item.reason or "", unit=source.unit)
        yield item.record
