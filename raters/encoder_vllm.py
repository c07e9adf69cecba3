"""Encoder raters on vLLM's pooling runner (``classify``), for sequence-classification
checkpoints (BERT, RoBERTa, ModernBERT, ... ``*ForSequenceClassification``).

The windows, batches and heads stay :class:`raters.encoder.EncoderRater`'s: this object
only replaces the model call. Windows go in as token ids with their special tokens, so
vLLM reads exactly what transformers reads; ``use_activation=False`` returns raw logits
(vLLM would otherwise apply softmax or sigmoid by ``problem_type``, which would break
multi-head slices). ``assay-heads`` and ``nemo-deberta`` raters are not
``*ForSequenceClassification`` checkpoints and stay on transformers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class VllmClassifier:
    """``(input_ids, attention_mask) -> logits`` through ``LLM.classify``."""

    def __init__(
        self, model_dir: Path, *, dtype: str, max_model_len: int, trust_remote_code: bool
    ) -> None:
        from raters import vllm_engine

        vllm = vllm_engine.import_vllm()
        self._engine_args = {
            "model": model_dir,
            "runner": "pooling",
            "dtype": dtype,
            "max_model_len": max_model_len,
            "trust_remote_code": trust_remote_code,
        }
        vllm_engine.engine(**self._engine_args)  # start now: a model vLLM cannot run fails here
        self.params = vllm.PoolingParams(use_activation=False)

    @property
    def llm(self) -> Any:
        """The cached engine, asked for on each use: after ``vllm_engine.release()``
        this starts a new one rather than calling a shut-down engine."""
        from raters import vllm_engine

        return vllm_engine.engine(**self._engine_args)

    def __call__(self, input_ids: Any, attention_mask: Any) -> Any:
        import torch

        lengths = attention_mask.sum(dim=1).tolist()  # right-padded by the engine
        prompts = [
            {"prompt_token_ids": input_ids[j, : int(n)].tolist()} for j, n in enumerate(lengths)
        ]
        outs = self.llm.classify(prompts, pooling_params=self.params, use_tqdm=False)
        return torch.tensor([o.outputs.probs for o in outs], dtype=torch.float32)
