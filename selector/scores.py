"""The combined score a selection ranks by: a safe expression over columns, or a weights file.

Expressions (``--score``) are parsed with :mod:`ast` and evaluated on numpy arrays; only
numbers, column names, ``+ - * /``, unary minus and the functions in :data:`FUNCTIONS` are
allowed, so a score can never run code. Column names with dots parse as written
(``perplexity.nll``); names with other characters go in backticks
(```assay-mini-v1.quality```). Example::

    -zscore(perplexity.nll) + 0.5 * zscore(`assay-mini-v1.quality`)

A weights file (``--weights``, written by ``assay select learn-weights``) is a linear
combination of standardised columns: ``sum_c w_c * (x_c - center_c) / scale_c``.
"""

from __future__ import annotations

import ast
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assay import manifest as mf
from assay.errors import AssayError, ConfigError

WEIGHTS_KIND = "score_weights"


def _zscore(x: np.ndarray) -> np.ndarray:
    sd = np.nanstd(x)
    return (x - np.nanmean(x)) / (sd if sd > 0 else 1.0)


def _rank(x: np.ndarray) -> np.ndarray:
    """Percentile rank in [0, 1] (ties share the mean rank; NaN stays NaN)."""
    out = np.full(x.shape, np.nan)
    ok = ~np.isnan(x)
    if ok.sum() == 0:
        return out
    v = x[ok]
    order = np.argsort(v, kind="stable")
    ranks = np.empty(v.size)
    ranks[order] = np.arange(v.size)
    # average the ranks of ties so that equal values score equally
    _, inv, counts = np.unique(v, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=ranks)
    ranks = sums[inv] / counts[inv]
    out[ok] = ranks / max(v.size - 1, 1)
    return out


FUNCTIONS: dict[str, tuple[Callable[..., np.ndarray], int]] = {
    "log": (np.log, 1),
    "log1p": (np.log1p, 1),
    "exp": (np.exp, 1),
    "sqrt": (np.sqrt, 1),
    "abs": (np.abs, 1),
    "min": (np.minimum, 2),
    "max": (np.maximum, 2),
    "clip": (np.clip, 3),
    "zscore": (_zscore, 1),
    "rank": (_rank, 1),
}
_OPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.divide,
}
_BACKTICK = re.compile(r"`([^`]+)`")


@dataclass
class ScoreExpr:
    """A parsed ``--score`` expression; ``columns`` lists the columns it reads."""

    text: str
    tree: ast.Expression
    columns: list[str]
    _quoted: dict[str, str] = field(default_factory=dict, repr=False)

    def __call__(self, table: Mapping[str, np.ndarray]) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            out = self._eval(self.tree.body, table)
        n = len(next(iter(table.values()))) if table else 1
        return np.broadcast_to(np.asarray(out, dtype=np.float64), (n,)).copy()

    def _eval(self, node: ast.AST, table: Mapping[str, np.ndarray]) -> Any:
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.Name | ast.Attribute):
            return np.asarray(table[self._name(node)], dtype=np.float64)
        if isinstance(node, ast.UnaryOp):
            v = self._eval(node.operand, table)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp):
            return _OPS[type(node.op)](self._eval(node.left, table), self._eval(node.right, table))
        assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        fn, _ = FUNCTIONS[node.func.id]
        args = [np.asarray(self._eval(a, table), dtype=np.float64) for a in node.args]
        return fn(*args)

    def _name(self, node: ast.AST) -> str:
        return self._quoted.get(_dotted(node), _dotted(node))


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    assert isinstance(node, ast.Attribute)
    return f"{_dotted(node.value)}.{node.attr}"


def parse_score(text: str) -> ScoreExpr:
    """Parse and check a ``--score`` expression (see the module docstring)."""
    source, quoted = hide_backticks(text)
    allowed = "numbers, column names (`quoted` if they hold - or spaces), + - * /, unary -, "
    allowed += "and " + ", ".join(f"{k}()" for k in FUNCTIONS)
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as e:
        raise ConfigError(
            f"--score {text!r} is not an expression ({e.msg})", hint=allowed
        ) from None
    for node in ast.walk(tree):
        bad = arithmetic_error(node)
        if bad:
            raise ConfigError(f"--score {text!r}: {bad} is not allowed", hint=allowed)
    expr = ScoreExpr(text, tree, [], quoted)
    expr.columns = list(dict.fromkeys(expr._name(n) for n in _column_nodes(tree.body)))
    return expr


