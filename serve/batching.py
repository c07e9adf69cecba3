"""Adaptive batching: BentoML's own dispatcher, driven from our async API methods.

``@bentoml.api(batchable=True)`` batches an API whose one parameter is a list, and hands
the concatenated list to the method. Our endpoints take more than a list (which raters
to use), check limits per request and answer their own 413/422/503, which a batchable
API cannot (its method only ever sees the merged batch). So each endpoint awaits a
:class:`Batcher`, which is the very ``CorkDispatcher`` behind ``batchable=True`` (same
adaptive algorithm, same ``max_batch_size`` / ``max_latency_ms`` meaning): requests
arriving together are merged into one model call of at most ``max_batch_size`` texts
(a larger request is split across calls), and a request whose estimated wait exceeds
``max_latency_ms`` is dropped from the queue, which we answer 503 + Retry-After.

The model call runs in a worker thread, one batch at a time, so the event loop keeps
answering health checks and refusing overload while the model works.

When nothing is queued or running, a request skips the dispatcher and goes straight to
the model. Why: the dispatcher holds a lone request back while its running mean of past
queue waits says more may come, and after a burst that mean stays high for a while, so a
client calling one request at a time was served ~1.5x slower with batching on than off
(benchmarks/RESULTS.md, serve section, 1 client). Requests that arrive while it runs
queue in the dispatcher as before and go together once it is done (one lock keeps model
calls one at a time); the dispatcher's cost model then counts that wait in its batch
durations, which only makes its overload estimate more cautious.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any


class Overloaded(Exception):
    """The batch queue dropped the request: it would have waited past max_latency_ms."""


def _overloaded() -> Any:
    raise Overloaded("the service is overloaded: the batch queue is full")


class Batcher:
    """Merge concurrent jobs (lists of items) into calls of ``fn(list_of_jobs)``.

    Args:
        fn: sync function, one answer list per job, run in a thread.
        max_batch_size: most items per call of ``fn``; 1 turns batching off.
        max_latency_ms: most time a job may wait in the queue before 503.

    Example::

        batcher = Batcher(engine.rate, max_batch_size=64, max_latency_ms=10000)
        rows = await batcher([("some text", ("heuristics",))])
    """

    def __init__(
        self,
        fn: Callable[[Sequence[Sequence[Any]]], list[list[Any]]],
        *,
        max_batch_size: int,
        max_latency_ms: int,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.fn = fn
        self.max_batch_size = max_batch_size
        self.max_latency_ms = max_latency_ms
        self.on_batch = on_batch
        self._call: Any = None
        self._lock: asyncio.Lock | None = None
        self._busy = 0  # jobs taken and not yet answered, dispatched or direct

    def _build(self) -> Any:
        # Built on first use, inside the running event loop (the dispatcher binds to it).
        from bentoml._internal.marshal.dispatcher import CorkDispatcher

        dispatcher = CorkDispatcher(
            max_latency_in_ms=self.max_latency_ms,
            max_batch_size=self.max_batch_size,
            fallback=_overloaded,
            get_batch_size=len,
            batch_dim=(0, 0),
        )

        return dispatcher(self._run)

    async def _run(self, jobs: Sequence[list[Any]]) -> list[list[Any]]:
        assert self._lock is not None
        async with self._lock:
            if self.on_batch is not None:
                self.on_batch(sum(len(job) for job in jobs))
            return await asyncio.to_thread(self.fn, [list(job) for job in jobs])

    async def __call__(self, items: list[Any]) -> list[Any]:
        if not items:
            return []
        if self._call is None:
            self._lock = asyncio.Lock()
            self._call = self._build()
        idle = self._busy == 0 and len(items) <= self.max_batch_size
        self._busy += 1
        try:
            if idle:
                return (await self._run([items]))[0]
            return await self._call(items)
        finally:
            self._busy -= 1
