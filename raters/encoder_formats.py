"""Loading encoder raters in their released layouts (HF sequence classification, NeMo
Curator's DeBERTa classifier) and assay's own (``assay-heads``: a backbone + one linear
layer, see :mod:`raters.heads`), with the tokenizer the engine needs (fast, with
offsets)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from assay.errors import AssayError, ConfigError
from raters.spec import RaterSpec

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "spm.model")


def special_tokens(tokenizer: Any) -> tuple[list[int], list[int]]:
    """Ids the tokenizer puts before and after a text (``[CLS]`` / ``[SEP]`` for BERT)."""
    bare = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    for i in range(len(full) - len(bare) + 1):
        if full[i : i + len(bare)] == bare:
            return list(full[:i]), list(full[i + len(bare) :])
    raise AssayError(f"cannot tell the special tokens of {type(tokenizer).__name__}: {full}")


def _load_tokenizer(folder: Path, spec: RaterSpec) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(
        folder, trust_remote_code=spec.trust_remote_code, local_files_only=True
    )
    # Windows are cut by us, not by the tokenizer: silence its "sequence longer than
    # model_max_length" warning for the long texts it is handed.
    tok.model_max_length = 1 << 40
    if not getattr(tok, "is_fast", False):
        raise ConfigError(
            f"model: the tokenizer in {folder} is not a fast (Rust) tokenizer",
            hint="windows need character offsets: save a tokenizer.json with the model",
        )
    return tok


def load_hf(spec: RaterSpec, model_dir: Path, dtype: Any) -> tuple[Any, Any, int, dict]:
    import torch
    from transformers import AutoModelForSequenceClassification

    model, info = AutoModelForSequenceClassification.from_pretrained(
        model_dir,
        dtype=dtype,
        trust_remote_code=spec.trust_remote_code,
        local_files_only=True,
        output_loading_info=True,
    )
    if info.get("missing_keys"):
        missing = sorted(info["missing_keys"])
        raise AssayError(
            f"{model_dir}: the checkpoint lacks {len(missing)} weight(s), e.g. {missing[:3]}",
            hint="a rater needs its trained heads; is this the base model rather than the rater?",
        )

    class Logits(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).logits

    config = model.config
    id2label = {int(k): str(v) for k, v in (config.id2label or {}).items()}
    return Logits(model), _load_tokenizer(model_dir, spec), int(config.num_labels), id2label


def load_nemo(spec: RaterSpec, model_dir: Path) -> tuple[Any, Any, int, dict]:
    """NeMo Curator's classifier: ``AutoModel`` backbone as ``model.*``, dropout and a
    linear ``fc`` applied to the first token (NeMo then takes a softmax; we keep logits)."""
    import torch
    from transformers import AutoConfig, AutoModel

    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise ConfigError(f"model: {model_dir} has no config.json (nemo-deberta layout)")
    config = json.loads(config_path.read_text())
    if not isinstance(config.get("id2label"), dict):
        raise ConfigError(f"model: {config_path} has no id2label (nemo-deberta layout)")
    id2label = {int(k): str(v) for k, v in config["id2label"].items()}
    backbone = _nemo_backbone(spec, model_dir, config)
    bconfig = AutoConfig.from_pretrained(
        backbone, trust_remote_code=spec.trust_remote_code, local_files_only=True
    )
    state = _read_weights(model_dir)

    class NemoClassifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = AutoModel.from_config(bconfig, trust_remote_code=spec.trust_remote_code)
            self.dropout = torch.nn.Dropout(float(config.get("fc_dropout", 0.0)))
            self.fc = torch.nn.Linear(bconfig.hidden_size, len(id2label))

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask)
            return self.fc(self.dropout(hidden.last_hidden_state[:, 0, :]))

    module = NemoClassifier()
    hint = "check base_model / backbone: the backbone config must be the one trained"
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches raise even with strict=False
        raise AssayError(f"{model_dir}: weights do not fit the backbone: {e}", hint=hint) from None
    # Old checkpoints carry position_ids buffers that newer transformers no longer keep.
    unexpected = [k for k in result.unexpected_keys if not k.endswith("position_ids")]
    if result.missing_keys or unexpected:
        raise AssayError(
            f"{model_dir}: weights do not match a {bconfig.model_type} backbone + fc head: "
            f"missing {sorted(result.missing_keys)[:3]}, unexpected {sorted(unexpected)[:3]}",
            hint=hint,
        )
    tok_dir = model_dir if _has_tokenizer(model_dir) else Path(backbone)
    if not tok_dir.is_dir() or not _has_tokenizer(tok_dir):
        raise ConfigError(
            f"model: no tokenizer files in {model_dir} or in the backbone folder",
            hint="save the backbone's tokenizer (tokenizer.json) beside the model",
        )
    return module, _load_tokenizer(tok_dir, spec), len(id2label), id2label


def load_heads(spec: RaterSpec, model_dir: Path, dtype: Any) -> tuple[Any, Any, int, dict]:
    """assay's layout: ``backbone`` (an ``AutoModel``, optionally with a LoRA adapter
    from ``adapter/``, merged here) + pooling + ``heads.safetensors``. The module also
    carries ``source`` (backbone path and weight hash) for the manifest."""
    from transformers import AutoModel

    from raters.heads import heads_module, load_head, pooled_width, read_meta
    from raters.hub import weights_sha256

    meta = read_meta(model_dir)
    backbone_dir = spec.backbone_dir()
    if backbone_dir is None:  # checked with the spec; kept for type checkers
        raise ConfigError("backbone: required by the assay-heads format")
    digest = weights_sha256(backbone_dir)
    expected = meta.get("backbone_sha256")
    if expected and expected != digest:
        raise AssayError(
            f"{backbone_dir}: backbone weights (sha256 {digest[:12]}...) are not the ones "
            f"the heads in {model_dir} were trained on ({expected[:12]}...)",
            hint="install the backbone the rater names (heads.json backbone_sha256), "
            "or retrain the heads on this backbone",
        )
    backbone = AutoModel.from_pretrained(
        backbone_dir,
        dtype=dtype,
        trust_remote_code=spec.trust_remote_code,
        local_files_only=True,
    )
    if meta.get("adapter"):
        from peft import PeftModel

        adapter = model_dir / meta["adapter"]
        backbone = PeftModel.from_pretrained(backbone, adapter).merge_and_unload()
    width = pooled_width(int(backbone.config.hidden_size), meta["pooling"])
    module = heads_module(backbone, load_head(model_dir, width), meta["pooling"])
    module.source = {
        "backbone_path": str(backbone_dir),
        "backbone_sha256": digest,
        "adapter": meta.get("adapter"),
        "pooling": meta["pooling"],
    }
    tok_dir = model_dir if _has_tokenizer(model_dir) else backbone_dir
    num_labels = int(module.head.out_features)
    return module, _load_tokenizer(tok_dir, spec), num_labels, {}


def _nemo_backbone(spec: RaterSpec, model_dir: Path, config: dict) -> str:
    """Where the backbone's config lives: ``backbone``, a local ``base_model``, or the
    local HF cache (never downloaded)."""
    explicit = spec.backbone_dir()
    if explicit is not None:
        return str(explicit)
    base = config.get("base_model")
    if not isinstance(base, str) or not base:
        raise ConfigError(f"model: {model_dir}/config.json has no base_model; set backbone")
    for candidate in (model_dir / base, Path(base).expanduser()):
        if (candidate / "config.json").is_file():
            return str(candidate)
    try:
        from transformers import AutoConfig

        AutoConfig.from_pretrained(base, local_files_only=True)
        return base
    except OSError:
        raise ConfigError(
            f"backbone: {base!r} (config.json base_model) is not a local folder nor cached",
            hint=f"save {base}'s config.json (+ tokenizer) into a folder and pass it as "
            "backbone (RaterSpec.with_model(path, backbone=folder)); nothing is downloaded",
        ) from None


def _read_weights(model_dir: Path) -> dict[str, Any]:
    import torch
    from safetensors.torch import load_file

    if (model_dir / "model.safetensors").is_file():
        return load_file(model_dir / "model.safetensors")
    if (model_dir / "pytorch_model.bin").is_file():
        return torch.load(model_dir / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise ConfigError(f"model: no model.safetensors or pytorch_model.bin in {model_dir}")


def _has_tokenizer(folder: Path) -> bool:
    return any((folder / f).is_file() for f in TOKENIZER_FILES)


def check_positions(spec: RaterSpec, model: Any) -> None:
    """Absolute position embeddings cap the window length; relative ones do not."""
    if spec.format == "nemo-deberta":
        config = model.model.config
    elif spec.format == "assay-heads":
        config = model.backbone.config
    else:
        config = model.inner.config
    limit = getattr(config, "max_position_embeddings", None)
    relative = getattr(config, "position_biased_input", True) is False
    if limit and not relative and spec.max_tokens > limit:
        raise ConfigError(
            f"max_tokens: {spec.max_tokens} exceeds the model's {limit} positions",
            hint=f"set max_tokens <= {limit} and use long_doc chunks for long texts",
        )
