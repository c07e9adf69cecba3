"""Real servers for the service tests: ``assay serve`` in a subprocess on 127.0.0.1 and a
free port, waited for on /readyz, stopped (SIGTERM, then SIGKILL of its process group)
at the end. One server per configuration and module keeps the starts few."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
API_KEY = "test-key-5f1c"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m assay serve ARGS --port P`` as a subprocess."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        environ = {**os.environ, "HF_HUB_OFFLINE": "1", "BENTOML_DO_NOT_TRACK": "True"}
        environ.pop("ASSAY_API_KEY", None)
        environ.update(env or {})
        command = [sys.executable, "-m", "assay", "serve", "--host", "127.0.0.1"]
        command += ["--port", str(self.port), *args]
        self._log = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            command,
            cwd=REPO,
            env=environ,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the workers die with it
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def wait_ready(self, timeout: float = 180) -> Server:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        self.stop()
        pytest.fail(f"server not ready after {timeout} s:\n{self.log()}")

    def stop(self, timeout: float = 30) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        with contextlib.suppress(ProcessLookupError):  # what is left of the group, by id
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()
        return self.proc.returncode


@pytest.fixture(scope="session")
def clusters(tmp_path_factory, demo_sample) -> dict[str, Path]:
    """The demo sample annotated (heuristics), embedded (MiniLM) and clustered (k=4)."""
    import torch

    from assay.annotate import annotate
    from clustering.config import ClusterConfig
    from clustering.embed import Embedder, embed_corpus
    from clustering.run import cluster_corpus
    from raters.registry import build_rater

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("serve-corpus")
    src = root / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in demo_sample))
    annotate([src], root / "ann", [build_rater("heuristics")], hash_inputs=False)
    embed_corpus(root / "ann", root / "emb", Embedder("all-minilm-l6-v2", device="cpu"))
    config = ClusterConfig(k=4, topics=2, map_method="pca", terms_docs=10, map_points=50)
    cluster_corpus(root / "ann", root / "emb", root / "clusters", config)
    return {"input": src, "clustered": root / "ann", "clusters": root / "clusters"}


@pytest.fixture(scope="session")
def server_process(clusters, tmp_path_factory):
    """The default service (assay-mini-v1 + heuristics, embed, cluster), no API key,
    started before ``corpus`` annotates so that both load their models at once."""
    log = tmp_path_factory.mktemp("serve-log") / "server.log"
    srv = Server(["--clusters", str(clusters["clusters"])], log)
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def corpus(server_process, clusters) -> dict[str, Path]:
    """What the service must reproduce: the clustering above and ``assay annotate`` of
    the same texts with the service's raters (assay-mini-v1 + heuristics)."""
    from assay.annotate import annotate
    from raters.registry import build_rater

    out = clusters["input"].parent / "ann-mini"
    raters = [build_rater("assay-mini-v1", device="cpu"), build_rater("heuristics")]
    annotate([clusters["input"]], out, raters, hash_inputs=False)
    server_process.wait_ready()
    return {**clusters, "annotated": out}


@pytest.fixture(scope="session")
def server(server_process, corpus):
    """The default service, ready."""
    return server_process


LIMITED = {
    "raters": ["heuristics"],
    "embed_model": None,
    "max_texts": 4,
    "max_chars": 1000,
    "max_body_bytes": 20000,
    "max_in_flight": 1,
    "retry_after_s": 3,
    "timeout_s": 3,
}


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory):
    """Heuristics only, an API key (from the environment) and tiny limits."""
    import yaml

    folder = tmp_path_factory.mktemp("serve-limited")
    (folder / "serve.yaml").write_text(yaml.safe_dump(LIMITED))
    srv = Server(
        ["--config", str(folder / "serve.yaml")],
        folder / "server.log",
        env={"ASSAY_API_KEY": API_KEY},
    )
    yield srv.wait_ready()
    srv.stop()


@pytest.fixture(scope="session")
def make_server():
    """The ``Server`` class, for tests that need a server of their own (with
    ``--import-mode=importlib`` a test module cannot import from conftest)."""
    return Server


@pytest.fixture(scope="session")
def auth() -> dict[str, str]:
    """Headers carrying the limited server's API key."""
    return {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="session")
def api_key() -> str:
    return API_KEY
