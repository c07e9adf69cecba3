"""Every endpoint of the real service, called over HTTP: rate (parity with annotate),
embed, cluster (the clustering's own assignments), raters, health, metrics, OpenAPI,
bad input of every kind (4xx with a reason, never a 5xx or a traceback)."""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import numpy as np
import pytest

from assay.annotate import read_annotations
from assay.client import AssayClient, ServiceError

TOL = 1e-4  # float32 scores; batches of other sizes pad differently (masked, ~1e-6)


def post(server, path: str, body, **kw) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, timeout=120, **kw)


def assert_clean_error(response: httpx.Response, status: int | tuple[int, ...]) -> dict:
    statuses = status if isinstance(status, tuple) else (status,)
    assert response.status_code in statuses, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    assert "Traceback" not in response.text and 'File "' not in response.text
    return response.json()


def test_rate_matches_annotate(server, corpus):
    """Parity: the service's scores are assay annotate's for the same texts and raters."""
    table = read_annotations(corpus["annotated"]).to_pylist()
    texts = [row["text"] for row in table]
    with AssayClient(server.url) as client:
        rows = []
        for start in range(0, len(texts), 16):  # batch shapes unlike annotate's
            rows += client.rate(texts[start : start + 16])
    assert len(rows) == len(table)
    compared = 0
    for row, ref in zip(rows, table, strict=True):
        assert set(row) == {"assay-mini-v1", "heuristics"}
        for rater, columns in row.items():
            for column, value in columns.items():
                expected = ref[f"{rater}.{column}"]
                if isinstance(expected, str):
                    assert value == expected, (rater, column)
                elif expected is None or np.isnan(expected):
                    assert value is None
                else:
                    assert value == pytest.approx(expected, abs=TOL), (rater, column)
                compared += 1
    assert compared > len(table) * 20  # every column of both raters was compared


def test_rate_response_shape_and_rater_subset(server, demo_sample):
    texts = [d["text"] for d in demo_sample[:3]]
    answer = post(server, "/v1/rate", {"texts": texts, "raters": ["assay-mini-v1"]})
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["raters"] == [{"name": "assay-mini-v1", "version": "1"}]
    assert re.match(r"\d+\.\d+", data["service_version"])
    labels = set(
        httpx.get(f"{server.url}/v1/raters").json()["raters"][0]["spec"]["domain"]["labels"]
    )
    for result in data["results"]:
        scores = result["scores"]["assay-mini-v1"]
        assert set(result["scores"]) == {"assay-mini-v1"}
        assert 0.0 <= scores["quality"] <= 1.0 and 0.5 <= scores["quality.conf"] <= 1.0
        assert scores["domain"] in labels and 0 < scores["domain.prob"] <= 1
        assert 0 < scores["scored_fraction"] <= 1 and scores["n_tokens"] > 0


def test_rater_choice_errors(server):
    body = assert_clean_error(post(server, "/v1/rate", {"texts": ["a"], "raters": ["nope"]}), 422)
    assert "nope" in body["error"] and "heuristics" in body["hint"]
    assert_clean_error(post(server, "/v1/rate", {"texts": ["a"], "raters": []}), 422)


def test_raters_endpoint(server):
    data = httpx.get(f"{server.url}/v1/raters").json()
    assert [r["name"] for r in data["raters"]] == ["assay-mini-v1", "heuristics"]
    mini = data["raters"][0]
    assert mini["kind"] == "encoder" and len(mini["weights_sha256"]) == 64
    assert {"quality", "quality.conf", "domain", "domain.prob", "scored_fraction"} <= set(
        mini["columns"]
    )
    assert "model_path" not in json.dumps(data)  # no local paths leak to clients
    assert data["embed_model"] == "all-minilm-l6-v2" and data["clusters"]["k"] == 4


def test_empty_list_is_an_empty_answer(server):
    for path in ("/v1/rate", "/v1/embed", "/v1/cluster"):
        answer = post(server, path, {"texts": []})
        assert answer.status_code == 200, answer.text
        data = answer.json()
        assert data.get("results", data.get("embeddings")) == []


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b'{"texts": [', "malformed JSON"),
        (b"", "empty body"),
        (b'{"texts": "one text"}', "a string, not a list"),
        (b'{"texts": [1, 2]}', "numbers"),
        (b'{"texts": [null]}', "null text"),
        (b'{"texts": [["nested"]]}', "nested list"),
        (b'{"text": ["typo"]}', "missing field"),
        (b'{"texts": ["a"], "raters": "heuristics"}', "raters not a list"),
        (b"[1, 2]", "not an object"),
        (b"null", "null"),
        (b'{"texts": ["\\ud800"]}', "lone surrogate"),
        (b'{"texts": ["\xff\xfe"]}', "invalid UTF-8"),
    ],
)
def test_bad_bodies_are_4xx_with_a_reason(server, raw, why):
    answer = httpx.post(
        f"{server.url}/v1/rate",
        content=raw,
        headers={"content-type": "application/json"},
        timeout=60,
    )
    body = assert_clean_error(answer, (400, 422))
    assert body["error"], why


