"""Which raters exist and how to build one from a name on the command line.

A rater reference is one of:

- a built-in name: ``heuristics``, ``perplexity`` (``perplexity=MODEL_DIR`` swaps the LM),
  ``dsir=TARGET`` (hashed n-gram importance weights toward a target corpus; ``raw=POOL``),
  ``lang`` (language id);
- a released rater that ships with assay (``raters/released/<name>/``): ``assay-mini-v1``;
- a preset in ``configs/raters/<name>.json`` bound to local model files:
  ``fineweb-edu=/models/fineweb-edu-classifier`` (presets describe published raters as
  released; their weights cannot be downloaded here, so the folder is the user's);
- a folder holding ``rater.json`` next to its model files (what ``train-rater`` writes),
  or ``NAME=FOLDER`` to give that rater another name (its column prefix);
- ``hf-classifier=DIR`` (or ``NAME=DIR``): any transformers ``*ForSequenceClassification``
  folder without a ``rater.json``, its columns read from its ``config.json``
  (``id2label``, ``problem_type``; see :mod:`raters.hf_classifier`).

Options go to the rater's constructor: ``{"max_tokens": 128}``. Model raters take
``backend`` (``auto`` | ``hf`` | ``vllm``, see :mod:`raters.vllm_engine`), ``device``,
``dtype`` and batch sizes; decoder raters also ``max_tokens`` / ``text_tokens`` (the
window), e.g. to read a shorter head on CPU.
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
    "dsir": "raters.dsir:DSIRRater",
    "lang": "raters.lang:LangRater",
}
# NAME=VALUE binds VALUE to this constructor argument (a model folder, DSIR's target).
MODEL_ARGUMENT = {"perplexity": "model", "dsir": "target"}
# Built-ins that run a neural model and so take device / dtype / backend.
NEURAL = ("perplexity",)
# Raters trained by assay and shipped in the repository: folders holding rater.json.
RELEASED: dict[str, str] = {"assay-mini-v1": "released/assay-mini-v1"}
MODEL_OPTIONS = ("device", "dtype", "backend")
# Any HF sequence classifier, read from its config.json (raters.hf_classifier).
HF_CLASSIFIER = "hf-classifier"
# Spec fields a decoder rater's options may override.
DECODER_SPEC_OPTIONS = ("max_tokens", "text_tokens", "long_doc")


def preset_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "configs" / "raters"


def presets() -> dict[str, Path]:
    folder = preset_dir()
    return {p.stem: p for p in sorted(folder.glob("*.json"))} if folder.exists() else {}


def released_dir(name: str) -> Path:
    """Folder of a released rater (``raters/released/<name>``)."""
    return Path(__file__).resolve().parent / RELEASED[name]


def available() -> list[str]:
    return sorted({*BUILTIN, *RELEASED, *presets(), HF_CLASSIFIER})


def _import(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def build_rater(ref: str, **options: Any) -> Rater:
    """Build the rater named by ``ref`` (see the module docstring)."""
    name, _, model = ref.partition("=")
    if name == HF_CLASSIFIER:
        if not model:
            raise ConfigError(
                f"--rater {HF_CLASSIFIER} needs a model folder",
                hint=f"--rater {HF_CLASSIFIER}=/path/to/model (config.json + weights + tokenizer)",
            )
        return _hf_classifier(model, name, options)
    if name in BUILTIN:
        cls = _import(BUILTIN[name])
        if model:
            if name not in MODEL_ARGUMENT:
                raise ConfigError(f"--rater {name} takes no model folder (got {model!r})")
            options[MODEL_ARGUMENT[name]] = model
        if name not in NEURAL:
            options = {k: v for k, v in options.items() if k not in MODEL_OPTIONS}
        elif options.pop("backend", "auto") == "vllm":
            raise ConfigError(f"--rater {name} runs on transformers only (--backend vllm)")
        try:
            return cls(**options)
        except TypeError as e:
            raise ConfigError(f"--rater {name}: bad option ({e})") from e
    if name in RELEASED:
        if model:
            raise ConfigError(f"--rater {name} is a released rater and takes no model folder")
        return from_spec(load_spec(released_dir(name)), options)
    if name in presets():
        spec = load_spec(presets()[name])
        if model:
            if spec.kind == "decoder":
                spec = spec.with_model(model)
            else:
                backbone = options.pop("backbone", None)  # nemo-deberta: the backbone
                spec = spec.with_model(model, backbone=backbone)
        elif spec.model is None:
            raise ConfigError(
                f"--rater {name} is a published rater whose weights are not bundled",
                hint=f"download them yourself and pass --rater {name}=/path/to/model_folder",
            )
        return from_spec(spec, options)
    path = Path(ref)
    if (path / "rater.json").exists():
        return from_spec(load_spec(path), options)
    if model and (Path(model) / "rater.json").exists():
        # NAME=DIR on a rater folder: the folder's rater under another column prefix
        # (``--rater influence=out/influence-model`` -> ``influence.score``).
        import dataclasses

        from raters.spec import _RATER_NAME

        if not _RATER_NAME.match(name):
            raise ConfigError(f"--rater {ref}: {name!r} is not a usable rater name")
        spec = load_spec(Path(model))
        return from_spec(dataclasses.replace(spec, name=name), options)
    if model:
        from raters.hf_classifier import is_sequence_classifier

        if is_sequence_classifier(Path(model).expanduser()):
            return _hf_classifier(model, name, options)
    raise ConfigError(
        f"unknown rater {ref!r}",
        hint=f"use one of: {', '.join(available())}, NAME=MODEL_DIR for a preset or a "
        "sequence classifier, or a folder containing rater.json",
    )


def _hf_classifier(model: str, name: str, options: dict[str, Any]) -> Rater:
    from raters.hf_classifier import HFClassifierRater

    return HFClassifierRater.from_folder(model, name, **options)


def load_spec(path: str | Path) -> Any:
    """A ``rater.json`` (or preset) as a :class:`~raters.spec.RaterSpec` (encoder) or a
    :class:`~raters.decoder_spec.DecoderSpec` (decoder), by its ``kind``."""
    import json

    path = Path(path)
    file = path / "rater.json" if path.is_dir() else path
    try:
        kind = json.loads(file.read_text()).get("kind", "encoder")
    except (OSError, ValueError, AttributeError):
        kind = "encoder"  # the spec loader reports what is wrong with the file
    if kind == "decoder":
        from raters.decoder_spec import DecoderSpec

        spec = DecoderSpec.load(file)
        if spec.model is None and file.name == "rater.json":
            import dataclasses

            spec = dataclasses.replace(spec, model=".")
        return spec
    from raters.spec import RaterSpec

    return RaterSpec.load(file)


def from_spec(spec: Any, options: dict[str, Any]) -> Rater:
    """The rater a spec describes, on the engine the options choose."""
    if spec.kind == "decoder":
        import dataclasses

        from raters.decoder import DecoderRater

        changes = {k: options.pop(k) for k in DECODER_SPEC_OPTIONS if k in options}
        if changes:
            spec = dataclasses.replace(spec, **changes)
        try:
            return DecoderRater.from_spec(spec, **options)
        except TypeError as e:
            raise ConfigError(f"--rater {spec.name}: bad option ({e})") from e
    from raters.encoder import EncoderRater

    try:
        return EncoderRater.from_spec(spec, **options)
    except TypeError as e:
        raise ConfigError(f"--rater {spec.name}: bad option ({e})") from e
