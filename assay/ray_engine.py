"""Run the rater calls of ``assay annotate`` on a Ray cluster (Ray Data).

The pipeline is ``read_datasource(corpus) -> map_batches(rater actor pool) -> driver``:

- **Reading** happens in Ray read tasks, one per input file (from the resume cursor on),
  with the same readers as the local engine (``assay.corpus.READERS``). A bad record is
  not raised inside Ray: it travels as a row with its reason and line, so the driver
  raises ``BadRecordError`` (file and line) or quarantines it at exactly the point the
  local engine would. Records are pickled per row so every input column comes back
  untouched, whatever its type.
- **Rating** happens in a pool of actors (``concurrency`` of them, ``num_cpus`` /
  ``num_gpus`` each). Every actor builds its raters itself from picklable factories
  (``functools.partial(build_rater, ref, **options)``): loaded models never travel.
- **Writing** stays on the driver: rows come back in input order (``preserve_order``)
  and ``assay.annotate`` cuts them into the same shards, commits each one atomically with
  its input cursor and writes the same manifest. The driver only unpickles and writes
  Parquet, which is far cheaper than the models (see benchmarks/RESULTS.md for when that
  stops being true).

Failures: a rater exception is retried by Ray Data (``max_retries`` attempts per block,
on a live or restarted actor); a block that still fails stops the run with the rater's
name and the file/lines of the block. Committed shards stay, so rerunning the command
resumes. Blocks are never dropped (``max_errored_blocks`` stays 0): a dropped block
would lose documents silently, which assay never does.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from assay.corpus import Cursor, Item, Source
from assay.errors import AssayError, ConfigError
from assay.records import Fields, rows_to_batch

INSTALL_HINT = "pip install 'assay[ray]'"
# Per-row bookkeeping columns; the leading underscore keeps them apart from documents'.
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


def _import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as e:  # pragma: no cover - the extra is installed in CI
        raise AssayError("--engine ray needs Ray Data", hint=INSTALL_HINT) from e
    return ray


@dataclass
class RayConfig:
    """How the rater calls run on Ray (``assay annotate --engine ray``)."""

    address: str | None = None
    """Cluster to join (``--address``): ``auto``, ``ray://host:10001``, or None to start a
    local Ray instance (the laptop case)."""
    concurrency: int = 1
    """Rater actors (``--concurrency``); each loads the models once."""
    num_cpus: float = 1.0
    """CPUs reserved per rater actor (``--num-cpus``)."""
    num_gpus: float = 0.0
    """GPUs per rater actor (``--num-gpus``); 1 puts one actor on each GPU."""
    batch_size: int = 256
    """Documents per ``map_batches`` call (``--ray-batch-size``); also the read block size,
    so it bounds what one failed block costs to retry."""
    max_retries: int = 2
    """Attempts after the first for a block whose rater raised (task retries)."""
    token_actors: int = 0
    """CPU actors counting ``n_tokens`` as a stage of their own, overlapped with the rater
    actors (0: the rater actors count). Worth it when raters hold GPUs: tokenising on a
    GPU actor leaves the GPU idle."""
    local_num_cpus: int = 4
    """Logical CPUs of a local instance started for you (Ray Data needs > 2 to schedule
    read tasks beside the actors)."""

    def validate(self) -> None:
        if self.concurrency < 1:
            raise ConfigError(f"--concurrency must be >= 1, got {self.concurrency}")
        if self.num_cpus < 0 or self.num_gpus < 0:
            raise ConfigError(
                f"--num-cpus/--num-gpus must be >= 0, got {self.num_cpus}/{self.num_gpus}"
            )
        if self.batch_size < 1:
            raise ConfigError(f"--ray-batch-size must be >= 1, got {self.batch_size}")
        if self.token_actors < 0:
            raise ConfigError(f"token_actors must be >= 0, got {self.token_actors}")
        if self.max_retries < 0:
            raise ConfigError(f"max_retries must be >= 0, got {self.max_retries}")


def _read_source(source: Source, index: int, fields: Fields, skip: int, rows: int):
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


def _datasource(sources: Sequence[Source], fields: Fields, start: Cursor, rows: int) -> Any:
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
                        lambda s=source, i=index, k=skip: _read_source(s, i, fields, k, rows),
                        meta,
                    )
                )
            return tasks

    return AssayCorpusDatasource()


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
                    # Named here because Ray's own error shows only the actor's class.
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


def unpack_columns(per_row: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-row column dicts -> column batch; numpy scalars become arrays of their dtype,
    as the rater produced them, so Parquet types match the local engine."""
    import numpy as np

    if not per_row:
        return {}
    out: dict[str, Any] = {}
    for name in per_row[0]:
        values = [row[name] for row in per_row]
        if all(isinstance(v, np.generic) for v in values):
            out[name] = np.asarray(values)
        else:
            out[name] = values
    return out


