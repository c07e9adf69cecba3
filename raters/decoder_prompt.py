"""Prompts for decoder raters: the text window, the chat template, the answer tokens.

Both engines (transformers and vLLM) get the same prompt token ids from here, so a
difference in their scores is the engines', never the prompts'.

The text window follows DataMan: a document longer than the budget keeps its first and
last halves with a cut mark between them (``head_tail``), the same way
:func:`raters.train_decoder.encode` cut the texts a rater was trained on. The budget is
``text_tokens`` when the spec gives it, else what ``max_tokens`` leaves beside the prompt
and the answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from assay.errors import ConfigError
from raters.decoder_spec import CHARS_PER_TOKEN, DecoderSpec, Slot
from raters.windows import cut_spans, make_windows

CUT = "\n...\n"  # the cut mark raters.train_decoder trains with
SEAM_TOKENS = 8  # re-tokenisation at the template's seams and the cut mark
_SENTINEL = "\x00ASSAY_TEXT\x00"


@dataclass(frozen=True)
class Prompts:
    """Prompt token ids per document, and what each document's prompt read."""

    ids: list[list[int]]
    scored_fraction: np.ndarray
    n_tokens: np.ndarray


class PromptBuilder:
    """Turns texts into prompt token ids for one spec and tokenizer."""

    def __init__(self, spec: DecoderSpec, tokenizer: Any) -> None:
        self.spec = spec
        self.tokenizer = tokenizer
        self.slots: list[Slot] = spec.slots()
        self.separator_id = self._one_token(spec.answer.get("separator", "\n"), "answer.separator")
        # Token ids of each slot's valid answers, in the slot's order.
        self.slot_ids: list[list[int]] = [
            [self._one_token(t, f"{s.name} answer {t!r}") for t in s.tokens] for s in self.slots
        ]
        self.answer_len = 2 * len(self.slots) - 1  # one token per line + separators
        self.prefix, self.suffix = self._template()
        overhead = len(self._encode([self.prefix + self.suffix])[0])
        room = spec.max_tokens - overhead - self.answer_len - SEAM_TOKENS
        self.budget = min(spec.text_tokens or room, room)
        if self.budget < 16:
            raise ConfigError(
                f"rater {spec.name!r}: max_tokens={spec.max_tokens} leaves {room} text "
                f"tokens beside a {overhead}-token prompt",
                hint=f"raise max_tokens to at least {overhead + self.answer_len + 80}",
            )
        self.max_chars = spec.max_chars or CHARS_PER_TOKEN * self.budget

    def _one_token(self, text: str, what: str) -> int:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise ConfigError(
                f"rater {self.spec.name!r}: {what} is {len(ids)} tokens in this tokenizer",
                hint="a decoder rater reads one token per answer line (single digits or "
                "letters, and a one-token separator)",
            )
        return int(ids[0])

    def _template(self) -> tuple[str, str]:
        """The prompt as text before and after ``{text}``."""
        p = self.spec.prompt
        user = p["user"].replace("{text}", _SENTINEL)
        if p.get("chat_template", True):
            if getattr(self.tokenizer, "chat_template", None) is None:
                raise ConfigError(
                    f"rater {self.spec.name!r}: prompt.chat_template is true but the "
                    "tokenizer has no chat template",
                    hint='set "chat_template": false to send the prompt as plain text',
                )
            messages = [{"role": "user", "content": user}]
            if p.get("system"):
                messages.insert(0, {"role": "system", "content": p["system"]})
            rendered = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        else:
            rendered = (p.get("system", "") + "\n" if p.get("system") else "") + user
        pre, _, post = rendered.partition(_SENTINEL)
        return pre, post

    def _encode(self, strings: list[str]) -> list[list[int]]:
        # The rendered template already holds any BOS the model expects.
        return self.tokenizer(strings, add_special_tokens=False)["input_ids"]

    def build(self, texts: Sequence[str]) -> Prompts:
        """Prompt ids for each text (text cut to the budget), fractions read, token counts."""
        spans = [cut_spans(t, self.spec.long_doc, self.max_chars) for t in texts]
        pieces = [t[s:e] for t, sp in zip(texts, spans, strict=True) for s, e in sp]
        enc = (
            self.tokenizer(pieces, add_special_tokens=False, return_offsets_mapping=True)
            if pieces
            else {"input_ids": [], "offset_mapping": []}
        )
        bodies: list[str] = []
        fraction = np.ones(len(texts), dtype=np.float32)
        n_tokens = np.zeros(len(texts), dtype=np.int64)
        p = 0
        for d, text in enumerate(texts):
            k = len(spans[d])
            ids, offs = enc["input_ids"][p : p + k], enc["offset_mapping"][p : p + k]
            p += k
            made = make_windows(
                list(zip(ids, offs, strict=True)),
                spans[d],
                len(text),
                self.spec.long_doc,
                self.budget,
            )
            fraction[d], n_tokens[d] = made.scored_fraction, made.n_tokens
            window = made.windows[0]
            if k == 1 and len(window) == len(ids[0]):
                bodies.append(text)  # read whole: no decode round trip
            elif made.split is not None and made.split < len(window):
                head, tail = window[: made.split], window[made.split :]
                bodies.append(self._decode(head) + CUT + self._decode(tail))
            else:
                bodies.append(self._decode(window) + (CUT if k > 1 else ""))
        prompts = self._encode([self.prefix + b + self.suffix for b in bodies])
        limit = self.spec.max_tokens - self.answer_len
        # Seams re-tokenised longer than planned: trim, as training did.
        prompts = [x[:limit] if len(x) > limit else x for x in prompts]
        return Prompts(prompts, fraction, n_tokens)

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def answer_regex(self) -> str:
        """The answer template as a regular expression (vLLM's structured outputs)."""
        sep = _escape(self.spec.answer.get("separator", "\n"))
        lines = ["(" + "|".join(_escape(t) for t in s.tokens) + ")" for s in self.slots]
        return sep.join(lines)


def _escape(text: str) -> str:
    """Regex metacharacters escaped, everything else literal (``re.escape`` also escapes
    newlines, which vLLM's grammar compiler warns about)."""
    return "".join("\\" + c if c in _META else c for c in text)


_META = set(".^$*+?{}[]\\|()")
