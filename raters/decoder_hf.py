"""The transformers engine for decoder raters: constrained greedy answers, KV-cached.

How the answer is read, and why. The answer template is fixed (one token per line, a
one-token separator), but each line is conditioned on the lines before it, so the slots
cannot all be read from one teacher-forced pass without choosing the earlier answers
first. We choose them as the model does when it answers: the most probable *valid* token
(greedy, restricted to the slot's score tokens or domain letters), then the separator.
Cost: one prefill over the prompt, then one cached step per further slot that feeds two
tokens (the previous answer and the separator) and reads the next slot's distribution
from the last position only (``logits_to_keep=1``: the LM head over every prompt
position would be thrown away). For DataMan's 15 lines that is 1 prefill + 14 two-token
steps; the prefill dominates for any real document. vLLM's engine produces the same
choices with a regex-constrained generation (:mod:`raters.decoder_vllm`).

Prompts of a batch are left-padded, with explicit position ids so that padding shifts
nothing; batches are length-sorted under a token budget (:func:`raters.windows.plan_batches`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from raters.windows import plan_batches


class HFDecoderEngine:
    """Reads slot distributions with a transformers causal LM."""

    backend = "hf"

    def __init__(
        self,
        model: Any,
        *,
        pad_id: int,
        device: str = "cpu",
        batch_tokens: int = 16384,
        max_batch_size: int = 64,
    ) -> None:
        self.model = model
        self.pad_id = pad_id
        self.device = device
        self.batch_tokens = batch_tokens
        self.max_batch_size = max_batch_size

    def slot_probs(
        self, prompts: Sequence[list[int]], slot_ids: Sequence[list[int]], separator_id: int
    ) -> list[np.ndarray]:
        """Per slot, ``[len(prompts), len(slot_ids[k])]`` probabilities over its valid
        tokens (softmax of the raw logits restricted to them)."""
        n = len(prompts)
        out = [np.zeros((n, len(ids)), dtype=np.float64) for ids in slot_ids]
        if n == 0:
            return out
        batches, _ = plan_batches([len(p) for p in prompts], self.batch_tokens, self.max_batch_size)
        for b in batches:
            for k, probs in enumerate(self._run([prompts[i] for i in b], slot_ids, separator_id)):
                out[k][b] = probs
        return out

    def _run(
        self, rows: list[list[int]], slot_ids: Sequence[list[int]], separator_id: int
    ) -> list[np.ndarray]:
        import torch

        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for j, r in enumerate(rows):
            ids[j, width - len(r) :] = torch.tensor(r, dtype=torch.long)
            mask[j, width - len(r) :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        valid = [torch.tensor(v, device=self.device) for v in slot_ids]
        sep = torch.full((len(rows), 1), separator_id, dtype=torch.long, device=self.device)
        results = []
        with torch.inference_mode():
            out = self.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                use_cache=True,
                logits_to_keep=1,
            )
            cache, nxt = out.past_key_values, positions[:, -1:] + 1
            for k, v in enumerate(valid):
                logp = out.logits[:, -1, :].float()[:, v].log_softmax(-1)
                results.append(logp.exp().cpu().numpy().astype(np.float64))
                if k == len(valid) - 1:
                    break
                step = torch.cat([v[logp.argmax(-1)][:, None], sep], dim=1)
                mask = torch.cat([mask, torch.ones_like(step)], dim=1)
                out = self.model(
                    input_ids=step,
                    attention_mask=mask,
                    position_ids=torch.cat([nxt, nxt + 1], dim=1),
                    past_key_values=cache,
                    use_cache=True,
                    logits_to_keep=1,
                )
                cache, nxt = out.past_key_values, nxt + 2
        return results


def load_causal_lm(
    model_dir: Any, *, base_dir: Any = None, dtype: Any, trust_remote_code: bool = False
) -> Any:
    """A causal LM in eval mode; a peft LoRA adapter (``base_dir`` set) is merged in."""
    from transformers import AutoModelForCausalLM

    from raters.hub import quiet_libraries

    quiet_libraries()

    if base_dir is None:
        model = AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=dtype, local_files_only=True, trust_remote_code=trust_remote_code
        )
    else:
        from assay.errors import AssayError

        try:
            from peft import PeftModel
        except ImportError:
            raise AssayError(
                "this rater is a LoRA adapter and peft is not installed",
                hint="pip install 'assay[train]'",
            ) from None
        base = AutoModelForCausalLM.from_pretrained(
            base_dir, dtype=dtype, local_files_only=True, trust_remote_code=trust_remote_code
        )
        # Merged once at load: inference then costs what the base model costs.
        model = PeftModel.from_pretrained(base, model_dir).merge_and_unload()
    return model.eval()
