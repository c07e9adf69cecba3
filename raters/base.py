"""The one interface every rater implements.

A rater is a small object with one method, ``score(texts) -> columns``. Calling it on a
batch (a dict of equal-length column lists, as corpus readers, BentoML and Ray Data's
``map_batches`` all hand out) adds its columns, namespaced ``<name>.<column>``, so the
same object runs in a loop, in the service and on a cluster unchanged.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

Columns = dict[str, np.ndarray]


class Rater(ABC):
    """Base class: subclasses set ``name``/``version`` and implement ``score``.

    ``name`` is the column prefix (``heuristics`` -> ``heuristics.word_count``);
    ``version`` is recorded in every manifest next to it.
    """

    name: str = "rater"
    version: str = "1"
    text_field: str = "text"

    @abstractmethod
    def score(self, texts: Sequence[str]) -> Columns:
        """Return one array per output column (unprefixed), each ``len(texts)`` long."""

    def describe(self) -> dict[str, Any]:
        """What produced the columns, for manifest.json (model source, hashes, spec)."""
        return {"name": self.name, "version": self.version, "class": type(self).__qualname__}

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        texts = list(batch[self.text_field])
        out = dict(batch)
        for column, values in self.score(texts).items():
            values = np.asarray(values) if not isinstance(values, list) else values
            if len(values) != len(texts):
                raise AssertionError(
                    f"{self.name}.{column}: {len(values)} values for {len(texts)} texts"
                )
            out[f"{self.name}.{column}"] = values
        return out
