"""The one interface every rater implements.

A rater is a small object with one method, ``score(texts) -> columns``. Calling it on a
batch (a dict of equal-length column lists, as corpus readers, BentoML and Ray Data's
``map_batches`` all hand out) adds its columns, namespaced ``<name>.<column>`` (or, for
the one column a rater may name ``bare_column``, ``<name>`` alone), so the same object
runs in a loop, in the service and on a cluster unchanged.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from assay.errors import AssayError

Columns = dict[str, np.ndarray]


class Rater(ABC):
    """Base class: subclasses set ``name``/``version`` and implement ``score``.

    ``name`` is the column prefix (``heuristics`` -> ``heuristics.word_count``);
    ``version`` is recorded in every manifest next to it.
    """

    name: str = "rater"
    version: str = "1"
    text_field: str = "text"
    bare_column: str | None = None
    """A column of ``score`` written under the rater's name alone (the ``lang`` rater's
    ``lang``) rather than ``<name>.<column>``; None for most raters."""

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
            key = self.name if column == self.bare_column else f"{self.name}.{column}"
            if key == self.name and key in batch:
                raise AssayError(
                    f"the input already has a field {key!r}, which the {self.name} rater writes",
                    hint=f"rename that field in the input, or leave out --rater {self.name}",
                )
            out[key] = values
        return out
