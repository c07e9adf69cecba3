"""Megatron-LM / NeMo indexed datasets (``.bin`` + ``.idx``), written directly.

Layout (``megatron/core/datasets/indexed_dataset.py``, the ``MMIDIDX`` format that
``tools/preprocess_data.py`` writes and ``IndexedDataset`` reads):

``PREFIX.bin``: every document's token ids back to back, in the index's dtype.

``PREFIX.idx``, little-endian::

    b"MMIDIDX\\x00\\x00"          9-byte magic
    <Q  version = 1
    <B  dtype code (1 uint8, 2 int8, 3 int16, 4 int32, 5 int64, 6 float64, 7 float32,
        8 uint16)
    <Q  sequence count S
    <Q  document-index count D (= documents + 1: the indices start with 0)
    int32[S]  sequence lengths (tokens)
    int64[S]  sequence pointers (byte offsets into .bin)
    int64[D]  document indices: sequence index where each document ends, after a leading 0

One sequence per document here (what ``preprocess_data.py`` does without sentence
splitting), so the document indices are ``0, 1, ..., S``. Token ids are stored as uint16
when the vocabulary has fewer than 65,500 entries, int32 otherwise (Megatron's
``DType.optimal_dtype``). Megatron and NeMo read the files as ``--data-path PREFIX``.

A group's prefix is :func:`megatron_prefix` of its name, ``<stem>_text_document``; the
mixture exporter (:mod:`selector.mix_export`, ``assay mix export -f megatron | nemo``)
fills ``{group}`` of its path template with the same :func:`group_stem`, so a blend's
``data/{group}_text_document`` names the files the token export wrote.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assay.errors import AssayError, ConfigError
from selector.export.tokens import StagedWriter

MAGIC = b"MMIDIDX\x00\x00"
VERSION = 1
DTYPE_CODES: dict[type, int] = {
    np.uint8: 1,
    np.int8: 2,
    np.int16: 3,
    np.int32: 4,
    np.int64: 5,
    np.float64: 6,
    np.float32: 7,
    np.uint16: 8,
}
CODE_DTYPES = {code: dtype for dtype, code in DTYPE_CODES.items()}
SUFFIX = "_text_document"  # preprocess_data.py's name for the prefix of a "text" column


def group_stem(name: str) -> str:
    """A group's name as its prefix holds it: anything but letters, digits, ``-`` and
    ``.`` replaced by ``_``, so the prefix is one token of a ``--data-path`` list (Megatron
    splits it on whitespace) and one file name (no ``/``). Not one-to-one (``a b`` and
    ``a/b`` share ``a_b``): the exporters refuse groups whose prefixes collide."""
    return re.sub(r"[^A-Za-z0-9.-]", "_", name)


def megatron_prefix(name: str) -> str:
    """The prefix ``assay export -f megatron`` writes a group to: ``topic 3/web`` ->
    ``topic_3_web_text_document``."""
    return group_stem(name) + SUFFIX


def check_prefixes(names: Sequence[str]) -> None:
    """Refuse groups whose prefixes would be one file (``a b`` and ``a/b``)."""
    seen: dict[str, str] = {}
    for name in names:
        prefix = megatron_prefix(name)
        if prefix in seen:
            raise ConfigError(
                f"groups {seen[prefix]!r} and {name!r} would both be Megatron prefix {prefix!r}",
                hint="rename one (letters, digits, '-' and '.' are kept, the rest become '_')",
            )
        seen[prefix] = name


def token_dtype(vocab_size: int) -> type:
    """uint16 below 65,500 token ids, int32 above (as Megatron chooses)."""
    return np.uint16 if vocab_size < 65500 else np.int32


class MegatronWriter(StagedWriter):
    """Stream documents into ``PREFIX.bin``; ``close`` writes ``PREFIX.idx``.

    Both files are written under temporary names and renamed at the end, so a prefix is
    whole or absent. Example::

        with MegatronWriter("out/web_text_document", vocab_size=49152) as w:
            w.add([1, 2, 3])
    """

    def __init__(self, prefix: str | os.PathLike, vocab_size: int) -> None:
        self.prefix = Path(prefix)
        self.dtype = token_dtype(vocab_size)
        self.vocab_size = vocab_size
        self.lengths: list[int] = []
        self._tmp_bin = self.prefix.with_name(f".{self.prefix.name}.bin.tmp")
        self._bin = open(self._tmp_bin, "wb")  # noqa: SIM115 - closed in close()

    def add(self, ids: Sequence[int] | np.ndarray) -> None:
        arr = np.asarray(ids)
        if arr.size and (arr.min() < 0 or arr.max() >= self.vocab_size):
            raise AssayError(f"token id out of range [0, {self.vocab_size}) for {self.prefix.name}")
        self._bin.write(arr.astype(self.dtype).tobytes(order="C"))
        self.lengths.append(int(arr.size))

    def close(self) -> None:
        self._bin.flush()
        os.fsync(self._bin.fileno())
        self._bin.close()
        lengths = np.asarray(self.lengths, dtype=np.int32)
        itemsize = np.dtype(self.dtype).itemsize
        pointers = np.zeros(len(lengths), dtype=np.int64)
        if len(lengths) > 1:
            pointers[1:] = np.cumsum(lengths[:-1].astype(np.int64)) * itemsize
        doc_index = np.arange(len(lengths) + 1, dtype=np.int64)
        tmp_idx = self.prefix.with_name(f".{self.prefix.name}.idx.tmp")
        with open(tmp_idx, "wb") as f:
            f.write(MAGIC)
            f.write(struct.pack("<Q", VERSION))
            f.write(struct.pack("<B", DTYPE_CODES[self.dtype]))
            f.write(struct.pack("<Q", len(lengths)))
            f.write(struct.pack("<Q", len(doc_index)))
            f.write(lengths.tobytes(order="C"))
            f.write(pointers.tobytes(order="C"))
            f.write(doc_index.tobytes(order="C"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(self._tmp_bin, f"{self.prefix}.bin")
        os.replace(tmp_idx, f"{self.prefix}.idx")

    def abort(self) -> None:
        self._bin.close()
        self._tmp_bin.unlink(missing_ok=True)


@dataclass
class MegatronIndex:
    """What an ``.idx`` file holds (read by :func:`read_index`)."""

    dtype: type
    lengths: np.ndarray
    pointers: np.ndarray
    doc_index: np.ndarray


def read_index(prefix: str | os.PathLike) -> MegatronIndex:
    """Parse ``PREFIX.idx`` from the format description above (independent of the writer)."""
    path = Path(f"{prefix}.idx")
    data = path.read_bytes()
    if data[:9] != MAGIC:
        raise AssayError(f"{path}: not a Megatron index (magic {data[:9]!r})")
    (version,) = struct.unpack_from("<Q", data, 9)
    (code,) = struct.unpack_from("<B", data, 17)
    n_seq, n_doc = struct.unpack_from("<QQ", data, 18)
    if version != 1 or code not in CODE_DTYPES:
        raise AssayError(f"{path}: version {version}, dtype code {code} not understood")
    off = 34
    lengths = np.frombuffer(data, dtype="<i4", count=n_seq, offset=off)
    off += 4 * n_seq
    pointers = np.frombuffer(data, dtype="<i8", count=n_seq, offset=off)
    off += 8 * n_seq
    doc_index = np.frombuffer(data, dtype="<i8", count=n_doc, offset=off)
    return MegatronIndex(CODE_DTYPES[code], lengths, pointers, doc_index)


def read_documents(prefix: str | os.PathLike) -> Iterator[np.ndarray]:
    """Token ids of each document of ``PREFIX.bin``, through the index."""
    index = read_index(prefix)
    bin_path = Path(f"{prefix}.bin")
    empty = bin_path.stat().st_size == 0  # no tokens: numpy cannot map an empty file
    data = np.zeros(0, np.uint8) if empty else np.memmap(bin_path, dtype=np.uint8, mode="r")
    itemsize = np.dtype(index.dtype).itemsize
    for d in range(len(index.doc_index) - 1):
        first, last = index.doc_index[d], index.doc_index[d + 1]
        parts = []
        for s in range(first, last):
            start = int(index.pointers[s])
            raw = data[start : start + int(index.lengths[s]) * itemsize]
            parts.append(np.frombuffer(raw.tobytes(), dtype=index.dtype))
        yield np.concatenate(parts) if parts else np.zeros(0, dtype=index.dtype)


__all__ = [
    "SUFFIX",
    "MegatronIndex",
    "MegatronWriter",
    "check_prefixes",
    "group_stem",
    "megatron_prefix",
    "read_documents",
    "read_index",
    "token_dtype",
]
