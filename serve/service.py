"""The rating service: BentoML over the raters, one stable versioned HTTP API.

Endpoints (OpenAPI at ``GET /docs.json``, Swagger UI at ``/``):

- ``POST /v1/rate``     texts (+ optional rater names) -> per text, per rater, columns
- ``POST /v1/embed``    texts -> unit-length embeddings
- ``POST /v1/cluster``  texts -> nearest frozen centroid of a clusters folder
- ``GET  /v1/raters``   the configured raters: specs, versions, columns
- ``GET  /livez``, ``/healthz``, ``/readyz``; ``GET /metrics`` (Prometheus)

Run it with ``assay serve`` or ``bentoml serve serve.service:AssayService --host
127.0.0.1`` (settings from ``ASSAY_SERVE_SETTINGS``/``ASSAY_SERVE_CONFIG``, else
``configs/serve.yaml``).

Why the class is built in a function: BentoML fixes workers, timeouts and HTTP settings
when the class is decorated, and they come from the settings; and ``import serve`` must
not import BentoML (it is an extra). ``serve.service.AssayService`` is built on first
attribute access (PEP 562 ``__getattr__``), which is how BentoML's workers import it.
"""

import time
from typing import Any

from serve.batching import Batcher, Overloaded
from serve.engine import Engine
from serve.guard import GuardMiddleware
from serve.metrics import count_refused, metrics
from serve.schemas import (
    API_VERSION,
    ClusterAssignment,
    ClusterResponse,
    EmbedResponse,
    ErrorResponse,
    RaterDescription,
    RateResponse,
    RateResult,
    RaterRef,
    RatersResponse,
)
from serve.settings import ServeSettings, api_key

SERVICE_NAME = "assay"


def service_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("assay")
    except PackageNotFoundError:  # a source checkout that is not installed
        return "0+unknown"


def error(status: int, reason: str, message: str, hint: str | None = None) -> Any:
    """A JSON error answer (``ErrorResponse``) that an API method returns as is; ``reason``
    is a fixed code for the metrics (never user input: it is a label value)."""
    from starlette.responses import JSONResponse

    count_refused(status, reason)
    body = ErrorResponse(error=message, hint=hint).model_dump()
    return JSONResponse(body, status_code=status)


def check_texts(texts: list[str], settings: ServeSettings) -> Any:
    """None if the texts are within the limits, else the 413/422 answer."""
    if len(texts) > settings.max_texts:
        return error(
            413,
            "max_texts",
            f"too many texts: {len(texts)} in one request, at most {settings.max_texts}",
            "split the texts over several requests (server setting max_texts)",
        )
    for i, text in enumerate(texts):
        if len(text) > settings.max_chars:
            return error(
                413,
                "max_chars",
                f"text {i} has {len(text):,} characters, at most {settings.max_chars:,}",
                "cut long texts before sending: raters read only their head "
                "(server setting max_chars)",
            )
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            # JSON lets "\ud800" through; no tokenizer (or corpus file) can hold it.
            return error(
                422,
                "unicode",
                f"text {i} is not valid Unicode (a lone surrogate code point)",
                "send UTF-8 text; pair or drop surrogate escapes like \\ud800",
            )
    return None


