"""Synthetic corruptions of real documents: labelled negatives for a quality head.

Each function takes a text and a seeded ``random.Random`` and returns a damaged copy
that keeps the original's vocabulary and topic, so a quality head must learn what was
damaged rather than what the text is about. Each damage reaches the start of the
document, the part a head-reading rater sees.

- ``word_shuffle``: every word kept, order destroyed; the line layout is kept (each line
  keeps its number of words), so lists stay lists and only the sense is gone.
- ``char_noise``: ~15% of letters substituted, dropped or doubled (bad OCR, mangled
  encodings).
- ``boilerplate``: web page furniture (navigation, cookie banners, share buttons, ads)
  interleaved with the lines, about two boilerplate lines per text line.
- ``repetition``: the opening line repeated 6-12 times before the text (template spam,
  scraper loops).
- ``html_residue``: tags, entities and attributes left in by a failed extraction.

Truncation is deliberately absent: a rater reading the head of a document cannot see
where it ends, so "cut mid-word" would be a label it can only guess.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

BOILERPLATE = (
    "Home | About | Contact | Privacy Policy",
    "Click here to subscribe to our newsletter!",
    "This website uses cookies to improve your experience. Accept all cookies",
    "Share on Facebook  Share on Twitter  Share on LinkedIn",
    "Advertisement",
    "Read more »",
    "Log in | Register | Forgot your password?",
    "© 2023 All rights reserved.",
    "Related posts:",
    "Sponsored content",
    "Skip to main content",
    "Previous article Next article",
    "Leave a comment",
    "Tags: news, updates, more",
    "Download our app now - free for a limited time!",
    "Back to top ↑",
)
TAGS = (
    '<div class="content">',
    "</div>",
    "<br/>",
    "&nbsp;",
    '<span style="font-weight:bold">',
    "</span>",
    "&amp;",
    '<a href="/index.php?id=12">',
    "</a>",
    "<p>",
    "</p>",
    '<td class="cell">',
    "&#8217;",
    "<!-- -->",
)
_LETTER = re.compile(r"[A-Za-z]")


def word_shuffle(text: str, rng: random.Random) -> str:
    lines = text.split("\n")
    words = text.split()
    rng.shuffle(words)
    out, k = [], 0
    for line in lines:
        n = len(line.split())
        out.append(" ".join(words[k : k + n]))
        k += n
    return "\n".join(out)


def char_noise(text: str, rng: random.Random, rate: float = 0.15) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz"
    out = []
    for ch in text:
        if _LETTER.match(ch) and rng.random() < rate:
            r = rng.random()
            if r < 0.5:
                out.append(rng.choice(alphabet))  # substitute
            elif r < 0.75:
                continue  # drop
            else:
                out.append(ch + ch)  # double
        else:
            out.append(ch)
    return "".join(out)


def boilerplate(text: str, rng: random.Random) -> str:
    out = [rng.choice(BOILERPLATE), rng.choice(BOILERPLATE)]
    for line in text.split("\n"):
        out.append(line)
        if line.strip():
            out += rng.sample(BOILERPLATE, rng.randint(1, 3))
    return "\n".join(out)


def repetition(text: str, rng: random.Random) -> str:
    first = next((line for line in text.split("\n") if line.strip()), text)[:200]
    return "\n".join([first] * rng.randint(6, 12) + [text])


def html_residue(text: str, rng: random.Random) -> str:
    words = re.split(r"(\s+)", text)
    out = [rng.choice(TAGS)]
    for w in words:
        out.append(w)
        if w.strip() and rng.random() < 0.3:
            out.append(rng.choice(TAGS))
    return "".join(out)


CORRUPTIONS: dict[str, Callable[[str, random.Random], str]] = {
    "word_shuffle": word_shuffle,
    "char_noise": char_noise,
    "boilerplate": boilerplate,
    "repetition": repetition,
    "html_residue": html_residue,
}


def corrupt(text: str, kind: str, rng: random.Random) -> str:
    """Apply the named corruption (see :data:`CORRUPTIONS`)."""
    return CORRUPTIONS[kind](text, rng)
