"""The Document contract: one record type flows through everything.

A document is any mapping with a text field (default ``text``, a ``str``) and an id
(default ``id``; if absent, ``sha1(text)``). Every other field is carried through
untouched. Records travel in column batches (``dict[str, list]``) so raters, BentoML and
Ray Data's ``map_batches`` all see the same shape.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Batch = dict[str, list[Any]]


def doc_id(text: str) -> str:
    """The default id of a document without one: the SHA-1 of its UTF-8 text."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Fields:
    """Which record fields hold the text and the id."""

    text: str = "text"
    """Name of the text field; its value must be a ``str``."""
    id: str = "id"
    """Name of the id field; filled with ``sha1(text)`` where a record has none."""


def check_record(record: Any, fields: Fields) -> str | None:
    """Why a parsed record is not a document, or None if it is one."""
    if not isinstance(record, Mapping):
        return f"record is a {type(record).__name__}, not an object"
    if fields.text not in record:
        return f"missing text field {fields.text!r}"
    text = record[fields.text]
    if not isinstance(text, str):
        return f"text field {fields.text!r} is {type(text).__name__}, not a string"
    return None


def rows_to_batch(rows: Iterable[Mapping[str, Any]], fields: Fields) -> Batch:
    """Column batch from documents; ids filled in; missing columns become None."""
    rows = list(rows)
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    columns.setdefault(fields.id, None)
    batch: Batch = {c: [row.get(c) for row in rows] for c in columns}
    ids, texts = batch[fields.id], batch[fields.text]
    for i, value in enumerate(ids):
        if value is None:
            ids[i] = doc_id(texts[i])
    return batch