def build_service(settings: ServeSettings) -> Any:
    """The BentoML service class for ``settings`` (validated here)."""
    import bentoml

    settings.validate()
    version = service_version()

    @bentoml.service(
        name=SERVICE_NAME,
        workers=settings.workers,
        traffic={"timeout": settings.timeout_s},
        http={"host": settings.host, "port": settings.port},
        metrics={"enabled": True},
    )
    class AssayService:
        """assay rating service: rate, embed and cluster texts with assay's raters."""

        def __init__(self) -> None:
            if settings.threads:
                import torch

                torch.set_num_threads(settings.threads)
            t0 = time.perf_counter()
            self.engine = Engine.load(settings)
            self.load_seconds = time.perf_counter() - t0
            self.metrics = metrics()
            batching = {
                "max_batch_size": settings.max_batch_size,
                "max_latency_ms": settings.max_latency_ms,
            }
            self.rate_batcher = Batcher(
                self.engine.rate, on_batch=self._observer("rate"), **batching
            )
            self.embed_batcher = Batcher(
                self.engine.embed, on_batch=self._observer("embed"), **batching
            )
            self.cluster_batcher = Batcher(
                self.engine.assign, on_batch=self._observer("cluster"), **batching
            )
            self.rater_refs = [
                RaterRef(name=name, version=str(rater.version))
                for name, rater in self.engine.raters.items()
            ]

        def _observer(self, endpoint: str) -> Any:
            histogram = self.metrics["batch"].labels(endpoint=endpoint)
            return histogram.observe

        def __is_ready__(self) -> bool:
            return self.engine is not None

        @bentoml.api(route="/v1/rate")
        async def rate(self, texts: list[str], raters: list[str] | None = None) -> RateResponse:
            """Rate texts with every configured rater, or with the ones named in `raters`.

            Per text and rater: the columns the rater writes in `assay annotate` (scores,
            `.conf`, `domain`, `domain.prob`, `scored_fraction`, `n_tokens`, ...)."""
            if (refused := check_texts(texts, settings)) is not None:
                return refused
            names = list(self.engine.raters) if raters is None else list(dict.fromkeys(raters))
            unknown = [n for n in names if n not in self.engine.raters]
            if unknown or not names:
                return error(
                    422,
                    "raters",
                    f"unknown rater(s) {unknown[:5]}" if unknown else "raters is an empty list",
                    f"use some of {list(self.engine.raters)} (GET /v1/raters), or omit raters",
                )
            wanted = tuple(names)
            try:
                rows = await self.rate_batcher([(text, wanted) for text in texts])
            except Overloaded as e:
                return error(503, "queue", str(e), f"retry after {settings.retry_after_s} s")
            for name in names:
                self.metrics["texts"].labels(endpoint="rate", rater=name).inc(len(texts))
            return RateResponse(
                service_version=version,
                raters=[r for r in self.rater_refs if r.name in wanted],
                results=[RateResult(scores=row) for row in rows],
            )

        @bentoml.api(route="/v1/embed")
        async def embed(self, texts: list[str]) -> EmbedResponse:
            """Unit-length embeddings of the texts (the model of `assay embed`)."""
            if self.engine.embedder is None:
                return error(
                    404, "off", "/v1/embed is off", "start the service with embed_model set"
                )
            if (refused := check_texts(texts, settings)) is not None:
                return refused
            try:
                vectors = await self.embed_batcher(list(texts))
            except Overloaded as e:
                return error(503, "queue", str(e), f"retry after {settings.retry_after_s} s")
            self.metrics["texts"].labels(endpoint="embed", rater="").inc(len(texts))
            return EmbedResponse(
                model=self.engine.embedder.model_name,
                dim=self.engine.embedder.dim,
                embeddings=vectors,
            )

        @bentoml.api(route="/v1/cluster")
        async def cluster(self, texts: list[str]) -> ClusterResponse:
            """Assign texts to the frozen centroids of the served clusters folder."""
            clusters = self.engine.clusters
            if clusters is None:
                return error(
                    404,
                    "off",
                    "/v1/cluster is off",
                    "start the service with --clusters CLUSTERS_DIR",
                )
            if (refused := check_texts(texts, settings)) is not None:
                return refused
            try:
                rows = await self.cluster_batcher(list(texts))
            except Overloaded as e:
                return error(503, "queue", str(e), f"retry after {settings.retry_after_s} s")
            self.metrics["texts"].labels(endpoint="cluster", rater="").inc(len(texts))
            return ClusterResponse(
                k=clusters["k"],
                model=clusters["model"],
                results=[ClusterAssignment(**row) for row in rows],
            )

        def describe(self) -> RatersResponse:
            embedder = self.engine.embedder
            return RatersResponse(
                service_version=version,
                api_version=API_VERSION,
                raters=[RaterDescription(**d) for d in self.engine.describe_raters()],
                embed_model=None if embedder is None else embedder.model_name,
                clusters=self.engine.describe_clusters(),
            )

    AssayService.mount_asgi_app(_info_app(), path=f"/{API_VERSION}", name="info")
    AssayService.add_asgi_middleware(
        GuardMiddleware,
        api_key=api_key(),
        max_body_bytes=settings.max_body_bytes,
        max_in_flight=settings.max_in_flight,
        retry_after_s=settings.retry_after_s,
        on_refuse=lambda status, reason: count_refused(status, reason),
    )
    return AssayService


def _info_app() -> Any:
    """GET routes (BentoML APIs are POST only): a small FastAPI app mounted at /v1, whose
    routes BentoML adds to the OpenAPI spec."""
    import bentoml
    from fastapi import FastAPI

    app = FastAPI(title="assay info")

    @app.get("/raters", response_model=RatersResponse)
    def raters() -> RatersResponse:
        """Configured raters: name, version, kind, columns, spec, weights digest."""
        return bentoml.get_current_service().describe()

    return app


def __getattr__(name: str) -> Any:
    if name == "AssayService":
        service = build_service(ServeSettings.from_env())
        globals()[name] = service
        return service
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
