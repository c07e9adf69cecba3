"""``assay export-merge``: many Megatron ``.bin`` + ``.idx`` prefixes into one.

A distributed or resumed export leaves one prefix per worker or per run; Megatron reads a
list of them, but one prefix per group is simpler to move, blend and check. The merge:

- copies each ``.bin`` in chunks (:data:`CHUNK` bytes at a time; no file is loaded
  whole), in the order given, so the merged ``.bin`` is the inputs back to back;
- writes the merged ``.idx`` (layout in :mod:`selector.export.megatron`) from the inputs'
  indices read through memory maps, in chunks: sequence lengths as they are, sequence
  pointers shifted by the bytes of the ``.bin`` files before, document indices shifted by
  the sequences before, so every document keeps its boundaries;
- refuses inputs whose token dtypes differ, and inputs whose recorded tokenizer differs
  (the export's ``manifest.json`` beside the prefix, or ``PREFIX.merge.json`` of an
  earlier merge: the vocabulary's size and SHA-256, else the tokenizer's name, and the
  end-of-document setting), with :class:`~assay.errors.ConfigError`;
- writes under temporary names and renames at the end (``.bin``, then ``.idx``, then
  ``OUT.merge.json``, the record of what went in), so the output is whole or absent.

Example::

    merge_prefixes(["run1/web_text_document", "run2/web_text_document"], "all/web_text_document")
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assay import manifest as mf
from assay.errors import AssayError, ConfigError
from selector.export.megatron import CODE_DTYPES, DTYPE_CODES, MAGIC, VERSION

KIND = "export-merge"
CHUNK = 16 << 20  # bytes of .bin copied at a time
ITEMS = 1 << 20  # index entries read at a time
HEADER = 34  # magic 9, version 8, dtype code 1, two counts 8 + 8
RECORD_SUFFIX = ".merge.json"


@dataclass
class Part:
    """One input prefix, its index header read and checked."""

    prefix: Path
    dtype: type
    sequences: int
    documents: int  # document-index entries (documents + 1)
    bin_bytes: int
    record: dict[str, Any] | None

    def array(self, kind: str) -> np.ndarray:
        """``lengths`` (int32), ``pointers`` or ``doc_index`` (int64), memory-mapped."""
        n, off = self.sequences, HEADER
        layout = {
            "lengths": ("<i4", n, off),
            "pointers": ("<i8", n, off + 4 * n),
            "doc_index": ("<i8", self.documents, off + 12 * n),
        }
        dtype, count, offset = layout[kind]
        if count == 0:
            return np.zeros(0, dtype=dtype)
        return np.memmap(f"{self.prefix}.idx", dtype=dtype, mode="r", offset=offset, shape=(count,))


def strip_suffix(prefix: str | os.PathLike) -> Path:
    """``x.bin`` / ``x.idx`` -> ``x``: a prefix named by one of its files."""
    p = Path(prefix)
    return p.with_suffix("") if p.suffix in (".bin", ".idx") else p


def _chunks(n: int, size: int = ITEMS) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def tokenizer_record(prefix: Path) -> dict[str, Any] | None:
    """What the prefix was tokenised with, as its export or merge recorded it; None when
    nothing beside it says (a prefix from another tool)."""
    side = Path(f"{prefix}{RECORD_SUFFIX}")
    if side.is_file():
        return json.loads(side.read_text()).get("tokenizer")
    manifest = prefix.parent / mf.MANIFEST
    if not manifest.is_file():
        return None
    m = json.loads(manifest.read_text())
    if m.get("kind") != "export" or m.get("format") != "megatron":
        return None
    if not any(g.get("path") == prefix.name for g in m.get("groups", [])):
        return None
    return {
        "name": m.get("tokenizer"),
        "append_eod": m.get("append_eod"),
        "vocabulary": m.get("vocabulary"),
    }


def read_part(prefix: str | os.PathLike) -> Part:
    """Header of ``PREFIX.idx`` checked against the file sizes (no array is loaded)."""
    prefix = strip_suffix(prefix)
    idx, bin_ = Path(f"{prefix}.idx"), Path(f"{prefix}.bin")
    for path in (idx, bin_):
        if not path.is_file():
            raise ConfigError(
                f"{path} not found",
                hint="name each prefix without .bin/.idx, e.g. out/web_text_document",
            )
    with open(idx, "rb") as f:
        head = f.read(HEADER)
    if len(head) < HEADER or head[:9] != MAGIC:
        raise AssayError(f"{idx}: not a Megatron index (magic {head[:9]!r})")
    (version,) = struct.unpack_from("<Q", head, 9)
    (code,) = struct.unpack_from("<B", head, 17)
    n_seq, n_doc = struct.unpack_from("<QQ", head, 18)
    if version != VERSION or code not in CODE_DTYPES:
        raise AssayError(f"{idx}: version {version}, dtype code {code} not understood")
    expected = HEADER + 12 * n_seq + 8 * n_doc
    size = idx.stat().st_size
    if size == expected + n_seq and n_seq:
        raise ConfigError(
            f"{idx} holds sequence modes (a multimodal index)",
            hint="export-merge merges text indices only",
        )
    if size != expected:
        raise AssayError(f"{idx}: {size} bytes, the header says {expected}: a truncated index")
    bin_bytes = bin_.stat().st_size
    return Part(prefix, CODE_DTYPES[code], n_seq, n_doc, bin_bytes, tokenizer_record(prefix))


def _check_part(part: Part) -> int:
    """Pointers inside the ``.bin``, document indices from 0 to the sequence count;
    returns the part's tokens."""
    itemsize = np.dtype(part.dtype).itemsize
    lengths, pointers = part.array("lengths"), part.array("pointers")
    tokens = 0
    for s in _chunks(part.sequences):
        ln = lengths[s].astype(np.int64)
        if (ln < 0).any() or (pointers[s] < 0).any():
            raise AssayError(f"{part.prefix}.idx: negative lengths or pointers")
        end = pointers[s] + ln * itemsize
        if end.size and int(end.max()) > part.bin_bytes:
            raise AssayError(
                f"{part.prefix}.idx points past the end of {part.prefix}.bin "
                f"({int(end.max())} > {part.bin_bytes} bytes)"
            )
        tokens += int(ln.sum())
    doc = part.array("doc_index")
    if part.documents == 0 or int(doc[0]) != 0 or int(doc[-1]) != part.sequences:
        raise AssayError(f"{part.prefix}.idx: document indices must run from 0 to {part.sequences}")
    return tokens


