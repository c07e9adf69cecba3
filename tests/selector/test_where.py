"""``--where`` filters by hand: comparisons of text and numbers, and/or/not with nulls
judged as SQL does, and errors that say what is allowed."""

from __future__ import annotations

import numpy as np
import pytest

from assay.errors import ConfigError
from selector.where import parse_where

TABLE = {
    "lang": np.array(["en", "de", None, "en"], dtype=object),
    "lang.score": np.array([0.9, 0.5, np.nan, 0.1]),
    "dedup.size": np.array([1.0, 2.0, 1.0, 1.0]),
    "assay-mini-v1.quality": np.array([3.0, 1.0, 2.0, 4.0]),
}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("lang == 'en'", [1, 0, 0, 1]),
        ("'en' == lang", [1, 0, 0, 1]),
        ("lang != 'en'", [0, 1, 0, 0]),  # None is unknown, not "different"
        ("lang in ('en', 'de')", [1, 1, 0, 1]),
        ("lang not in ['en']", [0, 1, 0, 0]),
        ("lang < 'e'", [0, 1, 0, 0]),
        ("lang.score >= 0.5", [1, 1, 0, 0]),
        ("0.2 < lang.score <= 1", [1, 1, 0, 0]),
        ("not (lang.score > 0.4)", [0, 0, 0, 1]),  # not unknown is unknown
        ("lang.score > 0.4 or dedup.size == 1", [1, 1, 1, 1]),  # true or unknown is true
        ("lang == 'en' and dedup.size == 1", [1, 0, 0, 1]),
        ("zscore(`assay-mini-v1.quality`) > 0", [1, 0, 0, 1]),
        ("`assay-mini-v1.quality` * 2 - 1 >= 5", [1, 0, 0, 1]),
        ("dedup.size in (2,)", [0, 1, 0, 0]),
    ],
)
def test_filters_by_hand(text, expected):
    where = parse_where(text)
    assert where(TABLE).astype(int).tolist() == expected


def test_columns_are_the_ones_read():
    where = parse_where("lang == 'en' and zscore(`assay-mini-v1.quality`) > lang.score")
    assert where.columns == ["lang", "assay-mini-v1.quality", "lang.score"]


@pytest.mark.parametrize(
    "text, match",
    [
        ("lang", "is not a comparison"),
        ("lang == 5", "column 'lang' is text and 5 a number"),
        ("lang.score == 'en'", "is text and column 'lang.score' a number"),
        ("lang in x", "'in' needs a list of constants"),
        ("dedup.size in ('a',)", "its list must hold the same kind"),
        ("lang is None", "operator Is"),
        ("__import__('os').system('x') == 0", "call of __import__"),
        ("lang == 'en' +", "not an expression"),
        ("lang.score == True", "constant True"),
    ],
)
def test_bad_filters_say_what_is_allowed(text, match):
    with pytest.raises(ConfigError, match=match) as info:
        parse_where(text)(TABLE)
    assert "comparisons" in (info.value.hint or "") or "compare" in (info.value.hint or "")


def test_a_column_of_lists_is_refused():
    tags = np.empty(2, dtype=object)
    tags[:] = [["a"], ["b"]]  # what read_columns gives for a list<string> column
    with pytest.raises(ConfigError, match="holds list values"):
        parse_where("tags == 'a'")({"tags": tags})
