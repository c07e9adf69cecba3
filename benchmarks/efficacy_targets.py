"""The efficacy suite's corpus and targets: which documents each target holds out.

- :func:`sample_corpus`: a seeded sample of the pool, up to ``per_domain`` documents of
  each domain (the whole corpus annotated once would take the suite's time budget);
- :func:`low_quality_docs`: low-quality documents made from clean pool documents, the
  kinds a web crawl is full of: boilerplate-laden pages, HTML residue, OCR-style noise,
  word salad and template repetition (``raters.corruptions``), and near-duplicates (a
  copy with 3% of its words replaced). The demo's ``junk`` domain (Markov-chain text,
  real machine-generated documents) is in every pool already;
- :func:`make_targets`: one target per domain with enough documents, a general target
  (a uniform slice of everything, junk included), and the quality-sensitive target:
  clean documents (no junk, nothing made) while its pool carries every low-quality
  document. Each target's ``exclude`` is what its pool must not hold (its own documents,
  and for every other target the made low-quality documents).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

LOW_QUALITY_PREFIX = "lowq-"
GENERAL, QUALITY = "general", "quality-sensitive"
MADE_KINDS = ("boilerplate", "html_residue", "char_noise", "word_shuffle", "repetition")


@dataclass
class Target:
    """One target: its dev half (the selection reads it) and eval half (only the final
    losses read it), and the ids its pool leaves out."""

    name: str
    kind: str  # "domain" | "general" | "quality"
    dev: list[dict]
    eval: list[dict]
    exclude: set[str] = field(default_factory=set)


def sample_corpus(docs: list[dict], per_domain: int, seed: int = 0) -> list[dict]:
    """Up to ``per_domain`` documents of each ``domain`` (seeded), in corpus order."""
    rng = np.random.default_rng(seed)
    by_domain: dict[str, list[int]] = {}
    for i, d in enumerate(docs):
        by_domain.setdefault(str(d.get("domain")), []).append(i)
    keep: list[int] = []
    for rows in by_domain.values():
        keep += [rows[j] for j in rng.permutation(len(rows))[:per_domain]]
    return [docs[i] for i in sorted(keep)]


def near_duplicate(text: str, rng: random.Random, rate: float = 0.03) -> str:
    """``text`` with ``rate`` of its words (at least one) replaced by other words of the
    same text; a text of one word gets it twice."""
    words = text.split(" ")
    for i in range(len(words)):
        if rng.random() < rate:
            words[i] = rng.choice(words)
    out = " ".join(words)
    if out == text:  # short texts: change one word for certain
        i = rng.randrange(len(words))
        words[i] = words[i] + " " + words[i - 1]
        out = " ".join(words)
    return out


def low_quality_docs(clean: list[dict], n_made: int, n_dups: int, seed: int = 0) -> list[dict]:
    """``n_made`` corrupted copies (``MADE_KINDS`` in turn) and ``n_dups`` near-duplicates
    of seeded picks from ``clean``; ids ``lowq-<kind>-<source id>``, the source's domain,
    ``source`` naming what was done."""
    from raters.corruptions import corrupt

    rng = random.Random(seed)
    picks = rng.sample(range(len(clean)), min(len(clean), n_made + n_dups))
    out = []
    for k, i in enumerate(picks):
        d = clean[i]
        if k < n_made:
            kind = MADE_KINDS[k % len(MADE_KINDS)]
            text = corrupt(d["text"], kind, rng)
        else:
            kind, text = "near_duplicate", near_duplicate(d["text"], rng)
        out.append({"id": f"{LOW_QUALITY_PREFIX}{kind}-{d['id']}", "text": text,
                    "domain": d.get("domain"), "source": f"made:{kind}"})  # fmt: skip
    return out


def _halves(rows: list[dict], n_dev: int) -> tuple[list[dict], list[dict]]:
    return rows[:n_dev], rows[n_dev:]


def make_targets(
    corpus: list[dict],
    *,
    target_docs: int = 140,
    dev_docs: int = 40,
    min_domain_docs: int = 240,
    junk_domain: str = "junk",
    seed: int = 0,
) -> list[Target]:
    """Domain targets (every domain but ``junk_domain`` with >= ``min_domain_docs`` in
    ``corpus``), then the general and the quality-sensitive target; ``target_docs`` each,
    ``dev_docs`` of them the dev half."""
    rng = np.random.default_rng(seed)
    made = {str(d["id"]) for d in corpus if str(d["id"]).startswith(LOW_QUALITY_PREFIX)}
    real = [d for d in corpus if str(d["id"]) not in made]
    counts = Counter(str(d.get("domain")) for d in real)

    def pick(rows: list[dict]) -> list[dict]:
        return [rows[i] for i in rng.permutation(len(rows))[:target_docs]]

    targets = []
    for domain in sorted(counts):
        if domain == junk_domain or counts[domain] < min_domain_docs:
            continue
        rows = pick([d for d in real if str(d.get("domain")) == domain])
        targets.append(Target(domain, "domain", *_halves(rows, dev_docs)))
    targets.append(Target(GENERAL, "general", *_halves(pick(real), dev_docs)))
    clean = [d for d in real if str(d.get("domain")) != junk_domain]
    targets.append(Target(QUALITY, "quality", *_halves(pick(clean), dev_docs)))
    for t in targets:
        t.exclude = {str(d["id"]) for d in t.dev + t.eval}
        if t.kind != "quality":
            t.exclude |= made
        else:  # a copy of a target document would leak it into the pool
            t.exclude |= {m for m in made if made_from(m) in t.exclude}
    return targets


def made_from(made_id: str) -> str:
    """The source id of a made low-quality document (``lowq-<kind>-<source id>``)."""
    return made_id.split("-", 2)[2]


__all__ = [
    "GENERAL",
    "LOW_QUALITY_PREFIX",
    "QUALITY",
    "Target",
    "low_quality_docs",
    "made_from",
    "make_targets",
    "near_duplicate",
    "sample_corpus",
]
