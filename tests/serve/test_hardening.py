"""Hardening of the real service: API key, limits (413), content type (415), overload
(503 + Retry-After), graceful shutdown, and no stack trace in any answer."""

from __future__ import annotations

import contextlib
import json
import socket
import time

import httpx
import pytest


def clean(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.text)
    assert "Traceback" not in response.text and 'File "' not in response.text
    body = response.json()
    assert body["error"]
    return body


def open_slow_request(url: str, body: bytes, headers: dict[str, str] | None = None):
    """Send the headers and all of the body but its last byte: the request is in flight
    (its body still being read) until ``finish`` sends the rest."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=60)
    lines = [
        "POST /v1/rate HTTP/1.1",
        f"Host: {host}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *[f"{k}: {v}" for k, v in (headers or {}).items()],
    ]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body[:-1])
    time.sleep(0.5)  # let the server take the connection and start reading

    def finish() -> tuple[int, bytes]:
        with contextlib.suppress(OSError):  # the server may have answered (504) already
            sock.sendall(body[-1:])
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        sock.close()
        head, _, rest = data.partition(b"\r\n\r\n")
        return int(head.split()[1]), rest

    return finish


def test_api_key_required(limited_server, auth, api_key):
    url = limited_server.url
    body = clean(httpx.post(f"{url}/v1/rate", json={"texts": ["a"]}), 401)
    assert "API key" in body["error"]
    wrong = httpx.post(f"{url}/v1/rate", json={"texts": ["a"]}, headers={"X-API-Key": "nope"})
    assert clean(wrong, 401)
    assert httpx.get(f"{url}/v1/raters").status_code == 401
    assert httpx.get(f"{url}/metrics").status_code == 401
    ok = httpx.post(f"{url}/v1/rate", json={"texts": ["a b."]}, headers=auth)
    assert ok.status_code == 200 and ok.json()["raters"][0]["name"] == "heuristics"
    ok = httpx.post(f"{url}/v1/rate", json={"texts": ["a b."]}, headers={"X-API-Key": api_key})
    assert ok.status_code == 200
    for path in ("/livez", "/healthz", "/readyz", "/docs.json"):  # probes and docs stay open
        assert httpx.get(f"{url}{path}").status_code == 200, path


def test_limits(limited_server, auth):
    url = limited_server.url
    body = clean(httpx.post(f"{url}/v1/rate", json={"texts": ["a"] * 5}, headers=auth), 413)
    assert "5" in body["error"] and "4" in body["error"] and "max_texts" in body["hint"]
    body = clean(httpx.post(f"{url}/v1/rate", json={"texts": ["x" * 1001]}, headers=auth), 413)
    assert "1,001" in body["error"]
    big = json.dumps({"texts": ["y" * 900] * 30})  # > 20,000 bytes, checked before parsing
    body = clean(
        httpx.post(
            f"{url}/v1/rate",
            content=big,
            headers={**auth, "content-type": "application/json"},
        ),
        413,
    )
    assert "20,000 bytes" in body["error"]
    off = clean(httpx.post(f"{url}/v1/embed", json={"texts": ["a"]}, headers=auth), 404)
    assert "embed" in off["error"]


def test_chunked_body_over_the_limit(limited_server, auth):
    def chunks():
        for _ in range(30):
            yield b"z" * 1000

    answer = httpx.post(
        f"{limited_server.url}/v1/rate",
        content=chunks(),  # no Content-Length: counted while reading
        headers={**auth, "content-type": "application/json"},
    )
    clean(answer, 413)


def test_content_type_must_be_json(limited_server, auth):
    for media in ("multipart/form-data", "text/plain", "application/x-www-form-urlencoded"):
        answer = httpx.post(
            f"{limited_server.url}/v1/rate",
            content=b'{"texts": ["a"]}',
            headers={**auth, "content-type": media},
        )
        assert "JSON" in clean(answer, 415)["error"]


def test_overload_is_503_with_retry_after(limited_server, auth):
    """max_in_flight=1: while one request is in flight, the next is refused at once."""
    finish = open_slow_request(limited_server.url, json.dumps({"texts": ["a b c."]}).encode(), auth)
    refused = httpx.post(f"{limited_server.url}/v1/rate", json={"texts": ["a"]}, headers=auth)
    body = clean(refused, 503)
    assert refused.headers["retry-after"] == "3" and "overloaded" in body["error"]
    assert httpx.get(f"{limited_server.url}/readyz").status_code == 200  # probes pass
    status, _ = finish()
    assert status == 200
    again = httpx.post(f"{limited_server.url}/v1/rate", json={"texts": ["a"]}, headers=auth)
    assert again.status_code == 200


def test_timeout_is_504(limited_server, auth):
    """A request not done within timeout_s (here: a client stalling its body) gets 504,
    and its in-flight slot comes back."""
    finish = open_slow_request(limited_server.url, b'{"texts": ["stalled"]}', auth)
    time.sleep(3.5)
    status, body = finish()
    assert status == 504, body
    assert b"Traceback" not in body
    ok = httpx.post(f"{limited_server.url}/v1/rate", json={"texts": ["a"]}, headers=auth)
    assert ok.status_code == 200


@pytest.mark.slow
def test_graceful_shutdown_finishes_in_flight_requests(tmp_path, make_server):
    server = make_server(
        ["--rater", "heuristics", "--embed-model", "none"], tmp_path / "server.log"
    ).wait_ready()
    try:
        finish = open_slow_request(server.url, json.dumps({"texts": ["Last words."]}).encode())
        server.proc.terminate()  # SIGTERM while the request is in flight
        time.sleep(1.0)
        status, body = finish()
        assert status == 200
        assert json.loads(body)["results"][0]["scores"]["heuristics"]["rps_doc_word_count"] == 2
        server.proc.wait(30)
        assert server.proc.returncode is not None
        with pytest.raises(httpx.TransportError):  # and it no longer takes requests
            httpx.get(f"{server.url}/readyz", timeout=2)
    finally:
        server.stop()


def test_cli_refuses_bad_settings_before_starting(tmp_path):
    import subprocess
    import sys

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "assay", "serve", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    result = run("--rater", "no-such-rater")
    assert result.returncode == 2 and "no-such-rater" in result.stderr
    assert "heuristics" in result.stderr  # lists the valid ones
    result = run("--max-batch-size", "0")
    assert result.returncode == 2 and "--max-batch-size" in result.stderr
    result = run("--clusters", str(tmp_path))
    assert result.returncode == 2 and "clusters.json" in result.stderr
    result = run("-O", "heuristics=1")
    assert result.returncode == 2 and "RATER.KEY=VALUE" in result.stderr
