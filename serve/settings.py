"""Settings of the rating service: one typed dataclass; ``configs/serve.yaml`` mirrors it.

Flags of ``assay serve`` override the YAML file, which overrides these defaults.
``validate`` checks every value early and names the flag (or YAML key) in its message.

The service runs in BentoML worker processes that import ``serve.service`` themselves,
so the settings travel to them as JSON in the ``ASSAY_SERVE_SETTINGS`` environment
variable (``to_env`` / ``from_env``). The API key never goes into that JSON: it is read
from ``ASSAY_API_KEY`` in each worker, so it does not show in settings dumps or logs.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assay.errors import ConfigError

ENV_SETTINGS = "ASSAY_SERVE_SETTINGS"
ENV_CONFIG = "ASSAY_SERVE_CONFIG"
ENV_API_KEY = "ASSAY_API_KEY"
BACKENDS = ("auto", "hf", "vllm")
DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "serve.yaml"


@dataclass
class ServeSettings:
    """What the service loads, how it batches and what it refuses."""

    raters: list[str] = field(default_factory=lambda: ["assay-mini-v1", "heuristics"])
    """Rater references, as ``assay annotate --rater``: a built-in name, a released rater,
    ``PRESET=MODEL_DIR`` or a folder holding rater.json. Each is loaded once per worker."""
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Rater options by rater name (as ``-O RATER.KEY=VALUE``), e.g.
    ``{"assay-mini-v1": {"max_batch_size": 64}}``; passed to the rater's constructor."""
    device: str = "auto"
    """auto | cpu | cuda[:N] for model raters and the embedder."""
    dtype: str = "auto"
    """auto (bf16 on GPU, fp32 on CPU) | float32 | bfloat16."""
    backend: str = "auto"
    """Engine of the model raters, as ``assay annotate --backend``: auto (vLLM on a GPU
    when installed) | hf (transformers) | vllm. vLLM batches continuously inside its
    engine; adaptive batching in front of it still merges requests into one call."""
    embed_model: str | None = "all-minilm-l6-v2"
    """Model behind ``POST /v1/embed`` (a named model or a sentence-transformers folder);
    null turns the endpoint off. With ``clusters`` it must be the clusters' model."""
    clusters: str | None = None
    """A clusters folder (``assay cluster -o``): ``POST /v1/cluster`` assigns texts to its
    frozen centroids. Null turns the endpoint off."""
    host: str = "127.0.0.1"
    """Interface to bind. 0.0.0.0 exposes the service to the network: set an API key."""
    port: int = 3000
    """TCP port."""
    workers: int = 1
    """Worker processes; each loads every rater (memory grows with workers). Workers
    share the listening socket and take *connections*, not requests: a client that keeps
    a pool of keep-alive connections may have all of them served by one worker."""
    threads: int = 1
    """Torch threads per worker (0: torch's default). One worker with all cores'
    threads usually beats several workers on a small CPU machine."""
    max_batch_size: int = 64
    """Adaptive batching: most texts scored in one model call (1 turns batching off)."""
    max_latency_ms: int = 10000
    """Adaptive batching: a request that would wait longer than this in the batch queue
    is answered 503 (BentoML's queue drops it), so it bounds queueing under overload."""
    max_texts: int = 256
    """Most texts in one request (more: 413)."""
    max_chars: int = 100_000
    """Most characters in one text (more: 413). The raters read only the head of a text,
    so longer texts cost upload and tokenising time and give nothing more."""
    max_body_bytes: int = 8_000_000
    """Largest request body in bytes (more: 413), checked before the JSON is parsed."""
    max_in_flight: int = 512
    """Requests processed or queued at once per worker; more are answered 503 with
    Retry-After instead of queueing without bound. Health checks are never refused."""
    retry_after_s: int = 1
    """Seconds a refused client is told to wait (the Retry-After header of a 503)."""
    timeout_s: int = 60
    """Request timeout in seconds (BentoML answers 504 past it)."""
    graceful_timeout_s: int = 30
    """On shutdown, seconds given to in-flight requests to finish."""

    def validate(self) -> ServeSettings:
        if not self.raters:
            raise ConfigError("--rater: give at least one rater", hint="e.g. --rater heuristics")
        if not all(isinstance(r, str) and r for r in self.raters):
            raise ConfigError(f"raters must be a list of non-empty strings, got {self.raters!r}")
        for ref in self.raters:
            check_rater_ref(ref)
        names = [rater_name(r) for r in self.raters]
        if len(set(names)) != len(names):
            raise ConfigError(f"--rater names must be unique, got {names}")
        unknown = sorted(set(self.options) - set(names))
        if unknown:
            raise ConfigError(f"options name raters not given with --rater: {unknown}")
        positive = {
            "port": self.port,
            "workers": self.workers,
            "max_batch_size": self.max_batch_size,
            "max_latency_ms": self.max_latency_ms,
            "max_texts": self.max_texts,
            "max_chars": self.max_chars,
            "max_body_bytes": self.max_body_bytes,
            "max_in_flight": self.max_in_flight,
            "timeout_s": self.timeout_s,
        }
        for name, value in positive.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"--{name.replace('_', '-')} must be an integer >= 1, got {value!r}"
                )
        for name in ("threads", "retry_after_s", "graceful_timeout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(
                    f"--{name.replace('_', '-')} must be an integer >= 0, got {value!r}"
                )
        if self.backend not in BACKENDS:
            raise ConfigError(
                f"--backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}"
            )
        if self.port > 65535:
            raise ConfigError(f"--port must be <= 65535, got {self.port}")
        if self.clusters is not None and self.embed_model is None:
            raise ConfigError("--clusters needs an embedding model (embed_model is null)")
        return self

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> ServeSettings:
        import yaml

        path = Path(path)
        if not path.exists():
            raise ConfigError(f"--config {path} does not exist")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
        return cls().replace(**data)

    def replace(self, **changes: Any) -> ServeSettings:
        """A copy with ``changes``; unknown names are refused with the valid ones."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ConfigError(
                f"unknown serve setting(s) {', '.join(unknown)}",
                hint=f"valid: {', '.join(sorted(names))}",
            )
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_env(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_env(cls) -> ServeSettings:
        """Settings of this worker: ``ASSAY_SERVE_SETTINGS`` (set by ``assay serve``), else
        the YAML file named by ``ASSAY_SERVE_CONFIG``, else ``configs/serve.yaml``
        (so that a bare ``bentoml serve serve.service:AssayService`` works)."""
        raw = os.environ.get(ENV_SETTINGS)
        if raw:
            try:
                data = json.loads(raw)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{ENV_SETTINGS} is not valid JSON: {e}") from e
            return cls().replace(**data).validate()
        path = os.environ.get(ENV_CONFIG)
        if path:
            return cls.from_yaml(path).validate()
        if DEFAULT_CONFIG.exists():
            return cls.from_yaml(DEFAULT_CONFIG).validate()
        return cls().validate()


def rater_name(ref: str) -> str:
    """Column prefix a reference will most likely produce (``fineweb-edu=/m`` -> ``fineweb-edu``;
    a folder -> its name), for matching ``options`` to ``--rater`` as ``assay annotate``."""
    name = ref.partition("=")[0]
    return Path(name).name if "/" in name else name


def check_rater_ref(ref: str) -> None:
    """Refuse a reference no rater answers to, before any worker starts (a worker that
    fails to load would only be restarted over and over)."""
    from raters.registry import BUILTIN, RELEASED, available, presets

    name = ref.partition("=")[0]
    if name in BUILTIN or name in RELEASED or name in presets():
        return
    if (Path(ref) / "rater.json").exists():
        return
    raise ConfigError(
        f"--rater {ref!r} is not a known rater",
        hint=f"use one of: {', '.join(available())}, NAME=MODEL_DIR for a preset, "
        "or a folder containing rater.json",
    )


def api_key() -> str | None:
    """The API key of this worker (``ASSAY_API_KEY``); empty or unset: no auth."""
    key = os.environ.get(ENV_API_KEY, "")
    return key or None
