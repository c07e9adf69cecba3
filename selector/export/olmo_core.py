"""OLMo-core numpy token files (``.npy`` + ``.csv.gz``), written directly.

What OLMo-core 3.0 reads (``olmo_core/data/numpy_dataset.py``, ``olmo_core/data/utils.py``):

- A token file is a flat 1-D array of token ids with **no header**: it is opened with
  ``np.memmap(path, dtype=...)`` or read by byte ranges (``load_array_slice``), and its
  token count is ``file size // itemsize``. The ``.npy`` suffix is a naming convention
  (Dolma's), not ``np.save``'s format: ``np.load`` cannot read these files.
- The dtype is not stored. ``NumpyDatasetConfig.get_dtype`` takes the explicit ``dtype``
  or else the smallest of uint8, uint16, uint32, uint64 that holds ``vocab_size - 1``;
  :func:`token_dtype` chooses the same way (uint16 below 65,536 ids, uint32 above).
- Documents are separated by the tokenizer's EOS id: boundaries are the EOS positions
  (``iter_document_indices``), so every document here ends with EOS, the last included.
- ``PART.csv.gz`` beside ``PART.npy`` lists each document's ``start,end`` token offsets
  (end exclusive; the document id follows); OLMo-core reads it instead of scanning for
  EOS when the file is remote or ``use_array_if_local`` is off.
- A mixture reads instance positions as uint32, so a file holds fewer than 2**32 tokens.

Layout of an ``assay export --format olmo-core`` folder (the *root*)::

    ROOT/data/<group>/part-00000.npy      token ids, documents in selection order
    ROOT/data/<group>/part-00000.csv.gz   start,end,id per document
    ROOT/blend/olmo-core/source_mixture.yaml   absolute paths, the files' token shares
    ROOT/manifest.json                    dtype and TokenizerConfig values for OLMo-core

``<group>`` is :func:`group_folder` of the group name (percent-quoted, so any name is one
path component). :data:`PATH_TEMPLATE` (``data/{group}/*.npy``) is the path the mixture
exporter (:mod:`selector.mix_export`, ``assay mix export -f olmo-core``) writes for each
source with the same quoting, relative to ROOT, or absolute under ROOT with ``--root``.
Files are written under temporary names and renamed when whole; the export folder itself
is staged and renamed by :mod:`selector.export.run`, so a killed run leaves nothing half
written and re-running it starts over.
"""

from __future__ import annotations

import gzip
import os
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assay.errors import AssayError, ConfigError
from selector.export.tokens import StagedWriter, iter_texts

DATA = "data"
PATH_TEMPLATE = DATA + "/{group}/*.npy"
MAX_FILE_TOKENS = 2**32 - 1
DEFAULT_FILE_TOKENS = 2**28  # 512 MiB of uint16 per file


def group_folder(name: str) -> str:
    """The folder of a group under ``data/``: percent-quoted like the selection's
    ``group=<name>``, with ``.`` and ``..`` quoted too, so it is one safe path component
    (no ``/`` or glob ``*``)."""
    if not name:
        raise AssayError(
            "a group with an empty name cannot be an OLMo-core source folder",
            hint="give the group column a value for every document",
        )
    quoted = urllib.parse.quote(name, safe="-_.")
    return quoted.replace(".", "%2E") if set(quoted) == {"."} else quoted


def check_file_tokens(max_file_tokens: int) -> None:
    """A file holds at least one token and fewer than 2**32 (OLMo-core's uint32 offsets)."""
    if not 1 <= max_file_tokens <= MAX_FILE_TOKENS:
        raise ConfigError(
            f"--max-file-tokens must be in [1, {MAX_FILE_TOKENS:,}], got {max_file_tokens:,}",
            hint="OLMo-core indexes a file's tokens with uint32",
        )


def token_dtype(vocab_size: int) -> type:
    """The smallest unsigned dtype holding ids ``0 .. vocab_size - 1``: what OLMo-core's
    ``NumpyDatasetConfig.get_dtype`` infers from ``TokenizerConfig.vocab_size``."""
    for dtype in (np.uint8, np.uint16, np.uint32, np.uint64):
        if vocab_size - 1 <= np.iinfo(dtype).max:
            return dtype
    raise ConfigError(f"vocabulary of {vocab_size:,} ids is too large for OLMo-core")


def reader_config(tokenizer: Any, identifier: str) -> dict[str, Any]:
    """What to tell OLMo-core about the files: ``dtype`` and ``TokenizerConfig`` fields."""
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    vocab = len(tokenizer)
    return {
        "dtype": np.dtype(token_dtype(vocab)).name,
        "tokenizer": {
            "vocab_size": vocab,
            "eos_token_id": eos,
            "pad_token_id": pad,
            "bos_token_id": None,  # boundaries are EOS alone; no BOS is written
            "identifier": identifier,
        },
    }


def _one_line(value: Any) -> str:
    return str(value).replace("\r", " ").replace("\n", " ")


