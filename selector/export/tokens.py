"""What the token exports (Megatron ``.bin``/``.idx``, OLMo-core ``.npy``) share: reading
a selection's texts a batch at a time, and the writer protocol (``close`` seals what was
written, ``abort`` removes it; as a context manager, an exception aborts)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from assay.errors import AssayError

BATCH = 256  # documents tokenised per call


def iter_texts(
    shards: Sequence[Path], text_field: str, id_field: str = "id"
) -> Iterator[tuple[list[str], list[Any]]]:
    """Batches of (texts, ids) from Parquet shards, read a batch at a time."""
    import pyarrow.parquet as pq

    for shard in shards:
        pf = pq.ParquetFile(shard)
        names = pf.schema_arrow.names
        if text_field not in names:
            raise AssayError(f"{shard}: no {text_field!r} column", hint="check --text-field")
        columns = [text_field] + ([id_field] if id_field in names else [])
        for batch in pf.iter_batches(batch_size=BATCH, columns=columns):
            texts = batch.column(text_field).to_pylist()
            ids = batch.column(id_field).to_pylist() if id_field in names else [""] * len(texts)
            yield texts, ids


class StagedWriter(ABC):
    """A writer whose files appear whole or not at all: subclasses define ``close`` and
    ``abort``; ``with`` calls the first on success and the second on an exception."""

    @abstractmethod
    def close(self) -> None:
        """Move the staged files into place."""

    @abstractmethod
    def abort(self) -> None:
        """Remove the staged files; nothing of this writer is left behind."""

    def __enter__(self) -> StagedWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


__all__ = ["BATCH", "StagedWriter", "iter_texts"]