def _same_tokenizer(a: dict[str, Any], b: dict[str, Any]) -> bool:
    va, vb = a.get("vocabulary"), b.get("vocabulary")
    same = va == vb if va and vb else a.get("name") == b.get("name")
    return same and a.get("append_eod") == b.get("append_eod")


def check_compatible(parts: Sequence[Part], check_tokenizer: bool = True) -> dict[str, Any] | None:
    """One dtype and one recorded tokenizer across ``parts``; returns that record."""
    dtypes = {np.dtype(p.dtype).name for p in parts}
    if len(dtypes) > 1:
        listed = ", ".join(f"{p.prefix} ({np.dtype(p.dtype).name})" for p in parts)
        raise ConfigError(
            f"the prefixes store token ids in different dtypes: {listed}",
            hint="merge prefixes exported with one tokenizer (Megatron stores ids as uint16 "
            "below 65,500 vocabulary entries, int32 above)",
        )
    if not check_tokenizer:
        return None
    known = [p for p in parts if p.record is not None]
    if known and len(known) < len(parts):
        unknown = ", ".join(str(p.prefix) for p in parts if p.record is None)
        raise ConfigError(
            f"no recorded tokenizer for {unknown}: cannot check it matches the others",
            hint="merge prefixes written by assay export (manifest.json beside them), or pass "
            "--no-check-tokenizer if you know they share one vocabulary",
        )
    for p in known[1:]:
        if not _same_tokenizer(known[0].record, p.record):  # type: ignore[arg-type]
            raise ConfigError(
                f"the prefixes were tokenised differently: {known[0].prefix} "
                f"{known[0].record} vs {p.prefix} {p.record}",
                hint="token ids of different vocabularies mean different text: re-export "
                "the selections with one --tokenizer (and one --append-eod setting)",
            )
    return known[0].record if known else None


