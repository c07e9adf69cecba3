"""Perplexity under a small reference causal LM (CCNet-style quality signal).

Default model: SmolLM2-135M (see ``raters.hub``). A document is read from its start up to
``max_tokens`` tokens (``scored_fraction`` says how much of it that was); the model
predicts every token after a leading BOS/EOS, so a one-token text is scored too.
Columns: ``nll`` (mean nats per token), ``perplexity`` (exp of it), ``n_tokens`` (tokens
read), ``scored_fraction``. Empty texts have nothing to measure: NaN, by design.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from assay.errors import ConfigError
from raters.base import Columns, Rater
from raters.device import pick_device, pick_dtype
from raters.windows import plan_batches

CHARS_PER_TOKEN_CUT = 10  # pre-cut before tokenising: no tokenizer ever sees 775k chars


class PerplexityRater(Rater):
    """Per-document perplexity; lower is more like the reference LM's training text.

    Example::

        PerplexityRater(max_tokens=128).score(["The cat sat on the mat."])
    """

    version = "1"

    def __init__(
        self,
        model: str = "smollm2-135m",
        *,
        name: str = "perplexity",
        max_tokens: int = 256,
        batch_tokens: int = 4096,
        device: str = "auto",
        dtype: str = "auto",
    ) -> None:
        self.name = name
        self.model_ref = model
        self.max_tokens = max_tokens
        self.batch_tokens = batch_tokens
        self.device = device
        self.dtype = dtype
        self._model: Any = None
        self._tokenizer: Any = None
        self._describe: dict[str, Any] | None = None

    def _load(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from raters.hub import resolve_model

        path = resolve_model(self.model_ref)
        device = pick_device(self.device)
        dtype = pick_dtype(self.dtype, device)
        self._tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, use_safetensors=True)
        self._model = model.to(device).eval()
        # Logit soft-capping (Gemma-2) would be skipped by projecting hidden states
        # ourselves; such models are rejected rather than scored slightly wrong.
        if getattr(model.config, "final_logit_softcapping", None):
            raise ConfigError(f"{path}: logit soft-capping models are not supported yet")
        self._head = model.get_output_embeddings()
        self._torch, self._device, self._dtype, self._path = torch, device, dtype, path

    def describe(self) -> dict[str, Any]:
        if self._describe is None:
            from raters.hub import resolve_model, weights_sha256

            path = resolve_model(self.model_ref)
            self._describe = {
                **super().describe(),
                "model": self.model_ref,
                "model_path": str(path),
                "weights_sha256": weights_sha256(path),
                "max_tokens": self.max_tokens,
                "dtype": self.dtype,
                "policy": "head",
            }
        return self._describe

    def _encode(self, texts: Sequence[str]) -> tuple[list[list[int]], np.ndarray]:
        tok = self._tokenizer
        cut = [t[: self.max_tokens * CHARS_PER_TOKEN_CUT] for t in texts]
        enc = tok(cut, add_special_tokens=False, return_offsets_mapping=True)
        start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        ids, fraction = [], np.ones(len(texts), dtype=np.float32)
        for i, (row, offsets) in enumerate(
            zip(enc["input_ids"], enc["offset_mapping"], strict=True)
        ):
            row = row[: self.max_tokens]
            if texts[i] and row:
                fraction[i] = min(1.0, offsets[len(row) - 1][1] / len(texts[i]))
            ids.append([start, *row])
        return ids, fraction

    def score(self, texts: Sequence[str]) -> Columns:
        self._load()
        torch = self._torch
        ids, fraction = self._encode(texts)
        nll = np.full(len(texts), np.nan, dtype=np.float64)
        n_tokens = np.array([len(r) - 1 for r in ids], dtype=np.int64)
        pad = self._tokenizer.pad_token_id or 0
        batches, _ = plan_batches([len(r) for r in ids], self.batch_tokens, max_batch_size=256)
        for batch in batches:
            rows = [ids[i] for i in batch]
            width = max(len(r) for r in rows)
            if width < 2:
                continue  # empty texts only: nothing to predict
            x = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for k, r in enumerate(rows):
                x[k, : len(r)] = torch.tensor(r)
                mask[k, : len(r)] = 1
            x, mask = x.to(self._device), mask.to(self._device)
            with torch.inference_mode():
                hidden = self._model.base_model(input_ids=x, attention_mask=mask).last_hidden_state
                # Project only real (non-padding) positions onto the 49k vocabulary: the
                # LM head and the float32 log-softmax dominate a small model's cost.
                valid = mask[:, 1:].bool()
                logits = self._head(hidden[:, :-1][valid])
                loss = torch.nn.functional.cross_entropy(
                    logits.float(), x[:, 1:][valid], reduction="none"
                )
                row = torch.arange(len(rows), device=x.device)[:, None].expand_as(valid)[valid]
                total = torch.zeros(len(rows), device=x.device).index_add_(0, row, loss)
                per_doc = total / valid.sum(1).clamp(min=1)
            for k, value in enumerate(per_doc.cpu().numpy()):
                if len(rows[k]) > 1:
                    nll[batch[k]] = value
        return {
            "nll": nll.astype(np.float32),
            "perplexity": np.exp(nll).astype(np.float32),
            "n_tokens": n_tokens,
            "scored_fraction": fraction,
        }
