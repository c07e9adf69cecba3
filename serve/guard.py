"""The ASGI middleware in front of every route: API key, body size, overload.

Checks run before BentoML parses anything, in this order:

1. health probes (``/livez``, ``/healthz``, ``/readyz``) pass untouched: an orchestrator
   must see a busy or key-protected service as alive;
2. with an API key set, every other route but the API docs needs
   ``Authorization: Bearer KEY`` or ``X-API-Key: KEY`` (401 otherwise; compared in
   constant time);
3. more than ``max_in_flight`` requests at once in this worker: 503 with Retry-After,
   instead of queueing without bound;
4. a POST whose Content-Type is not JSON: 415 (BentoML would try other decoders, and a
   ``multipart/form-data`` without boundary made it fail with a 500; found by
   schemathesis);
5. a body over ``max_body_bytes`` (by Content-Length, or counted while reading a chunked
   body): 413 before any JSON parsing.

Any 503 leaving the service (ours, or the batch queue's) carries Retry-After.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

HEALTH = frozenset({"/livez", "/healthz", "/readyz"})
PUBLIC = frozenset({"/", "/docs.json", "/schema.json"})
PUBLIC_PREFIXES = ("/static_content/", "/assets/")


async def send_error(
    send: Send,
    status: int,
    error: str,
    *,
    hint: str | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    """Write a JSON ``{"error", "hint"}`` answer (the ``ErrorResponse`` schema)."""
    body = json.dumps({"error": error, "hint": hint}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def presented_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif name == b"x-api-key" and value:
            return value.decode("latin-1").strip()
    return None


def content_type(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The media type of the request (``application/json``), lower case; None if absent."""
    for name, value in headers:
        if name == b"content-type":
            return value.decode("latin-1").split(";")[0].strip().lower()
    return None


def is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


class GuardMiddleware:
    """See the module docstring. One instance per worker process."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_key: str | None,
        max_body_bytes: int,
        max_in_flight: int,
        retry_after_s: int,
        on_refuse: Callable[[int, str], None] | None = None,
    ) -> None:
        self.app = app
        self.api_key = api_key
        self.max_body_bytes = max_body_bytes
        self.max_in_flight = max_in_flight
        self.retry_after = str(retry_after_s)
        self.on_refuse = on_refuse or (lambda status, reason: None)
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in HEALTH:
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        public = path in PUBLIC or path.startswith(PUBLIC_PREFIXES)
        if self.api_key is not None and not public:
            key = presented_key(scope.get("headers", []))
            if key is None or not hmac.compare_digest(key.encode(), self.api_key.encode()):
                self.on_refuse(401, "auth")
                await send_error(
                    send,
                    401,
                    "missing or wrong API key",
                    hint="send the header 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                    headers={"www-authenticate": "Bearer"},
                )
                return
        if self.in_flight >= self.max_in_flight:
            self.on_refuse(503, "in_flight")
            await send_error(
                send,
                503,
                f"the service is overloaded ({self.max_in_flight} requests in flight)",
                hint=f"retry after {self.retry_after} s",
                headers={"retry-after": self.retry_after},
            )
            return
        media = content_type(scope.get("headers", []))
        if scope.get("method") == "POST" and media is not None and not is_json(media):
            self.on_refuse(415, "content_type")
            await send_error(
                send,
                415,
                f"unsupported Content-Type {media!r}: this API takes JSON",
                hint="send the body as JSON with 'Content-Type: application/json'",
            )
            return
        self.in_flight += 1
        try:
            body = await self._read_body(scope, receive)
            if body is None:
                self.on_refuse(413, "body_bytes")
                await send_error(
                    send,
                    413,
                    f"request body is larger than {self.max_body_bytes:,} bytes",
                    hint="send fewer or shorter texts per request (max_body_bytes)",
                )
                return
            await self.app(scope, _replay(body, receive), self._with_retry_after(send))
        finally:
            self.in_flight -= 1

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole body, or None when it is over the limit (read no further)."""
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    if int(value) > self.max_body_bytes:
                        return None
                except ValueError:
                    pass
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    def _with_retry_after(self, send: Send) -> Send:
        retry_after = self.retry_after.encode()

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 503:
                headers = list(message.get("headers", []))
                if not any(k.lower() == b"retry-after" for k, _ in headers):
                    headers.append((b"retry-after", retry_after))
                message = {**message, "headers": headers}
            await send(message)

        return wrapped


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands out the buffered body once, then defers to the real one
    (which reports the client's disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
