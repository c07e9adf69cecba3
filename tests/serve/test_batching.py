"""The adaptive batcher on its own (BentoML's dispatcher, no HTTP, no model: what is under
test is how jobs are merged and answered): a lone job goes straight to the function,
concurrent jobs are merged, every job gets its own answer, and calls never overlap."""

from __future__ import annotations

import asyncio
import threading
import time

from serve.batching import Batcher


class Recorder:
    """A batch function that records each call's job sizes and how many calls overlapped."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.calls: list[list[int]] = []
        self.running = 0
        self.most_at_once = 0
        self._mutex = threading.Lock()

    def __call__(self, jobs):
        with self._mutex:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self.calls.append([len(job) for job in jobs])
        time.sleep(self.seconds)
        with self._mutex:
            self.running -= 1
        return [[f"{item}!" for item in job] for job in jobs]


def test_a_lone_job_goes_straight_to_the_function():
    fn = Recorder(0.0)
    sizes: list[int] = []
    batcher = Batcher(fn, max_batch_size=8, max_latency_ms=10_000, on_batch=sizes.append)

    async def main():
        return [await batcher([f"t{i}", f"u{i}"]) for i in range(5)]

    assert asyncio.run(main()) == [[f"t{i}!", f"u{i}!"] for i in range(5)]
    assert fn.calls == [[2]] * 5  # one job per call, none held back for company
    assert sizes == [2] * 5


def test_concurrent_jobs_are_merged_answered_apart_and_never_overlap():
    fn = Recorder(0.02)
    batcher = Batcher(fn, max_batch_size=16, max_latency_ms=60_000)

    async def burst(n: int, tag: str) -> list[list[str]]:
        return await asyncio.gather(*(batcher([f"{tag}{i}"]) for i in range(n)))

    async def main():
        for round_ in range(4):  # the dispatcher's first batches train its cost model
            await burst(40, f"warm{round_}-")
        before = len(fn.calls)
        answers = await burst(48, "x")
        return answers, fn.calls[before:]

    answers, calls = asyncio.run(main())
    assert answers == [[f"x{i}!"] for i in range(48)]
    assert sum(sum(c) for c in calls) == 48
    assert all(sum(c) <= 16 for c in calls), calls  # max_batch_size holds
    assert len(calls) < 24, calls  # merged: far fewer calls than jobs
    assert fn.most_at_once == 1  # the direct path and the dispatcher take turns


def test_a_job_larger_than_a_batch_is_split_by_the_dispatcher():
    fn = Recorder(0.0)
    batcher = Batcher(fn, max_batch_size=4, max_latency_ms=10_000)
    items = [f"t{i}" for i in range(10)]
    assert asyncio.run(batcher(items)) == [f"t{i}!" for i in range(10)]
    assert all(sum(c) <= 4 for c in fn.calls), fn.calls
