"""Every request and response body of the HTTP API (v1), in one place.

BentoML builds the OpenAPI spec (``GET /docs.json``) from these pydantic models and from
the typed parameters of the API methods in ``serve.service``. Values a rater returns
are JSON scalars: floats (scores, ``.conf``, ``.prob``, ``scored_fraction``), ints
(``n_tokens``), strings (``domain``, ``.label``) or null (a non-finite float: JSON has no
NaN). Changing a field's meaning means a new ``/v2`` route, not an edit here.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

API_VERSION = "v1"

Scalar = float | int | str | bool | None


class RaterRef(BaseModel):
    """Which rater produced a block of scores."""

    name: str = Field(description="Rater name: the prefix of its columns in annotate")
    version: str = Field(description="Rater version (changes whenever its scores do)")


class RateResult(BaseModel):
    """Scores of one text, by rater then column (as ``<rater>.<column>`` in annotate)."""

    scores: dict[str, dict[str, Scalar]] = Field(
        description="rater name -> column -> value, e.g. "
        '{"assay-mini-v1": {"quality": 0.93, "quality.conf": 0.93, "domain": "legal"}}'
    )


class RateResponse(BaseModel):
    """``POST /v1/rate``: one result per input text, in input order."""

    service_version: str
    raters: list[RaterRef]
    results: list[RateResult]


class RaterDescription(BaseModel):
    """``GET /v1/raters``: one configured rater."""

    name: str
    version: str
    kind: str = Field(description="encoder | decoder | heuristics | perplexity | ...")
    columns: list[str] = Field(description="Columns this rater returns per text")
    spec: dict[str, Any] | None = Field(
        default=None, description="Rater spec (criteria, scales, domain labels, max tokens)"
    )
    weights_sha256: str | None = Field(default=None, description="Digest of the weights")


class RatersResponse(BaseModel):
    service_version: str
    api_version: str
    raters: list[RaterDescription]
    embed_model: str | None = Field(description="Model of /v1/embed; null: endpoint off")
    clusters: dict[str, Any] | None = Field(
        description="The frozen clustering of /v1/cluster (k, topics, model); null: off"
    )


class EmbedResponse(BaseModel):
    """``POST /v1/embed``: unit-length vectors, one per text, in input order."""

    model: str
    dim: int
    embeddings: list[list[float]]


class ClusterAssignment(BaseModel):
    """Nearest frozen centroid of one text."""

    cluster: int = Field(description="Cluster id in the clusters folder (clusters.json)")
    topic: int = Field(description="Topic the cluster was merged into")
    distance: float = Field(description="Squared distance to the centroid (as cluster.distance)")
    pruned: bool = Field(description="Whether the clustering pruned this cluster")


class ClusterResponse(BaseModel):
    """``POST /v1/cluster``: one assignment per text, in input order."""

    k: int
    model: str
    results: list[ClusterAssignment]


class ErrorResponse(BaseModel):
    """Body of every 4xx/5xx answer this service writes itself (never a stack trace)."""

    error: str = Field(description="What was wrong")
    hint: str | None = Field(default=None, description="How to fix it")
