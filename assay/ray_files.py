"""Whole files on a Ray actor pool, results in order: ``assay embed --engine ray``.

Each actor builds its worker once (from a picklable factory: models never travel) and
applies it to one file per call; the driver receives the results in the files' order and
commits one output file per input file, so resume stays a prefix. The files must be
readable from every node (a shared filesystem or object store).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Generator, Sequence
from typing import Any

from assay.errors import AssayError
from assay.ray_cluster import as_assay_error, configure_data, init_ray
from assay.ray_config import RayConfig


class FileActor:
    """Ray Data callable class applying a worker (built once per actor from a picklable
    factory) to whole files: ``worker(path) -> picklable result``."""

    def __init__(self, factory: Callable[[], Callable[[str], Any]]) -> None:
        self.worker = factory()

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        results = [pickle.dumps(self.worker(str(path))) for path in batch["path"]]
        return {"index": batch["index"], "result": results}


def map_files(
    config: RayConfig, factory: Callable[[], Callable[[str], Any]], paths: Sequence[str]
) -> Generator[Any, None, None]:
    """``worker(path)`` for every path on a Ray actor pool, results in ``paths`` order.

    Used by ``assay embed --engine ray``: one annotation shard per call, so each result
    maps to exactly one output file the driver commits in order (resume stays a prefix).
    The files must be readable from every node (a shared filesystem or object store).
    """
    config.validate()
    if not paths:
        return
    ray = init_ray(config)
    from ray.data import ActorPoolStrategy, DataContext

    configure_data(DataContext.get_current(), config)
    items = [{"index": i, "path": str(p)} for i, p in enumerate(paths)]
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    ds = ds.map_batches(
        FileActor,
        fn_constructor_kwargs={"factory": factory},
        batch_size=1,
        compute=ActorPoolStrategy(size=config.concurrency),
        num_cpus=config.num_cpus,
        num_gpus=config.num_gpus or None,
    )
    expect = 0
    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for index, result in zip(batch["index"], batch["result"], strict=True):
                assert int(index) == expect, "Ray returned files out of order"
                expect += 1
                yield pickle.loads(result)
    except AssayError:
        raise
    except Exception as e:
        raise as_assay_error(e) from e
