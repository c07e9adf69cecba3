"""Device and dtype choice shared by the model raters."""

from __future__ import annotations

from typing import Any

from assay.errors import ConfigError

DTYPES = ("auto", "float32", "bfloat16", "float16")


def pick_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device} asked for, but torch sees no CUDA device")
    return device


def pick_dtype(dtype: str, device: str) -> Any:
    """``auto`` -> bfloat16 on GPU, float32 on CPU (exact; ask for bfloat16 to go faster)."""
    import torch

    if dtype not in DTYPES:
        raise ConfigError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, dtype)
