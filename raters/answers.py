"""Strict parsing of a teacher's answer block, and expected scores from its logprobs.

The rules (a rubric's answer block is described in :mod:`raters.rubrics`):

- An answer line is ``<label>: <value>`` where the value is one word (``4``, ``4/5``,
  ``4.5``, ``N/A``, ``C``; list markers ``- `` / ``[3]`` and Markdown bold around label
  or value are allowed; the domain may add its own name, ``C. Law``). Reasoning may come
  before the block: a line whose value is several words, like ``Coherence: the text
  flows``, is prose, not an answer.
- Every criterion must be answered, with a whole number within its scale. ``4.5``,
  ``N/A``, ``6`` on a 1-5 scale are malformed answers, not rounded or clipped.
- A criterion answered twice must get the same value both times (DataMan accepts a
  repeated block only if both halves agree); different values are ambiguous.
- The domain is one of the rubric's letters, optionally followed by its own label
  (``C``, ``C. Law``, ``C (Law)``); another label after the letter is a contradiction.

Anything else raises :class:`AnswerError` with the reason; the caller retries and then
records the failure. Nothing is guessed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from raters.rubrics import Rubric

_LINE = re.compile(
    r"^[ \t]*(?:[-*•][ \t]+)?(?:\[\d+\][ \t]*)?(?:\*\*)?(?P<label>[^:\n*]+?)(?:\*\*)?[ \t]*"
    r"[:：][ \t]*(?:\*\*)?[ \t]*(?P<value>[^\n]*?)[ \t]*(?:\*\*)?[ \t]*$",
    re.MULTILINE,
)
_SCORE = re.compile(r"^(?P<num>[+-]?\d+(?:\.\d+)?)(?:[ \t]*/[ \t]*\d+)?$")


class AnswerError(ValueError):
    """A teacher answer that does not follow the rubric's answer block."""


@dataclass
class ParsedAnswer:
    labels: dict[str, int]
    domain: str | None = None
    positions: dict[str, int] = field(default_factory=dict)
    """Character offset of each criterion's score in the answer (its last occurrence)."""
    domain_position: int | None = None