def test_unicode_edge_cases(server):
    texts = [
        "Ünïcödé — “quotes” and ½ fractions.",
        "漢字かな交じり文。中文句子。",
        "مرحبا بالعالم",  # right to left
        "e\u0301\u0301 combining marks",
        "zero\u200bwidth\ufeffand NUL\u0000 inside",
        "emoji 👩‍👩‍👧 🇫🇷 family",
        "\U0010ffff private plane",
        "   \n\t  ",
        "",
    ]
    answer = post(server, "/v1/rate", {"texts": texts})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert len(results) == len(texts)
    for result in results:
        assert set(result["scores"]) == {"assay-mini-v1", "heuristics"}
    embedded = post(server, "/v1/embed", {"texts": texts})
    assert embedded.status_code == 200, embedded.text


def test_limits_default_server(server):
    huge = "word " * 30_000  # 150,000 characters > max_chars 100,000
    body = assert_clean_error(post(server, "/v1/rate", {"texts": ["ok", huge]}), 413)
    assert "text 1" in body["error"] and "100,000" in body["error"]
    body = assert_clean_error(post(server, "/v1/embed", {"texts": ["a"] * 257}), 413)
    assert "257" in body["error"]


def test_embed_matches_embedder(server, demo_sample):
    from clustering.embed import Embedder

    texts = [d["text"] for d in demo_sample[:5]]
    data = post(server, "/v1/embed", {"texts": texts}).json()
    vectors = np.array(data["embeddings"])
    assert data["dim"] == 384 and vectors.shape == (5, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    reference = Embedder("all-minilm-l6-v2", device="cpu").encode(texts)
    assert np.allclose(vectors, reference, atol=1e-4)


def test_cluster_reproduces_the_clustering(server, corpus):
    """The service assigns the clustered documents to their clusters (the run stored
    float16 embeddings, the service embeds in float32: a border case may flip)."""
    import pyarrow.parquet as pq

    n = 30  # half the sample: embedding whole documents is the slow part on 2 cores
    texts = read_annotations(corpus["clustered"]).column("text").to_pylist()[:n]
    shards = sorted(corpus["clusters"].glob("part-*.parquet"))
    clustered = [r for s in shards for r in pq.read_table(s).to_pylist()][:n]
    info = json.loads((corpus["clusters"] / "clusters.json").read_text())["clusters"]
    data = post(server, "/v1/cluster", {"texts": texts}).json()
    assert data["k"] == 4 and data["model"] == "all-minilm-l6-v2"
    same = 0
    for got, ref in zip(data["results"], clustered, strict=True):
        same += got["cluster"] == ref["cluster"]
        assert got["topic"] == info[got["cluster"]]["topic"]
        assert got["pruned"] == (not info[got["cluster"]]["kept"])
        if got["cluster"] == ref["cluster"]:
            assert got["distance"] == pytest.approx(ref["cluster.distance"], abs=2e-3)
    assert same >= 0.95 * len(texts)


def test_health_metrics_and_openapi(server):
    for path in ("/livez", "/healthz", "/readyz"):
        assert httpx.get(f"{server.url}{path}").status_code == 200
    spec = httpx.get(f"{server.url}/docs.json").json()
    assert {"/v1/rate", "/v1/embed", "/v1/cluster", "/v1/raters"} <= set(spec["paths"])
    assert "RateResponse" in json.dumps(spec)
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'assay_texts_total{endpoint="rate",rater="heuristics"}' in metrics
    assert "bentoml_service_request_total" in metrics
    assert "assay_batch_texts_bucket" in metrics


def test_concurrent_requests_are_batched(server):
    """32 clients at once, one text each: the dispatcher merges them into fewer calls."""

    def batches() -> tuple[float, float]:
        text = httpx.get(f"{server.url}/metrics").text
        pattern = r'assay_batch_texts_(sum|count)\{endpoint="rate"\} ([0-9.e+]+)'
        found = dict(re.findall(pattern, text))
        return float(found.get("sum", 0)), float(found.get("count", 0))

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
            calls = [
                client.post("/v1/rate", json={"texts": [f"Text number {i}. " * 20]})
                for i in range(32)
            ]
            return [r.status_code for r in await asyncio.gather(*calls)]

    texts0, calls0 = batches()
    for _ in range(2):  # the first burst may also train the dispatcher's cost model
        assert set(asyncio.run(burst())) == {200}
    texts1, calls1 = batches()
    assert texts1 - texts0 == 64
    assert calls1 - calls0 < 48, "no request was merged with another"


def test_client_errors_and_retries(server):
    with AssayClient(server.url) as client:
        assert client.ready()
        with pytest.raises(ServiceError) as err:
            client.rate(["a"], raters=["nope"])
        assert err.value.status == 422 and "nope" in str(err.value)
        assert client.raters()["api_version"] == "v1"
        assert len(client.cluster(["A recipe: mix flour and water."])) == 1


@pytest.mark.slow
def test_schemathesis_finds_no_server_error(server, tmp_path):
    """Property-based requests from the OpenAPI spec: never a 5xx."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    st = shutil.which("st") or str(Path(sys.executable).parent / "st")
    result = subprocess.run(
        [
            st,
            "run",
            f"{server.url}/docs.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "25",
            "--seed",
            "1",
            "--request-timeout",
            "60",
            "--exclude-path",
            "/metrics",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
