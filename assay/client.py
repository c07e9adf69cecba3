"""A small Python client of the rating service (``assay serve``), over httpx.

Example::

    from assay.client import AssayClient

    with AssayClient("http://127.0.0.1:3000", api_key=None) as client:
        rows = client.rate(["Some text.", "Another one."])
        rows[0]["assay-mini-v1"]["quality"]          # per text, per rater, per column
        client.rate(["..."], raters=["heuristics"])  # only some raters
        client.embed(["..."])                        # list of unit-length vectors
        client.raters()                              # what the service serves

Errors the service answers (4xx/5xx) raise :class:`ServiceError` with the status and
the service's own message and hint. A 503 (overloaded) is retried after its
Retry-After, up to ``retries`` times; nothing else is retried.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from assay.errors import AssayError


class ServiceError(AssayError):
    """The service answered an error; ``status`` is the HTTP status."""

    def __init__(self, status: int, message: str, hint: str | None = None) -> None:
        super().__init__(f"HTTP {status}: {message}", hint=hint)
        self.status = status


class AssayClient:
    """Client of one service.

    Args:
        url: base URL, e.g. ``http://127.0.0.1:3000``.
        api_key: sent as ``Authorization: Bearer KEY`` when given.
        timeout: seconds per request.
        retries: how often a 503 (overload) is retried after its Retry-After.
    """

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        retries: int = 3,
    ) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.retries = retries
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def __enter__(self) -> AssayClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ---- endpoints --------------------------------------------------------------------

    def rate(
        self, texts: Sequence[str], raters: Sequence[str] | None = None
    ) -> list[dict[str, dict[str, Any]]]:
        """Per text (input order): ``{rater: {column: value}}``."""
        body: dict[str, Any] = {"texts": list(texts)}
        if raters is not None:
            body["raters"] = list(raters)
        answer = self._request("POST", "/v1/rate", body)
        return [result["scores"] for result in answer["results"]]

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Unit-length embeddings, one per text."""
        return self._request("POST", "/v1/embed", {"texts": list(texts)})["embeddings"]

    def cluster(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """Per text: ``{"cluster", "topic", "distance", "pruned"}``."""
        return self._request("POST", "/v1/cluster", {"texts": list(texts)})["results"]

    def raters(self) -> dict[str, Any]:
        """The service's raters (specs, versions, columns), embed model and clustering."""
        return self._request("GET", "/v1/raters")

    def ready(self) -> bool:
        """Whether the service answers ``/readyz`` with 200."""
        import httpx

        try:
            return self._http.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    # ---- plumbing ---------------------------------------------------------------------

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        for attempt in range(self.retries + 1):
            response = self._http.request(method, path, json=body)
            if response.status_code == 503 and attempt < self.retries:
                time.sleep(_retry_after(response.headers.get("retry-after")))
                continue
            break
        if response.status_code >= 400:
            message, hint = response.reason_phrase, None
            try:
                data = response.json()
                if isinstance(data, dict):
                    message = str(data.get("error", message))
                    hint = data.get("hint")
                    if data.get("detail"):
                        message = f"{message}: {data['detail']}"
            except ValueError:
                pass
            raise ServiceError(response.status_code, message, hint)
        return response.json()


def _retry_after(value: str | None) -> float:
    try:
        return min(max(float(value or 1), 0.0), 60.0)
    except ValueError:
        return 1.0