@dataclass
class DescribedRater:
    """A rater that runs on Ray, as annotate sees it on the driver: name and description
    for the fingerprint and manifest; its columns come from the actors."""

    name: str
    description: dict[str, Any]

    def describe(self) -> dict[str, Any]:
        return self.description

    def __call__(self, batch: Any) -> Any:
        raise AssertionError(f"{self.name} rates on Ray actors, not on the driver")


@dataclass
class RayEngine:
    """Rates documents on Ray; ``assay.annotate.annotate(..., engine=RayEngine(...))``.

    ``rater_factories`` build the same raters as the driver's ``raters`` argument (which
    annotate keeps for names, fingerprint and manifest), e.g.
    ``[functools.partial(build_rater, "heuristics")]``.
    """

    rater_factories: Sequence[Callable[[], Any]]
    token_counter_factory: Callable[[], Callable[[list[str]], Any]] | None = None
    config: RayConfig = field(default_factory=RayConfig)
    rater_seconds: dict[str, float] = field(default_factory=dict)
    expected: list[dict[str, Any]] | None = None
    """The driver's ``describe()`` of its raters; set by annotate, checked per block."""

    name = "ray"

    def describe(self) -> dict[str, Any]:
        c = self.config
        return {
            "engine": "ray",
            "address": c.address or "local",
            "concurrency": c.concurrency,
            "num_cpus": c.num_cpus,
            "num_gpus": c.num_gpus,
            "batch_size": c.batch_size,
            "max_retries": c.max_retries,
            "token_actors": c.token_actors,
        }

    def describe_raters(self) -> list[DescribedRater]:
        """The raters as the actors build them (device, dtype, weights' sha256), from one
        Ray task with an actor's resources: the driver (often a CPU head node) never
        loads the models, and the manifest describes what really rated."""
        factories = list(self.rater_factories)

        def build() -> list[tuple[str, dict[str, Any]]]:
            return [(r.name, r.describe()) for r in (make() for make in factories)]

        result = run_like_an_actor(self.config, build)
        return [DescribedRater(name, description) for name, description in result]

    def _init(self) -> Any:
        import logging

        ray = _import_ray()
        # assay prints one progress line; Ray Data's per-dataset INFO lines are noise there.
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        if not ray.is_initialized():
            if self.config.address:
                ray.init(
                    address=self.config.address,
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                )
            else:
                ray.init(
                    num_cpus=self.config.local_num_cpus,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                )
        return ray

    def items(
        self, sources: Sequence[Source], fields: Fields, start: Cursor
    ) -> Generator[tuple[Item, dict[str, Any] | None], None, None]:
        """Every record after ``start`` in input order, with its rated columns (or None
        for a bad record)."""
        self.config.validate()
        ray = self._init()
        from ray.data import ActorPoolStrategy, DataContext

        _configure(DataContext.get_current(), self.config)
        c = self.config
        ds = ray.data.read_datasource(_datasource(sources, fields, start, c.batch_size))
        tokens_inline = self.token_counter_factory
        if self.token_counter_factory is not None and c.token_actors > 0:
            tokens_inline = None
            ds = ds.map_batches(
                TokenActor,
                fn_constructor_kwargs={
                    "count_tokens": self.token_counter_factory,
                    "fields": fields,
                },
                batch_format="pyarrow",
                batch_size=c.batch_size,
                compute=ActorPoolStrategy(size=c.token_actors),
                num_cpus=1,
            )
        ds = ds.map_batches(
            RaterActor,
            fn_constructor_kwargs={
                "factories": list(self.rater_factories),
                "count_tokens": tokens_inline,
                "fields": fields,
                "paths": [str(s.path) for s in sources],
            },
            batch_format="pyarrow",
            batch_size=c.batch_size,
            compute=ActorPoolStrategy(size=c.concurrency),
            num_cpus=c.num_cpus,
            num_gpus=c.num_gpus or None,
        )
        try:
            for table in ds.iter_batches(batch_format="pyarrow", batch_size=None):
                yield from self._rows(table)
        except AssayError:
            raise
        except Exception as e:
            raise _as_assay_error(e) from e

    def _rows(self, table: pa.Table) -> Iterator[tuple[Item, dict[str, Any] | None]]:
        cols = {name: table.column(name).to_pylist() for name in table.column_names}
        for i in range(table.num_rows):
            if cols[DESC][i] is not None and self.expected is not None:
                _check_same_models(self.expected, pickle.loads(cols[DESC][i]))
            if cols[SECS][i] is not None:
                for name, s in pickle.loads(cols[SECS][i]).items():
                    self.rater_seconds[name] = self.rater_seconds.get(name, 0.0) + s
            rec = cols[REC][i]
            item = Item(
                source=cols[SRC][i],
                unit=cols[UNIT][i],
                record=None if rec is None else pickle.loads(rec),
                reason=cols[REASON][i],
                raw=cols[RAW][i],
                offset=cols[OFFSET][i],
            )
            packed = cols[COLS][i]
            yield item, None if packed is None else pickle.loads(packed)


