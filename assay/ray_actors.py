"""The Ray Data actors that rate blocks of documents for ``assay annotate --engine ray``.

``RaterActor`` is the stage that matters: a pool of them (``concurrency`` actors,
``num_cpus`` / ``num_gpus`` each) builds its raters once, from picklable factories
(``functools.partial(build_rater, ref, **options)``), so loaded models never travel.
Each call rates one block and appends the rated columns, the raters' seconds and their
``describe()`` (the driver checks every actor built the same models). ``TokenActor`` is
an optional CPU stage before it that counts ``n_tokens``, so GPU actors do not tokenise.

A rater exception is raised with the rater's name and the block's file/lines, because
Ray's own error names only the actor class; Ray Data retries the block
(``assay.ray_cluster.configure_data``) and ``assay.ray_cluster.as_assay_error`` finds
this message again if it still fails. Block columns are those of ``assay.ray_read``.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa

from assay.ray_read import COLS, DESC, NTOK, REC, SECS, SRC, UNIT
from assay.records import Fields, rows_to_batch


class TokenActor:
    """Ray Data callable class: the ``n_tokens`` stage on CPU actors (0 for bad rows)."""

    def __init__(self, count_tokens: Callable[[], Callable[[list[str]], Any]], fields: Fields):
        self.count_tokens = count_tokens()
        self.fields = fields

    def __call__(self, table: pa.Table) -> pa.Table:
        import numpy as np

        raw = table.column(REC).to_pylist()
        good = [i for i, r in enumerate(raw) if r is not None]
        counts = np.zeros(len(raw), dtype=np.int64)
        if good:
            texts = [pickle.loads(raw[i])[self.fields.text] for i in good]
            counts[good] = np.asarray(self.count_tokens(texts), dtype=np.int64)
        return table.append_column(NTOK, pa.array(counts))


class RaterActor:
    """Ray Data callable class: builds the raters once, rates one block per call."""

    def __init__(
        self,
        factories: Sequence[Callable[[], Any]],
        count_tokens: Callable[[], Callable[[list[str]], Any]] | None,
        fields: Fields,
        paths: Sequence[str],
    ) -> None:
        self.raters = [make() for make in factories]
        self.describe = pickle.dumps([r.describe() for r in self.raters])
        self.count_tokens = count_tokens() if count_tokens is not None else None
        self.fields = fields
        self.paths = list(paths)

    def _where(self, table: pa.Table) -> str:
        # A batch may join blocks of two files: name where it starts and where it ends.
        src, unit = table.column(SRC).to_pylist(), table.column(UNIT).to_pylist()
        if src[0] == src[-1]:
            return f"{self.paths[src[0]]}:{unit[0]}-{unit[-1]}"
        return f"{self.paths[src[0]]}:{unit[0]} to {self.paths[src[-1]]}:{unit[-1]}"

    def __call__(self, table: pa.Table) -> pa.Table:
        import numpy as np

        raw = table.column(REC).to_pylist()
        if not raw:
            empty = pa.array([], pa.binary())
            return (
                table.append_column(COLS, empty)
                .append_column(SECS, empty)
                .append_column(DESC, empty)
            )
        good = [i for i, r in enumerate(raw) if r is not None]
        packed: list[bytes | None] = [None] * len(raw)
        seconds: dict[str, float] = {}
        if good:
            batch = rows_to_batch([pickle.loads(raw[i]) for i in good], self.fields)
            before = set(batch)
            if NTOK in table.column_names:  # counted by the token stage
                counts = table.column(NTOK).to_numpy(zero_copy_only=False)
                batch["n_tokens"] = np.asarray(counts[good], dtype=np.int64)
            elif self.count_tokens is not None:
                batch["n_tokens"] = np.asarray(
                    self.count_tokens(batch[self.fields.text]), dtype=np.int64
                )
            for rater in self.raters:
                t = time.perf_counter()
                try:
                    batch = rater(batch)
                except Exception as e:
                    # Named here because Ray's own error shows only the actor's class;
                    # as_assay_error matches this "rater '...' failed on" wording.
                    raise RuntimeError(
                        f"rater {rater.name!r} failed on {len(good)} documents of "
                        f"{self._where(table)}: {type(e).__name__}: {e}"
                    ) from e
                seconds[rater.name] = time.perf_counter() - t
            added = [c for c in batch if c not in before]
            for j, i in enumerate(good):
                packed[i] = pickle.dumps({c: batch[c][j] for c in added})
        timing: list[bytes | None] = [None] * len(raw)
        timing[0] = pickle.dumps(seconds)
        describe: list[bytes | None] = [None] * len(raw)
        describe[0] = self.describe
        return (
            table.append_column(COLS, pa.array(packed, pa.binary()))
            .append_column(SECS, pa.array(timing, pa.binary()))
            .append_column(DESC, pa.array(describe, pa.binary()))
        )


__all__ = ["RaterActor", "TokenActor"]
