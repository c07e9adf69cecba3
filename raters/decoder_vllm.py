"""The vLLM engine for decoder raters: one constrained generation per document.

The answer template becomes a regular expression (``[A-O]\\n[1-5]\\n...``) that vLLM's
structured outputs enforce, with greedy sampling, so each line is the most probable
valid token, exactly the choice the transformers engine makes
(:mod:`raters.decoder_hf`). ``logprob_token_ids`` returns the log-probabilities of the
answer tokens at every generated position; at slot ``k`` (position ``2k``) those of its
valid tokens, renormalised, are its distribution. vLLM reports them over the allowed
tokens (after the grammar's mask), which renormalising makes the same thing.

Prompts go in as token ids (:mod:`raters.decoder_prompt`), so both engines read the
same tokens. LoRA raters run on the base model with a ``LoRARequest``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assay.errors import AssayError


class VllmDecoderEngine:
    backend = "vllm"

    def __init__(
        self,
        model_dir: Path,
        *,
        regex: str,
        answer_ids: Sequence[int],
        dtype: str,
        max_model_len: int,
        lora_dir: Path | None = None,
        lora_rank: int | None = None,
        seed: int = 0,
        trust_remote_code: bool = False,
    ) -> None:
        from raters import vllm_engine

        vllm = vllm_engine.import_vllm()
        from vllm.sampling_params import StructuredOutputsParams

        self.answer_ids = sorted(set(answer_ids))
        self._engine_args = {
            "model": model_dir,
            "runner": "generate",
            "dtype": dtype,
            "max_model_len": max_model_len,
            "seed": seed,
            "lora_rank": lora_rank,
            "max_logprobs": max(20, len(self.answer_ids)),
            "trust_remote_code": trust_remote_code,
        }
        vllm_engine.engine(**self._engine_args)  # start now: a model vLLM cannot run fails here
        self.regex = regex
        self._structured = StructuredOutputsParams(regex=regex)
        self._sampling = vllm.SamplingParams
        self.lora = None
        if lora_dir is not None:
            from vllm.lora.request import LoRARequest

            self.lora = LoRARequest(Path(lora_dir).name or "rater", 1, str(lora_dir))

    @property
    def llm(self) -> Any:
        """The cached engine, asked for on each use: after ``vllm_engine.release()``
        this starts a new one rather than calling a shut-down engine."""
        from raters import vllm_engine

        return vllm_engine.engine(**self._engine_args)

    def slot_probs(
        self, prompts: Sequence[list[int]], slot_ids: Sequence[list[int]], separator_id: int
    ) -> list[np.ndarray]:
        n = len(prompts)
        out = [np.zeros((n, len(ids)), dtype=np.float64) for ids in slot_ids]
        if n == 0:
            return out
        params = self._sampling(
            max_tokens=2 * len(slot_ids) - 1,
            temperature=0.0,
            logprob_token_ids=self.answer_ids,
            structured_outputs=self._structured,
        )
        results = self.llm.generate(
            [{"prompt_token_ids": list(p)} for p in prompts],
            params,
            use_tqdm=False,
            lora_request=self.lora,
        )
        for d, r in enumerate(results):
            gen = r.outputs[0]
            if len(gen.logprobs or []) < 2 * len(slot_ids) - 1:
                raise AssayError(
                    f"vLLM returned a {len(gen.token_ids)}-token answer where the template "
                    f"has {2 * len(slot_ids) - 1} (text {gen.text!r})",
                    hint="the prompt may fill the model's context; lower max_tokens",
                )
            for k, ids in enumerate(slot_ids):
                at = gen.logprobs[2 * k]
                logp = np.array([at[i].logprob if i in at else -np.inf for i in ids])
                p = np.exp(logp - logp.max())
                out[k][d] = p / p.sum()
        return out
