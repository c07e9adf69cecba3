"""Run the rater calls of ``assay annotate`` on a Ray cluster (Ray Data): the driver side.

The pipeline is ``read_datasource(corpus) -> map_batches(rater actor pool) -> driver``;
each stage has its own file:

- **Reading** (``assay.ray_read``): one Ray read task per input file from the resume
  cursor on, with the local engine's readers; bad records travel as rows with a reason.
- **Rating** (``assay.ray_actors``): a pool of ``RaterActor`` (``concurrency`` of them,
  ``num_cpus`` / ``num_gpus`` each) that build their raters from picklable factories,
  optionally after a CPU ``TokenActor`` stage.
- **Writing** stays on the driver (this file): ``RayEngine.items`` yields rows back in
  input order (``preserve_order``) and ``assay.annotate`` cuts them into the same shards,
  commits each one atomically with its input cursor and writes the same manifest. The
  driver only unpickles and writes Parquet, which is far cheaper than the models (see
  benchmarks/RESULTS.md for when that stops being true). It also checks, block by block,
  that every actor built the models the manifest describes.

Options are ``assay.ray_config.RayConfig``; joining Ray, retries and error translation
are shared with ``assay.ray_files`` in ``assay.ray_cluster``.

Failures: a rater exception is retried by Ray Data (``max_retries`` attempts per block,
on a live or restarted actor); a block that still fails stops the run with the rater's
name and the file/lines of the block. Committed shards stay, so rerunning the command
resumes. Blocks are never dropped (``max_errored_blocks`` stays 0): a dropped block
would lose documents silently, which assay never does.

This module stays the entry point: the names other code imports from it (``RayConfig``,
``run_like_an_actor``, the actors) are re-exported here.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from assay.corpus import Cursor, Item, Source
from assay.errors import AssayError, ConfigError
from assay.ray_actors import RaterActor, TokenActor
from assay.ray_cluster import (
    INSTALL_HINT,
    as_assay_error,
    configure_data,
    init_ray,
    run_like_an_actor,
)
from assay.ray_config import RayConfig
from assay.ray_read import COLS, DESC, OFFSET, RAW, REASON, REC, SECS, SRC, UNIT, corpus_datasource
from assay.records import Fields


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

    def items(
        self, sources: Sequence[Source], fields: Fields, start: Cursor
    ) -> Generator[tuple[Item, dict[str, Any] | None], None, None]:
        """Every record after ``start`` in input order, with its rated columns (or None
        for a bad record)."""
        self.config.validate()
        ray = init_ray(self.config)
        from ray.data import ActorPoolStrategy, DataContext

        configure_data(DataContext.get_current(), self.config)
        c = self.config
        ds = ray.data.read_datasource(corpus_datasource(sources, fields, start, c.batch_size))
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
            raise as_assay_error(e) from e

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


__all__ = [
    "INSTALL_HINT",
    "DescribedRater",
    "RaterActor",
    "RayConfig",
    "RayEngine",
    "TokenActor",
    "run_like_an_actor",
    "unpack_columns",
]