def run_like_an_actor(config: RayConfig, fn: Callable[[], Any]) -> Any:
    """``fn()`` in one Ray task with an actor's resources (its GPU, its node kind), e.g.
    to describe a model as the actors will load it. An AssayError inside comes back
    as itself (its message and hint), not as a Ray traceback."""
    config.validate()
    ray = RayEngine([], config=config)._init()

    def call() -> tuple[bool, Any]:
        try:
            return True, fn()
        except AssayError as e:
            return False, (type(e).__name__, e.args[0] if e.args else str(e), e.hint)

    task = ray.remote(call).options(
        num_cpus=config.num_cpus, num_gpus=config.num_gpus or None, max_retries=0
    )
    try:
        ok, value = ray.get(task.remote())
    except Exception as e:
        raise _as_assay_error(e) from e
    if not ok:
        kind, message, hint = value
        raise (ConfigError if kind == "ConfigError" else AssayError)(message, hint=hint)
    return value


def _configure(ctx: Any, config: RayConfig) -> None:
    """Ray Data settings every assay pipeline needs."""
    ctx.execution_options.preserve_order = True  # shards follow input order
    ctx.retried_map_errors = config.max_retries > 0  # task retries of rater exceptions
    ctx.max_map_retries = config.max_retries
    ctx.max_errored_blocks = 0  # a dropped block would lose documents silently
    ctx.enable_progress_bars = False  # assay prints its own progress line


def _placement_free(value: Any) -> Any:
    """A description without local paths: nodes may install the same model elsewhere."""
    if isinstance(value, dict):
        return {k: _placement_free(v) for k, v in value.items() if k not in ("path", "model_path")}
    if isinstance(value, list):
        return [_placement_free(v) for v in value]
    return value


def _check_same_models(driver: list[dict[str, Any]], actor: list[dict[str, Any]]) -> None:
    """The manifest describes the raters as first built on Ray; refuse actors that built
    other ones (say bf16 on one kind of node, fp32 on another)."""
    driver, actor = _placement_free(driver), _placement_free(actor)
    if driver != actor:
        changed = [
            f"{d.get('name', i)}.{k}"
            for i, (d, a) in enumerate(zip(driver, actor, strict=False))
            for k in sorted(set(d) | set(a))
            if d.get(k) != a.get(k)
        ] or ["the list of raters"]
        raise ConfigError(
            f"Ray actors built different raters than described (differs in: {', '.join(changed)})",
            hint="pass --device/--dtype explicitly so every node loads the same model",
        )


def _as_assay_error(error: BaseException) -> AssayError:
    """Ray wraps worker exceptions; surface ours (a reader's AssayError, a rater's
    message) instead of Ray's traceback dump."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, AssayError):
            return seen
        seen = seen.__cause__ or getattr(seen, "cause", None)
    text = str(error)
    for line in text.splitlines():
        if "rater '" in line and "failed on" in line:
            start = line.index("rater '")
            return AssayError(
                f"Ray run stopped: {line[start:].strip()}",
                hint="committed shards are kept; fix the rater and rerun the same command",
            )
    first = text.strip().splitlines()[-1] if text.strip() else type(error).__name__
    return AssayError(
        f"Ray run stopped: {type(error).__name__}: {first}",
        hint="committed shards are kept; rerun the same command to resume",
    )


__all__ = [
    "DescribedRater",
    "RaterActor",
    "RayConfig",
    "RayEngine",
    "TokenActor",
    "run_like_an_actor",
    "unpack_columns",
]
