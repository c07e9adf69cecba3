"""The service with two worker processes: each loads the raters, both take requests, they
answer alike, and SIGTERM stops them all (BentoML gives every worker a process group of
its own, so a killed process group would not reach them)."""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path

import httpx
import pytest

pattern = re.compile(r"entry_service:assay:(\d+)\][^\n]*path=/v1/rate")


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            out.append(int(entry.name))
    return out


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def rate_all(url: str, texts: list[str], clients: int) -> list[dict]:
    results: list[dict] = [{}] * len(texts)
    queue = list(enumerate(texts))
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:

        async def client() -> None:
            while queue:
                i, text = queue.pop()
                response = await http.post("/v1/rate", json={"texts": [text]})
                assert response.status_code == 200, response.text
                results[i] = response.json()["results"][0]["scores"]

        await asyncio.gather(*(client() for _ in range(clients)))
    return results


@pytest.mark.slow
def test_two_workers_share_the_load_and_stop_together(tmp_path, make_server, demo_sample):
    log = tmp_path / "server.log"
    server = make_server(["--workers", "2", "--embed-model", "none"], log).wait_ready()
    try:
        workers = [
            p
            for p in children(server.proc.pid)
            if b"--worker-id" in Path(f"/proc/{p}/cmdline").read_bytes()
        ]
        assert len(workers) == 2, workers
        distinct = [d["text"] for d in demo_sample[:12]]
        texts = distinct * 4  # each text answered several times, by either worker
        scores = asyncio.run(rate_all(server.url, texts, clients=12))
        for i, text in enumerate(texts):
            first = scores[distinct.index(text)]
            for rater, columns in scores[i].items():
                for column, value in columns.items():
                    if isinstance(value, float):
                        assert value == pytest.approx(first[rater][column], abs=1e-4), column
                    else:
                        assert value == first[rater][column], column
        # Workers share one listening socket and take connections, not requests: the
        # pooled keep-alive connections above may all have gone to one worker. Fresh
        # connections, one at a time, reach both (BentoML's access log names the worker).
        served: set[str] = set()
        for text in distinct * 5:
            if len(served) == 2:
                break
            response = httpx.post(f"{server.url}/v1/rate", json={"texts": [text]}, timeout=60)
            assert response.status_code == 200
            time.sleep(0.1)  # the access line is written after the answer
            served = set(re.findall(pattern, log.read_text()))
        assert served == {"1", "2"}, served
        server.proc.terminate()
        server.proc.wait(60)
        for pid in workers:
            for _ in range(50):
                if not alive(pid):
                    break
                time.sleep(0.2)
            assert not alive(pid), f"worker {pid} outlived the server"
    finally:
        server.stop()
