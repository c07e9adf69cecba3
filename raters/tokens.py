"""Token counts under the target LM's tokenizer, for the ``n_tokens`` column and budgets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


class TokenCounter:
    """Counts tokens of whole documents (no special tokens), in batches.

    Example::

        TokenCounter("smollm2-135m")(["Hello world."])  # -> array([3])
    """

    def __init__(self, tokenizer: str = "smollm2-135m", batch_size: int = 256) -> None:
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self._tok: Any = None

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        if self._tok is None:
            from transformers import AutoTokenizer

            from raters.hub import resolve_model

            self._tok = AutoTokenizer.from_pretrained(resolve_model(self.tokenizer))
        counts = np.zeros(len(texts), dtype=np.int64)
        for i in range(0, len(texts), self.batch_size):
            enc = self._tok(list(texts[i : i + self.batch_size]), add_special_tokens=False)
            counts[i : i + self.batch_size] = [len(ids) for ids in enc["input_ids"]]
        return counts
