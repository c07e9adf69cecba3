"""Row filters (``assay select --where``): comparisons over columns, joined by and / or / not.

Parsed with :mod:`ast` like ``--score`` (:mod:`selector.scores`), so a filter can never
run code. Examples::

    lang == 'en'
    lang in ('en', 'de') and `heuristics.rps_doc_word_count` >= 50
    not (dedup.size > 1) or zscore(perplexity.nll) < 2
    0.2 < lang.score <= 1

A comparison (``== != < <= > >=``, chained as in Python, or ``in`` / ``not in`` a list
of constants) compares text with text and numbers with numbers: a text column (``lang``,
``domain``) with a quoted string, a number column, or any ``--score`` arithmetic over
number columns, with a number. Mixing the two is an error that names the column.
Columns are read as :func:`selector.select_read.read_columns` gives them (booleans as
0/1). A null value (None, NaN) fails every comparison it takes part in, ``!=`` included,
and ``not`` of an unknown is still unknown (SQL's three-valued logic): a filter never
keeps a row it cannot judge.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from assay.errors import ConfigError
from selector.scores import FUNCTIONS, ScoreExpr, _dotted, arithmetic_error, hide_backticks

_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
ALLOWED = (
    "comparisons (== != < <= > >=, in / not in a list) of columns, quoted strings, numbers "
    "and --score arithmetic, joined by and / or / not; e.g. \"lang == 'en' and "
    'dedup.size == 1"'
)


@dataclass
class WhereExpr:
    """A parsed ``--where`` filter; ``columns`` lists the columns it reads."""

    text: str
    tree: ast.Expression
    columns: list[str]
    _quoted: dict[str, str] = field(default_factory=dict, repr=False)

    def __call__(self, table: Mapping[str, np.ndarray]) -> np.ndarray:
        """Boolean mask: True where the filter holds (and is known to)."""
        n = len(next(iter(table.values()))) if table else 0
        with np.errstate(invalid="ignore"):
            true, _ = self._test(self.tree.body, table, n)
        return np.broadcast_to(true, (n,)).copy()

    def _test(
        self, node: ast.AST, table: Mapping[str, np.ndarray], n: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(true, false)`` masks; a row with a null operand is in neither (SQL's
        three-valued logic, so ``not`` does not turn "unknown" into "true")."""
        if isinstance(node, ast.BoolOp):
            parts = [self._test(v, table, n) for v in node.values]
            t, f = parts[0]
            for pt, pf in parts[1:]:
                if isinstance(node.op, ast.And):
                    t, f = t & pt, f | pf
                else:
                    t, f = t | pt, f & pf
            return t, f
        if isinstance(node, ast.UnaryOp):  # not
            t, f = self._test(node.operand, table, n)
            return f, t
        assert isinstance(node, ast.Compare)
        holds, known = np.ones(n, dtype=bool), np.ones(n, dtype=bool)
        left = self._operand(node.left, table)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.In | ast.NotIn):
                h, k = self._member(left, right_node, isinstance(op, ast.NotIn))
            else:
                right = self._operand(right_node, table)
                h, k = self._compare(_COMPARE[type(op)], left, right)
                left = right
            holds, known = holds & h, known & k
        return holds & known, ~holds & known

    def _operand(self, node: ast.AST, table: Mapping[str, np.ndarray]) -> tuple[str, Any, str]:
        """``(kind, values, what)``: kind ``str`` or ``num``; values an array or a scalar."""
        if isinstance(node, ast.Constant):
            kind = "str" if isinstance(node.value, str) else "num"
            return kind, node.value if kind == "str" else float(node.value), repr(node.value)
        if isinstance(node, ast.Name | ast.Attribute):
            name = self._name(node)
            values = np.asarray(table[name])
            if values.dtype.kind in "OUS":  # text (or objects: checked to be text)
                return "str", _text(values, name), f"column {name!r}"
            return "num", values.astype(np.float64), f"column {name!r}"
        expr = ScoreExpr(self.text, ast.Expression(body=node), [], self._quoted)
        return "num", expr(table), ast.unparse(node)

    def _compare(
        self, op: Callable[[Any, Any], Any], left: tuple, right: tuple
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(holds, known)`` of one comparison."""
        (lk, lv, lw), (rk, rv, rw) = left, right
        if lk != rk:
            text, number = (lw, rw) if lk == "str" else (rw, lw)
            raise ConfigError(
                f"--where {self.text!r}: {text} is text and {number} a number",
                hint="compare text with a quoted string (lang == 'en'), numbers with numbers",
            )
        if lk == "num":
            return np.asarray(op(lv, rv)), ~np.isnan(lv) & ~np.isnan(rv)
        (lv, lnull), (rv, rnull) = _split(lv), _split(rv)
        return np.asarray(op(lv, rv)), ~lnull & ~rnull

    def _member(self, left: tuple, node: ast.AST, negate: bool) -> tuple[np.ndarray, np.ndarray]:
        kind, values, what = left
        assert isinstance(node, ast.List | ast.Tuple)
        items = [e.value for e in node.elts if isinstance(e, ast.Constant)]
        if any(isinstance(v, str) != (kind == "str") for v in items):
            raise ConfigError(
                f"--where {self.text!r}: {what} is {'text' if kind == 'str' else 'a number'}; "
                "its list must hold the same kind",
                hint=ALLOWED,
            )
        if kind == "num":
            values = np.asarray(values, dtype=np.float64)
            found = np.isin(values, np.asarray(items, dtype=np.float64))
            return (~found if negate else found), ~np.isnan(values)
        values, null = _split(values)
        found = np.isin(values, np.asarray(items, dtype=str))
        return (~found if negate else found), ~null

    def _name(self, node: ast.AST) -> str:
        return self._quoted.get(_dotted(node), _dotted(node))


def _text(values: np.ndarray, name: str) -> np.ndarray:
    bad = next((v for v in values if v is not None and not isinstance(v, str)), None)
    if bad is not None:
        raise ConfigError(
            f"--where: column {name!r} holds {type(bad).__name__} values, not text or numbers",
            hint="filter on a number or text column",
        )
    return values


def _split(values: Any) -> tuple[Any, Any]:
    """Text values as a numpy string array (or a str) and their null mask (or False)."""
    if isinstance(values, str):
        return values, np.False_
    null = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
    return np.where(null, "", values).astype(str), null


def parse_where(text: str) -> WhereExpr:
    """Parse and check a ``--where`` filter (see the module docstring)."""
    source, quoted = hide_backticks(text)
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as e:
        raise ConfigError(
            f"--where {text!r} is not an expression ({e.msg})", hint=ALLOWED
        ) from None
    bad = _check_test(tree.body)
    if bad:
        raise ConfigError(f"--where {text!r}: {bad}", hint=ALLOWED)
    expr = WhereExpr(text, tree, [], quoted)
    expr.columns = list(dict.fromkeys(expr._name(n) for n in _column_nodes(tree.body)))
    return expr


def _check_test(node: ast.AST) -> str | None:
    """What is wrong with a node that must be true or false, or None."""
    if isinstance(node, ast.BoolOp):
        return next((b for v in node.values if (b := _check_test(v))), None)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return _check_test(node.operand)
    if not isinstance(node, ast.Compare):
        return f"{ast.unparse(node)!r} is not a comparison"
    for op, right in zip(node.ops, node.comparators, strict=True):
        if isinstance(op, ast.In | ast.NotIn):
            if not isinstance(right, ast.List | ast.Tuple) or not all(
                isinstance(e, ast.Constant) and isinstance(e.value, str | int | float)
                and not isinstance(e.value, bool) for e in right.elts
            ):  # fmt: skip
                return f"'in' needs a list of constants, got {ast.unparse(right)!r}"
        elif type(op) not in _COMPARE:
            return f"operator {type(op).__name__} is not allowed"
        elif bad := _check_operand(right):
            return bad
    return _check_operand(node.left)


def _check_operand(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return None
    for sub in ast.walk(node):
        if bad := arithmetic_error(sub):
            return f"{bad} is not allowed"
    return None


def _column_nodes(node: ast.AST) -> list[ast.AST]:
    """Name/attribute nodes that are columns (not function names, not list items)."""
    if isinstance(node, ast.Name | ast.Attribute):
        return [node]
    if isinstance(node, ast.Call):
        return [c for a in node.args for c in _column_nodes(a)]
    if isinstance(node, ast.BinOp):
        return _column_nodes(node.left) + _column_nodes(node.right)
    if isinstance(node, ast.UnaryOp):
        return _column_nodes(node.operand)
    if isinstance(node, ast.BoolOp):
        return [c for v in node.values for c in _column_nodes(v)]
    if isinstance(node, ast.Compare):
        return [c for v in [node.left, *node.comparators] for c in _column_nodes(v)]
    return []


__all__ = ["FUNCTIONS", "WhereExpr", "parse_where"]