def _write_index(parts: Sequence[Part], path: Path, dtype: type) -> None:
    n_seq = sum(p.sequences for p in parts)
    n_doc = 1 + sum(p.documents - 1 for p in parts)
    with open(path, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<Q", VERSION))
        f.write(struct.pack("<B", DTYPE_CODES[dtype]))
        f.write(struct.pack("<Q", n_seq))
        f.write(struct.pack("<Q", n_doc))
        for p in parts:
            lengths = p.array("lengths")
            for s in _chunks(p.sequences):
                f.write(np.ascontiguousarray(lengths[s], dtype="<i4").tobytes())
        byte_offset = 0
        for p in parts:
            pointers = p.array("pointers")
            for s in _chunks(p.sequences):
                f.write((pointers[s].astype("<i8") + byte_offset).tobytes())
            byte_offset += p.bin_bytes
        f.write(np.zeros(1, dtype="<i8").tobytes())
        seq_offset = 0
        for p in parts:
            doc = p.array("doc_index")
            for s in _chunks(p.documents - 1):
                f.write((doc[s.start + 1 : s.stop + 1].astype("<i8") + seq_offset).tobytes())
            seq_offset += p.sequences
        f.flush()
        os.fsync(f.fileno())


def merge_prefixes(
    prefixes: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    check_tokenizer: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Concatenate Megatron prefixes into ``out`` (a prefix); returns the merge record."""
    if not prefixes:
        raise ConfigError("export-merge needs at least one input prefix")
    out = strip_suffix(out)
    parts = [read_part(p) for p in prefixes]
    names = [p.prefix.resolve() for p in parts]
    if len(set(names)) != len(names):
        raise ConfigError("a prefix is given twice", hint="name each input prefix once")
    if out.resolve() in names:
        raise ConfigError(f"-o {out} is one of the inputs", hint="write the merge elsewhere")
    targets = [Path(f"{out}{s}") for s in (".bin", ".idx", RECORD_SUFFIX)]
    if not overwrite and any(t.exists() for t in targets[:2]):
        raise ConfigError(f"{out}.bin/.idx already exist", hint="pass --overwrite to replace them")
    record = check_compatible(parts, check_tokenizer)
    tokens = [_check_part(p) for p in parts]
    dtype = parts[0].dtype
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = [t.with_name(f".{t.name}.tmp") for t in targets]
    try:
        with open(tmp[0], "wb") as dst:
            for p in parts:
                with open(f"{p.prefix}.bin", "rb") as src:
                    shutil.copyfileobj(src, dst, CHUNK)
            dst.flush()
            os.fsync(dst.fileno())
        _write_index(parts, tmp[1], dtype)
        result = mf.new_manifest(
            KIND,
            inputs=[
                {"prefix": str(p.prefix.resolve()), "docs": p.documents - 1, "tokens": t}
                for p, t in zip(parts, tokens, strict=True)
            ],
            dtype=np.dtype(dtype).name,
            tokenizer=record,
            tokenizer_checked=check_tokenizer,
            counts={"docs": sum(p.documents - 1 for p in parts), "tokens": sum(tokens)},
        )
        tmp[2].write_text(json.dumps(result, indent=2) + "\n")
        for t, final in zip(tmp, targets, strict=True):
            os.replace(t, final)
    finally:
        for t in tmp:
            t.unlink(missing_ok=True)
    return result


__all__ = ["merge_prefixes", "read_part", "strip_suffix", "tokenizer_record"]