def parse_answer(rubric: Rubric, text: str | None) -> ParsedAnswer:
    """The scores and domain of an answer, or :class:`AnswerError` saying what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise AnswerError("empty answer")
    by_label = {c.label.lower(): c for c in rubric.criteria}
    domain_label = rubric.domain_label.lower() if rubric.domains else None
    found: dict[str, list[tuple[str, int]]] = {}
    for m in _LINE.finditer(text):
        label = m.group("label").strip().lower()
        value = m.group("value")
        one_word = len(re.sub(r"\s*/\s*", "/", value).split()) == 1
        is_score = label in by_label and one_word
        if is_score or (label == domain_label and value.strip()):
            found.setdefault(label, []).append((value, m.start("value")))

    labels: dict[str, int] = {}
    positions: dict[str, int] = {}
    missing = [c.label for c in rubric.criteria if c.label.lower() not in found]
    if missing:
        raise AnswerError(f"no answer line for {', '.join(missing)}")
    for label, hits in found.items():
        if label == domain_label:
            continue
        c = by_label[label]
        values = {_score(c.label, raw, c.scale) for raw, _ in hits}
        if len(values) > 1:
            raise AnswerError(f"{c.label}: conflicting scores {sorted(values)}")
        labels[c.name] = values.pop()
        positions[c.name] = hits[-1][1]

    domain, domain_position = None, None
    if domain_label is not None:
        hits = found.get(domain_label)
        if not hits:
            raise AnswerError(f"no answer line for {rubric.domain_label}")
        names = {_domain(rubric, raw) for raw, _ in hits}
        if len(names) > 1:
            raise AnswerError(f"{rubric.domain_label}: conflicting answers {sorted(names)}")
        domain, domain_position = names.pop(), hits[-1][1]
    return ParsedAnswer(labels, domain, positions, domain_position)


def _score(label: str, raw: str, scale: tuple[int, int]) -> int:
    m = _SCORE.match(raw.strip())
    if m is None:
        raise AnswerError(f"{label}: {raw.strip()!r} is not a score")
    num = m.group("num")
    if not re.fullmatch(r"[+-]?\d+", num):
        raise AnswerError(f"{label}: {num} is not a whole number")
    value = int(num)
    if not scale[0] <= value <= scale[1]:
        raise AnswerError(f"{label}: {value} is outside the scale {scale[0]}-{scale[1]}")
    return value


def _domain(rubric: Rubric, raw: str) -> str:
    raw = raw.strip()
    m = re.fullmatch(r"(?P<key>[A-Za-z])(?:[ \t]*[.):\-][ \t]*|[ \t]*\(|[ \t]+)?(?P<rest>.*)", raw)
    if m is None or not raw:
        raise AnswerError(f"{rubric.domain_label}: {raw!r} is not a letter")
    key = m.group("key")
    choice = next((d for d in rubric.domains if d.key == key), None)
    if choice is None:
        keys = "".join(d.key for d in rubric.domains)
        raise AnswerError(f"{rubric.domain_label}: {raw!r} is not one of the letters {keys}")
    rest = m.group("rest").strip().removesuffix(")").strip()
    if rest and rest.lower() not in (choice.label.lower(), choice.name.lower()):
        raise AnswerError(
            f"{rubric.domain_label}: {raw!r} names another domain than {key} ({choice.label})"
        )
    return choice.name


def expected_scores(
    rubric: Rubric, parsed: ParsedAnswer, content: str, tokens: Sequence[dict[str, Any]] | None
) -> dict[str, float]:
    """Expected score sum_k p(k) * k of each criterion, from chat-completion logprobs.

    ``tokens`` is ``choices[0].logprobs.content`` of an OpenAI-compatible response: one
    ``{"token", "logprob", "top_logprobs": [{"token", "logprob"}, ...]}`` per generated
    token. For each criterion we find the token that produced its score (its last answer
    line); among that position's alternatives we keep the ones that are whole scores of
    the scale (``" 4"`` and ``"4"`` alike) and renormalise their probabilities. A
    criterion is left out when its score is not one token of its own, or when the tokens
    do not spell the answer (some servers drop special tokens): no expected score is
    better than a misattributed one.
    """
    if not tokens:
        return {}
    texts = [t.get("token") for t in tokens]
    if not all(isinstance(t, str) for t in texts) or "".join(texts) != content:
        return {}
    starts, pos = [], 0
    for t in texts:
        starts.append(pos)
        pos += len(t)
    out: dict[str, float] = {}
    scales = {c.name: c.scale for c in rubric.criteria}
    for name, offset in parsed.positions.items():
        i = _token_at(starts, offset)
        lo, hi = scales[name]
        value = str(parsed.labels[name])
        if (
            texts[i].strip() != value
            or starts[i] + len(texts[i]) - len(texts[i].lstrip()) != offset
        ):
            continue  # the score shares its token with other characters
        probs: dict[int, float] = {}
        for alt in tokens[i].get("top_logprobs") or [{"token": texts[i], **tokens[i]}]:
            tok, lp = alt.get("token"), alt.get("logprob")
            if not isinstance(tok, str) or not isinstance(lp, (int, float)):
                continue
            tok = tok.strip()
            if re.fullmatch(r"\d+", tok) and lo <= int(tok) <= hi and math.isfinite(lp):
                k = int(tok)
                probs[k] = probs.get(k, 0.0) + math.exp(lp)
        total = sum(probs.values())
        if total > 0:
            out[name] = sum(k * p for k, p in probs.items()) / total
    return out


def _token_at(starts: list[int], offset: int) -> int:
    """Index of the token whose span holds character ``offset`` (binary search)."""
    lo, hi = 0, len(starts) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if starts[mid] <= offset:
            lo = mid
        else:
            hi = mid - 1
    return lo
