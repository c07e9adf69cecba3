"""Decoder raters (DataMan-style): a causal LM answers a template, we read its
probabilities instead of its text.

    rater = DecoderRater.from_spec(DecoderSpec.load("configs/raters/dataman-schema.json"))
    rater.score(["A text ..."])
    # {"accuracy": 3.4, "accuracy.argmax": 3.0, "accuracy.conf": 0.52, ...,
    #  "domain": "Technology", "domain.prob": 0.61, "domain.probs": [...],
    #  "scored_fraction": 1.0, "n_tokens": 211}

Per criterion: the expected score sum_k p(k) * value_k over the criterion's score tokens
(``<c>``), the most probable score (``<c>.argmax``) and its probability (``<c>.conf``).
Domain: the most probable label, its probability and every label's probability in the
spec's label order (``domain.probs``, a list; the labels are in the manifest). Published
implementations parse the greedy text and discard these probabilities.

Engines: transformers (:mod:`raters.decoder_hf`) or vLLM (:mod:`raters.decoder_vllm`),
chosen by ``backend`` (:func:`raters.vllm_engine.choose`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assay.errors import ConfigError
from raters.base import Columns, Rater
from raters.decoder_prompt import PromptBuilder
from raters.decoder_spec import DecoderSpec


class DecoderRater(Rater):
    def __init__(
        self, spec: DecoderSpec, builder: PromptBuilder, engine: Any, info: dict[str, Any]
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.version = spec.version
        self.builder = builder
        self.engine = engine
        self.info = info

    @classmethod
    def from_spec(
        cls,
        spec: DecoderSpec,
        *,
        backend: str = "auto",
        device: str = "auto",
        dtype: str = "auto",
        batch_tokens: int | None = None,
        max_batch_size: int | None = None,
    ) -> DecoderRater:
        """Load the model, check the template against its tokenizer, pick the engine.

        ``dtype="auto"`` is bfloat16 on a GPU and float32 on CPU, on both engines.
        """
        from transformers import AutoTokenizer

        from raters import vllm_engine
        from raters.device import pick_device, pick_dtype

        for flag, value in (("batch_tokens", batch_tokens), ("max_batch_size", max_batch_size)):
            if value is not None and value < 1:
                raise ConfigError(f"--{flag.replace('_', '-')} must be > 0, got {value}")
        device = pick_device(device)
        torch_dtype = pick_dtype(dtype, device)
        model_dir = spec.model_dir()
        lora = spec.format == "peft-lora"
        base_dir = spec.base_model_dir() if lora else None
        weights_dir = base_dir if lora else model_dir
        tokenizer = AutoTokenizer.from_pretrained(
            model_dir if _has_tokenizer(model_dir) else weights_dir,
            local_files_only=True,
            trust_remote_code=spec.trust_remote_code,
        )
        tokenizer.model_max_length = 1 << 40  # we cut the text ourselves
        builder = PromptBuilder(spec, tokenizer)
        chosen = vllm_engine.choose(backend, weights_dir, "generate", what="", cpu_ok=True)
        info: dict[str, Any] = {
            "spec": spec.to_dict(),
            "model_path": str(model_dir),
            "base_path": str(base_dir) if base_dir else None,
            "backend": chosen,
            "device": device,
            "dtype": vllm_engine.dtype_name(torch_dtype),
            "text_tokens": builder.budget,
            "domain_labels": list(spec.domain["labels"]) if spec.domain else None,
        }
        if chosen == "vllm":
            from raters.decoder_vllm import VllmDecoderEngine

            engine: Any = VllmDecoderEngine(
                weights_dir,
                regex=builder.answer_regex(),
                answer_ids=[i for ids in builder.slot_ids for i in ids],
                dtype=info["dtype"],
                max_model_len=spec.max_tokens,
                lora_dir=model_dir if lora else None,
                lora_rank=_lora_rank(model_dir) if lora else None,
                trust_remote_code=spec.trust_remote_code,
            )
        else:
            from raters.decoder_hf import HFDecoderEngine, load_causal_lm

            model = load_causal_lm(
                model_dir,
                base_dir=base_dir,
                dtype=torch_dtype,
                trust_remote_code=spec.trust_remote_code,
            ).to(device)
            pad = tokenizer.pad_token_id
            on_gpu = device.startswith("cuda")
            engine = HFDecoderEngine(
                model,
                pad_id=pad if pad is not None else 0,  # masked out: any id will do
                device=device,
                batch_tokens=batch_tokens or (131072 if on_gpu else 8192),
                max_batch_size=max_batch_size or (256 if on_gpu else 32),
            )
        return cls(spec, builder, engine, info)

    def describe(self) -> dict[str, Any]:
        from raters.hub import weights_sha256

        if "weights_sha256" not in self.info:
            self.info["weights_sha256"] = weights_sha256(Path(self.info["model_path"]))
        return {**super().describe(), "kind": "decoder", **self.info}

    def score(self, texts: Sequence[str]) -> Columns:
        prompts = self.builder.build(list(texts))
        probs = self.engine.slot_probs(
            prompts.ids, self.builder.slot_ids, self.builder.separator_id
        )
        cols: Columns = {}
        for slot, p in zip(self.builder.slots, probs, strict=True):
            top = p.argmax(axis=1) if len(p) else np.zeros(0, dtype=np.int64)
            conf = p.max(axis=1).astype(np.float32) if len(p) else np.zeros(0, np.float32)
            if slot.values is None:
                assert slot.labels is not None
                cols["domain"] = np.array([slot.labels[t] for t in top], dtype=object)
                cols["domain.prob"] = conf
                cols["domain.probs"] = [row.astype(np.float32).tolist() for row in p]
                continue
            values = np.array(slot.values, dtype=np.float64)
            cols[slot.name] = np.clip(p @ values, *slot.scale).astype(np.float32)
            cols[f"{slot.name}.argmax"] = values[top].astype(np.float32)
            cols[f"{slot.name}.conf"] = conf
        cols["scored_fraction"] = prompts.scored_fraction
        cols["n_tokens"] = prompts.n_tokens
        return cols


def _has_tokenizer(folder: Path) -> bool:
    return (folder / "tokenizer.json").is_file() or (folder / "tokenizer_config.json").is_file()


def _lora_rank(adapter_dir: Path) -> int:
    import json

    try:
        return int(json.loads((adapter_dir / "adapter_config.json").read_text())["r"])
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(f"{adapter_dir}: no readable adapter_config.json ({e})") from None