def arithmetic_error(node: ast.AST) -> str | None:
    """What is not allowed about one node of a score expression, or None if it is fine
    (numbers, column names, ``+ - * /``, unary minus, the functions in :data:`FUNCTIONS`)."""
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            return f"constant {node.value!r}"
    elif isinstance(node, ast.BinOp):
        if type(node.op) not in _OPS:
            return f"operator {type(node.op).__name__}"
    elif isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, ast.USub | ast.UAdd):
            return f"operator {type(node.op).__name__}"
    elif isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name not in FUNCTIONS or node.keywords:
            return f"call of {ast.unparse(node.func)}"
        if len(node.args) != FUNCTIONS[name][1]:
            return f"{name}() with {len(node.args)} arguments (takes {FUNCTIONS[name][1]})"
    elif isinstance(node, ast.Attribute):
        if not isinstance(node.value, ast.Name | ast.Attribute):
            return f"attribute of {type(node.value).__name__}"
    elif not isinstance(node, ast.Expression | ast.Name | ast.Load | ast.operator | ast.unaryop):
        return type(node).__name__
    return None


def hide_backticks(text: str) -> tuple[str, dict[str, str]]:
    """``text`` with each ```quoted name``` replaced by a Python name, and the mapping back."""
    quoted: dict[str, str] = {}

    def hide(m: re.Match[str]) -> str:
        key = f"__col{len(quoted)}"
        quoted[key] = m.group(1)
        return key

    return _BACKTICK.sub(hide, text), quoted


def _column_nodes(node: ast.AST) -> list[ast.AST]:
    """Name/attribute nodes that are columns: a dotted name is one column, and a
    function's own name is not one."""
    if isinstance(node, ast.Name | ast.Attribute):
        return [node]
    if isinstance(node, ast.Call):
        return [c for a in node.args for c in _column_nodes(a)]
    if isinstance(node, ast.BinOp):
        return _column_nodes(node.left) + _column_nodes(node.right)
    if isinstance(node, ast.UnaryOp):
        return _column_nodes(node.operand)
    return []


@dataclass
class ScoreWeights:
    """A linear score over standardised columns (what learn-weights finds)."""

    weights: dict[str, float]
    """Column -> weight; the score is sum_c weight * (x - center) / scale."""
    center: dict[str, float]
    scale: dict[str, float]
    info: dict[str, Any] = field(default_factory=dict)
    """How the weights were found (method, proxy, held-out Spearman, ...)."""

    @property
    def columns(self) -> list[str]:
        return list(self.weights)

    def __call__(self, table: Mapping[str, np.ndarray]) -> np.ndarray:
        total = None
        for c, w in self.weights.items():
            x = np.asarray(table[c], dtype=np.float64)
            term = w * (x - self.center[c]) / (self.scale[c] or 1.0)
            total = term if total is None else total + term
        assert total is not None
        return total

    def write(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        body = mf.new_manifest(
            WEIGHTS_KIND,
            weights=self.weights,
            center=self.center,
            scale=self.scale,
            **self.info,
        )
        mf.write_json_atomic(path, body)
        return path

    @classmethod
    def read(cls, path: str | os.PathLike) -> ScoreWeights:
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"--weights {path} does not exist") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"--weights {path} is not valid JSON ({e})") from None
        if d.get("kind") != WEIGHTS_KIND:
            raise ConfigError(
                f"--weights {path} is not a score-weights file (kind={d.get('kind')!r})",
                hint="write one with: assay select learn-weights",
            )
        try:
            weights = {str(k): float(v) for k, v in d["weights"].items()}
            center = {c: float(d["center"][c]) for c in weights}
            scale = {c: float(d["scale"][c]) for c in weights}
        except (KeyError, TypeError, ValueError) as e:
            raise AssayError(f"--weights {path}: malformed ({e})") from None
        skip = {"weights", "center", "scale"}
        return cls(weights, center, scale, {k: v for k, v in d.items() if k not in skip})


__all__ = ["FUNCTIONS", "ScoreExpr", "ScoreWeights", "parse_score"]
