"""Which raters exist and how to build one from a name on the command line.

A rater reference is one of:

- a built-in name: ``heuristics``, ``perplexity`` (``perplexity=MODEL_DIR`` swaps the LM);
- a released rater that ships with assay (``raters/released/<name>/``): ``assay-mini-v1``;
- a preset in ``configs/raters/<name>.json`` bound to local model files:
  ``fineweb-edu=/models/fineweb-edu-classifier`` (presets describe published raters as
  released; their weights cannot be downloaded here, so the folder is the user's);
- a folder holding ``rater.json`` next to its model files (what ``train-rater`` writes).

Options go to the rater's constructor: ``{"max_tokens": 128}``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from assay.errors import ConfigError
from raters.base import Rater

# Heavy backends stay strings until used (lm-eval's MODEL_MAPPING habit).
BUILTIN: dict[str, str] = {
    "heuristics": "raters.heuristics:HeuristicRater",
    "perplexity": "raters.perplexity:PerplexityRater",
}
MODEL_ARGUMENT = {"perplexity": "model"}
# Raters trained by assay and shipped in the repository: folders holding rater.json.
RELEASED: dict[str, str] = {"assay-mini-v1": "released/assay-mini-v1"}
MODEL_OPTIONS = ("device", "dtype")


def preset_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "configs" / "raters"


def presets() -> dict[str, Path]:
    folder = preset_dir()
    return {p.stem: p for p in sorted(folder.glob("*.json"))} if folder.exists() else {}


def released_dir(name: str) -> Path:
    """Folder of a released rater (``raters/released/<name>``)."""
    return Path(__file__).resolve().parent / RELEASED[name]


def available() -> list[str]:
    return sorted({*BUILTIN, *RELEASED, *presets()})


def _import(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def build_rater(ref: str, **options: Any) -> Rater:
    """Build the rater named by ``ref`` (see the module docstring)."""
    name, _, model = ref.partition("=")
    if name in BUILTIN:
        cls = _import(BUILTIN[name])
        if model:
            if name not in MODEL_ARGUMENT:
                raise ConfigError(f"--rater {name} takes no model folder (got {model!r})")
            options[MODEL_ARGUMENT[name]] = model
        if name not in MODEL_ARGUMENT:
            options = {k: v for k, v in options.items() if k not in MODEL_OPTIONS}
        try:
            return cls(**options)
        except TypeError as e:
            raise ConfigError(f"--rater {name}: bad option ({e})") from e
    from raters.encoder import EncoderRater, load_rater_dir
    from raters.spec import RaterSpec

    if name in RELEASED:
        if model:
            raise ConfigError(f"--rater {name} is a released rater and takes no model folder")
        return load_rater_dir(released_dir(name), **options)
    if name in presets():
        spec = RaterSpec.load(presets()[name])
        if not model:
            raise ConfigError(
                f"--rater {name} is a published rater whose weights are not bundled",
                hint=f"download them yourself and pass --rater {name}=/path/to/model_folder",
            )
        backbone = options.pop("backbone", None)  # nemo-deberta: the backbone's folder
        return EncoderRater.from_spec(spec.with_model(model, backbone=backbone), **options)
    path = Path(ref)
    if (path / "rater.json").exists():
        return load_rater_dir(path, **options)
    raise ConfigError(
        f"unknown rater {ref!r}",
        hint=f"use one of: {', '.join(available())}, NAME=MODEL_DIR for a preset, "
        "or a folder containing rater.json",
    )
