"""Reading a corpus into Ray Data blocks, and the columns every stage of the pipeline adds.

One Ray read task per input file (from the resume cursor on), with the same readers as
the local engine (``assay.corpus.READERS``). A bad record is not raised inside Ray: it
travels as a row with its reason and line, so the driver raises ``BadRecordError``
(file and line) or quarantines it at exactly the point the local engine would. Records
are pickled per row so every input column comes back untouched, whatever its type.

A block's columns, in the order the stages add them (the leading underscore keeps them
apart from documents' own fields):

- read task: ``SRC`` file index, ``UNIT`` record index in the file, ``OFFSET`` byte
  offset, ``REASON``/``RAW`` for a bad record, ``REC`` the pickled record (None if bad);
- token stage (optional, ``assay.ray_actors.TokenActor``): ``NTOK``;
- rater stage (``assay.ray_actors.RaterActor``): ``COLS`` the pickled rated columns per
  row, ``SECS`` rater seconds and ``DESC`` the raters' ``describe()``, both on the
  block's first row only.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

from assay.corpus import Cursor, Item, Source
from assay.records import Fields

SRC, UNIT, OFFSET, REASON, RAW, REC, COLS, SECS, DESC, NTOK = (
    "_assay_source",
    "_assay_unit",
    "_assay_offset",
    "_assay_reason",
    "_assay_raw",
    "_assay_record",
    "_assay_columns",
    "_assay_seconds",
    "_assay_describe",
    "_assay_n_tokens",
)


def read_source(
    source: Source, index: int, fields: Fields, skip: int, rows: int
) -> Iterator[pa.Table]:
    """Read-task body: one input file as blocks of bookkeeping + pickled records."""
    from assay.corpus import READERS

    def block(items: list[Item]) -> pa.Table:
        return pa.table(
            {
                SRC: pa.array([it.source for it in items], pa.int32()),
                UNIT: pa.array([it.unit for it in items], pa.int64()),
                OFFSET: pa.array([it.offset for it in items], pa.int64()),
                REASON: pa.array([it.reason for it in items], pa.string()),
                RAW: pa.array([it.raw for it in items], pa.string()),
                REC: pa.array(
                    [None if it.record is None else pickle.dumps(it.record) for it in items],
                    pa.binary(),
                ),
            }
        )

    items: list[Item] = []
    for item in READERS[source.kind](source, index, fields, skip):
        items.append(item)
        if len(items) == rows:
            yield block(items)
            items = []
    if items:
        yield block(items)


def corpus_datasource(sources: Sequence[Source], fields: Fields, start: Cursor, rows: int) -> Any:
    """A Ray Data ``Datasource`` over ``sources`` from ``start``, blocks of ``rows``."""
    # Ray's classes are imported here (the ``ray`` extra), so the class is defined here too.
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    class AssayCorpusDatasource(Datasource):
        """One read task per input file at or after the resume cursor."""

        def estimate_inmemory_data_size(self) -> int | None:
            return sum(s.path.stat().st_size for s in sources[start.source :])

        def get_read_tasks(self, parallelism: int, per_task_row_limit=None, data_context=None):
            tasks = []
            for index in range(start.source, len(sources)):
                source = sources[index]
                skip = start.unit if index == start.source else 0
                meta = BlockMetadata(
                    num_rows=None,
                    size_bytes=source.path.stat().st_size,
                    exec_stats=None,
                    input_files=(str(source.path),),
                )
                tasks.append(
                    ReadTask(
                        lambda s=source, i=index, k=skip: read_source(s, i, fields, k, rows),
                        meta,
                    )
                )
            return tasks

    return AssayCorpusDatasource()


__all__ = [
    "COLS",
    "DESC",
    "NTOK",
    "OFFSET",
    "RAW",
    "REASON",
    "REC",
    "SECS",
    "SRC",
    "UNIT",
    "corpus_datasource",
    "read_source",
]