class TokenFileWriter(StagedWriter):
    """Stream documents (token ids, EOS appended here) into ``folder/part-NNNNN.npy``
    files of at most ``max_file_tokens`` tokens each, with their ``.csv.gz`` index.

    A document is never split across files (one longer than ``max_file_tokens`` gets a
    file of its own); a file is renamed into place when whole.
    Example::

        with TokenFileWriter("out/data/web", vocab_size=49152, eos_token_id=0) as w:
            w.add([5, 6, 7], doc_id="doc-1")
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        *,
        vocab_size: int,
        eos_token_id: int,
        max_file_tokens: int = DEFAULT_FILE_TOKENS,
    ) -> None:
        check_file_tokens(max_file_tokens)
        if not 0 <= eos_token_id < vocab_size:
            raise ConfigError(f"EOS id {eos_token_id} is outside the vocabulary of {vocab_size}")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.dtype = token_dtype(vocab_size)
        self.vocab_size = vocab_size
        self.eos = eos_token_id
        self.max_file_tokens = max_file_tokens
        self.files: list[str] = []
        self.docs = self.tokens = self.inner_eos = 0
        self._bin: Any = None
        self._raw: Any = None
        self._index: Any = None
        self._file_tokens = 0

    def _paths(self, index: int) -> tuple[Path, Path]:
        return self.folder / f"part-{index:05d}.npy", self.folder / f"part-{index:05d}.csv.gz"

    def _tmp(self, path: Path) -> Path:
        return path.with_name(f".{path.name}.tmp")

    def _open(self) -> None:
        npy, csv = self._paths(len(self.files))
        self._bin = open(self._tmp(npy), "wb")  # noqa: SIM115 - closed in _seal()
        self._raw = open(self._tmp(csv), "wb")  # noqa: SIM115 - closed in _seal()
        self._index = gzip.GzipFile(fileobj=self._raw, mode="wb", mtime=0)
        self._file_tokens = 0

    def _seal(self) -> None:
        npy, csv = self._paths(len(self.files))
        self._index.close()  # the gzip trailer; the raw file stays open
        for f in (self._bin, self._raw):
            f.flush()
            os.fsync(f.fileno())
            f.close()
        os.replace(self._tmp(csv), csv)  # the index first: a visible .npy has its index
        os.replace(self._tmp(npy), npy)
        self.files.append(npy.name)
        self._bin = self._raw = self._index = None

    def add(self, ids: Sequence[int] | np.ndarray, doc_id: Any = "") -> None:
        """Append one document; EOS is added after its ids."""
        arr = np.asarray(ids, dtype=np.int64)
        if arr.size and (arr.min() < 0 or arr.max() >= self.vocab_size):
            raise AssayError(f"token id out of range [0, {self.vocab_size}) in {self.folder}")
        n = int(arr.size) + 1
        if n > MAX_FILE_TOKENS:
            raise AssayError(f"document {doc_id!r} has {n:,} tokens: more than a file may hold")
        if self._bin is not None and self._file_tokens + n > self.max_file_tokens:
            self._seal()
        if self._bin is None:
            self._open()
        self.inner_eos += int(np.count_nonzero(arr == self.eos))
        out = np.empty(n, dtype=self.dtype)
        out[:-1] = arr
        out[-1] = self.eos
        self._bin.write(out.tobytes(order="C"))
        start = self._file_tokens
        self._file_tokens += n
        self._index.write(f"{start},{self._file_tokens},{_one_line(doc_id)}\n".encode())
        self.docs += 1
        self.tokens += n

    def close(self) -> None:
        if self._bin is not None:
            self._seal()

    def abort(self) -> None:
        for f in (self._index, self._bin, self._raw):
            if f is not None:
                f.close()
        for path in self._paths(len(self.files)):
            self._tmp(path).unlink(missing_ok=True)
        self._bin = self._raw = self._index = None


def write_group(
    shards: Sequence[Path],
    folder: Path,
    tokenizer: Any,
    text_field: str,
    max_file_tokens: int = DEFAULT_FILE_TOKENS,
) -> dict[str, Any]:
    """Tokenise one group's shards into ``folder``; returns docs, tokens, files."""
    if tokenizer.eos_token_id is None:
        raise ConfigError(
            "--format olmo-core: the tokenizer has no end-of-sequence token; OLMo-core "
            "finds document boundaries by EOS",
            hint="pass --tokenizer with an eos_token",
        )
    writer = TokenFileWriter(
        folder,
        vocab_size=len(tokenizer),
        eos_token_id=tokenizer.eos_token_id,
        max_file_tokens=max_file_tokens,
    )
    with writer:
        for texts, ids in iter_texts(shards, text_field):
            enc = tokenizer(texts, add_special_tokens=False)["input_ids"]
            for doc_ids, doc_id in zip(enc, ids, strict=True):
                writer.add(doc_ids, doc_id)
    return {
        "docs": writer.docs,
        "tokens": writer.tokens,
        "files": writer.files,
        "eos_inside_documents": writer.inner_eos,
    }


def read_token_file(path: str | os.PathLike, dtype: Any) -> np.ndarray:
    """A token file as OLMo-core maps it (``np.memmap``, no header), read-only."""
    return np.memmap(path, dtype=dtype, mode="r")


__all__ = [
    "PATH_TEMPLATE",
    "TokenFileWriter",
    "check_file_tokens",
    "group_folder",
    "read_token_file",
    "reader_config",
    "token_dtype",
    "write_group",
]
