"""``assay serve``: start the rating service (BentoML) over the chosen raters.

Registered in ``assay.cli``. The command validates the settings, hands them to the
BentoML workers through the environment (``ASSAY_SERVE_SETTINGS``; the API key through
``ASSAY_API_KEY``, never on a command line that ``ps`` shows) and then *becomes*
``bentoml serve serve.service:AssayService`` (``exec``), so that Ctrl-C and SIGTERM reach
BentoML directly: it stops taking connections and lets in-flight requests finish
(``graceful_timeout_s``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import typer

from assay.cli_common import fail as _fail
from assay.errors import AssayError, ConfigError

SERVICE = "serve.service:AssayService"


def _options(pairs: list[str]) -> dict[str, dict[str, Any]]:
    """``-O assay-mini-v1.max_batch_size=64`` -> {"assay-mini-v1": {"max_batch_size": 64}}."""
    import yaml

    out: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        rater, _, option = key.rpartition(".")  # rater names may hold dots, keys do not
        if not sep or not rater or not option:
            raise ConfigError(f"-O/--option must look like RATER.KEY=VALUE, got {pair!r}")
        out.setdefault(rater, {})[option] = yaml.safe_load(value)
    return out


def serve(
    rater: list[str] = typer.Option(
        [],
        "--rater",
        "-r",
        help="Rater name, NAME=MODEL_DIR, or a folder with rater.json (repeatable; "
        "default: the config's, assay-mini-v1 + heuristics)",
    ),
    option: list[str] = typer.Option(
        [], "-O", "--option", help="Rater option RATER.KEY=VALUE, e.g. assay-mini-v1.max_tokens=64"
    ),
    config: Path | None = typer.Option(
        None, help="YAML settings (see configs/serve.yaml); flags override it"
    ),
    host: str | None = typer.Option(None, help="Interface to bind (default: 127.0.0.1)"),
    port: int | None = typer.Option(None, "--port", "-p", help="TCP port (default: 3000)"),
    workers: int | None = typer.Option(None, help="Worker processes (default: 1)"),
    threads: int | None = typer.Option(None, help="Torch threads per worker (default: 1)"),
    api_key: str | None = typer.Option(
        None,
        envvar="ASSAY_API_KEY",
        show_default=False,
        help="Require this key (Authorization: Bearer KEY); prefer the ASSAY_API_KEY env var",
    ),
    clusters: Path | None = typer.Option(
        None, help="Clusters folder (assay cluster -o) for POST /v1/cluster"
    ),
    embed_model: str | None = typer.Option(
        None, help="Model of POST /v1/embed (default: all-minilm-l6-v2; 'none' turns it off)"
    ),
    device: str | None = typer.Option(None, help="auto | cpu | cuda[:N]"),
    dtype: str | None = typer.Option(None, help="auto | float32 | bfloat16"),
    backend: str | None = typer.Option(
        None, help="Model engine: auto (vLLM on a GPU when installed) | hf | vllm"
    ),
    max_batch_size: int | None = typer.Option(
        None, help="Adaptive batching: texts per model call; 1 = off (default: 64)"
    ),
    max_latency_ms: int | None = typer.Option(
        None, help="Adaptive batching: longest queue wait before 503 (default: 10000)"
    ),
    max_texts: int | None = typer.Option(None, help="Texts per request (default: 256)"),
    max_chars: int | None = typer.Option(None, help="Characters per text (default: 100000)"),
    timeout: int | None = typer.Option(None, help="Request timeout in seconds (default: 60)"),
) -> None:
    """Serve the raters over HTTP: POST /v1/rate, /v1/embed, /v1/cluster; GET /v1/raters."""
    try:
        from serve.settings import ENV_API_KEY, ENV_SETTINGS, ServeSettings

        settings = ServeSettings.from_yaml(config) if config else ServeSettings()
        changes: dict[str, Any] = {
            "host": host,
            "port": port,
            "workers": workers,
            "threads": threads,
            "device": device,
            "dtype": dtype,
            "backend": backend,
            "max_batch_size": max_batch_size,
            "max_latency_ms": max_latency_ms,
            "max_texts": max_texts,
            "max_chars": max_chars,
            "timeout_s": timeout,
        }
        changes = {k: v for k, v in changes.items() if v is not None}
        if rater:
            changes["raters"] = list(rater)
        if option:
            merged = {k: dict(v) for k, v in settings.options.items()}
            for name, opts in _options(option).items():
                merged.setdefault(name, {}).update(opts)
            changes["options"] = merged
        if clusters is not None:
            if not (clusters / "clusters.json").exists():
                raise ConfigError(
                    f"--clusters {clusters} is not a clusters folder (no clusters.json)",
                    hint="pass the -o folder of assay cluster",
                )
            changes["clusters"] = str(clusters.resolve())
        if embed_model is not None:
            changes["embed_model"] = None if embed_model == "none" else embed_model
        settings = settings.replace(**changes).validate()
        if settings.host not in ("127.0.0.1", "localhost", "::1") and not api_key:
            print(
                f"warning: serving on {settings.host} without an API key: anyone who can "
                "reach this port can use it (set ASSAY_API_KEY)",
                file=sys.stderr,
            )
    except AssayError as e:
        _fail(e)
        return
    env = dict(os.environ)
    env[ENV_SETTINGS] = settings.to_env()
    env.pop(ENV_API_KEY, None)
    if api_key:
        env[ENV_API_KEY] = api_key
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("BENTOML_DO_NOT_TRACK", "True")  # no usage analytics from a data tool
    repo = Path(__file__).resolve().parents[1]
    args = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        SERVICE,
        "--host",
        settings.host,
        "--port",
        str(settings.port),
        "--working-dir",
        str(repo),
        "--timeout-graceful-shutdown",
        str(settings.graceful_timeout_s),
    ]
    typer.echo(
        f"serving {', '.join(settings.raters)} on http://{settings.host}:{settings.port} "
        f"(workers={settings.workers}, max_batch_size={settings.max_batch_size}, "
        f"auth={'on' if api_key else 'off'})",
        err=True,
    )
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, args, env)
