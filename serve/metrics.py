"""Prometheus series of the service, beside BentoML's own (``GET /metrics``).

BentoML exports request counts, durations and in-progress gauges per endpoint; these
add what only the service knows: texts scored per rater, the size of each model batch
(the adaptive batching at work) and requests refused, by reason. They are created
through ``bentoml.metrics`` so that BentoML's multiprocess collection (one registry
over all workers) picks them up.
"""

from __future__ import annotations

import contextlib
from typing import Any

_METRICS: dict[str, Any] = {}
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def metrics() -> dict[str, Any]:
    """The service's metrics, created once per process."""
    if not _METRICS:
        import bentoml

        _METRICS["texts"] = bentoml.metrics.Counter(
            name="assay_texts_total",
            documentation="Texts processed, by endpoint and rater",
            labelnames=["endpoint", "rater"],
        )
        _METRICS["batch"] = bentoml.metrics.Histogram(
            name="assay_batch_texts",
            documentation="Texts per model call (adaptive batching), by endpoint",
            labelnames=["endpoint"],
            buckets=BATCH_BUCKETS,
        )
        _METRICS["refused"] = bentoml.metrics.Counter(
            name="assay_refused_total",
            documentation="Requests refused before scoring, by HTTP status and reason",
            labelnames=["status", "reason"],
        )
    return _METRICS


def count_refused(status: int, reason: str) -> None:
    # Metrics must never turn a clear 4xx into a 500.
    with contextlib.suppress(Exception):
        metrics()["refused"].labels(status=str(status), reason=reason).inc()
