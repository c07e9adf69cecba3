"""Bring your own proxy: a command template per run, or a CSV of runs already made.

**Command** (``--proxy-cmd "train.sh {mixture_json} {out}"``). For each proxy run assay
writes ``{out}/mixture.json`` (a mixture file as ``selector.mixture`` defines it, with the
run's seed and token budget under ``method``), fills the template's fields, runs it
without a shell (arguments split as a POSIX shell would, each field quoted), and reads
the metrics the command prints: the **last line of stdout that parses as a JSON object**,
or ``{out}/metrics.json`` if the command wrote one. Accepted shapes::

    {"wiki": {"loss": 3.1, "bpb": 1.2}, "code": {"loss": 2.0}}   # per target
    {"wiki": 3.1, "code": 2.0}                                   # metric = --objective
    {"loss": 3.1}                                                # one target

Template fields: ``{mixture_json} {out} {seed} {tokens} {run}``.

**Offline runs** (``--runs-csv runs.csv``): one row per run, a ``w:<group>`` column per
group (weights, renormalised) and either an ``objective`` column or ``<target>:<metric>``
columns (averaged over targets). The ``runs.csv`` that ``assay mix search`` writes is
such a file, so an earlier search's runs can be refitted without training anything.
"""

from __future__ import annotations

import csv
import json
import math
import shlex
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assay.errors import AssayError, ConfigError

FIELDS = ("mixture_json", "out", "seed", "tokens", "run")
Metrics = dict[str, dict[str, float]]


def check_template(template: str) -> None:
    """Refuse a template with unknown fields or without ``{mixture_json}``."""
    import string

    names = {f for _, f, _, _ in string.Formatter().parse(template) if f}
    unknown = names - set(FIELDS)
    if unknown:
        raise ConfigError(
            f"--proxy-cmd uses unknown fields {sorted(unknown)}",
            hint=f"allowed: {', '.join('{' + f + '}' for f in FIELDS)}",
        )
    if "mixture_json" not in names:
        raise ConfigError("--proxy-cmd must pass {mixture_json} to the command")


def parse_metrics(
    obj: Any, targets: Sequence[str], objective: str, where: str = "proxy command"
) -> Metrics:
    """Normalise the accepted shapes (see the module docstring) to target -> metric -> value."""
    if not isinstance(obj, Mapping) or not obj:
        raise AssayError(f"{where} printed no metrics object")
    out: Metrics = {}
    if set(obj) <= {"loss", "bpb", objective} and len(targets) == 1:
        obj = {targets[0]: obj}
    for target in targets:
        if target not in obj:
            raise AssayError(
                f"{where}: metrics lack target {target!r} (got {sorted(obj)})",
                hint="print one entry per --target, named after the target file",
            )
        value = obj[target]
        entry = value if isinstance(value, Mapping) else {objective: value}
        try:
            out[target] = {k: float(v) for k, v in entry.items()}
        except (TypeError, ValueError):
            raise AssayError(f"{where}: metric values must be numbers, got {value!r}") from None
        if objective not in out[target] or not math.isfinite(out[target][objective]):
            raise AssayError(f"{where}: target {target!r} has no finite {objective!r}")
    return out


def last_json_line(text: str) -> Any:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return None


@dataclass
class CommandProxy:
    """Runs ``template`` for one mixture and returns its metrics."""

    template: str
    workdir: Path
    targets: list[str]
    objective: str = "loss"
    timeout: float | None = None
    """Seconds per run; None = no limit."""

    def __post_init__(self) -> None:
        check_template(self.template)

    def __call__(self, mixture: dict[str, Any], *, run: int, seed: int, tokens: int) -> Metrics:
        out = self.workdir / f"run-{run:04d}"
        out.mkdir(parents=True, exist_ok=True)
        mixture_json = out / "mixture.json"
        from assay.manifest import write_json_atomic

        write_json_atomic(mixture_json, mixture)
        values = {
            "mixture_json": shlex.quote(str(mixture_json)),
            "out": shlex.quote(str(out)),
            "seed": str(seed),
            "tokens": str(tokens),
            "run": str(run),
        }
        argv = shlex.split(self.template.format(**values))
        start = time.perf_counter()
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=self.timeout, check=False
            )
        except FileNotFoundError:
            raise AssayError(f"--proxy-cmd: program {argv[0]!r} not found") from None
        except subprocess.TimeoutExpired:
            raise AssayError(f"--proxy-cmd run {run} timed out after {self.timeout} s") from None
        (out / "stdout.txt").write_text(done.stdout)
        (out / "stderr.txt").write_text(done.stderr)
        if done.returncode != 0:
            tail = done.stderr.strip().splitlines()[-5:]
            raise AssayError(
                f"--proxy-cmd run {run} exited with {done.returncode}: " + " | ".join(tail),
                hint=f"see {out}/stderr.txt",
            )
        obj = None
        if (out / "metrics.json").exists():
            obj = json.loads((out / "metrics.json").read_text())
        if obj is None:
            obj = last_json_line(done.stdout)
        metrics = parse_metrics(obj, self.targets, self.objective, f"--proxy-cmd run {run}")
        metrics.setdefault("_run", {})["seconds"] = time.perf_counter() - start
        return metrics


def read_runs_csv(
    path: str | Path, groups: Sequence[str], objective: str = "loss"
) -> tuple[np.ndarray, np.ndarray, int]:
    """Offline runs: (weights ``[runs, groups]``, objective ``[runs]``, rows skipped).

    Rows whose objective is not finite (a diverged or failed run) are skipped and counted.
    """
    path = Path(path)
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        raise AssayError(f"--runs-csv {path} does not exist") from None
    if not rows:
        raise AssayError(f"--runs-csv {path} has no rows")
    cols = set(rows[0])
    wcols = {c[2:] for c in cols if c.startswith("w:")}
    missing = [g for g in groups if g not in wcols]
    if missing:
        raise AssayError(
            f"--runs-csv {path} lacks weight columns for groups {missing[:10]}",
            hint="name weight columns w:<group> (as the runs.csv assay writes)",
        )
    extra = sorted(wcols - set(groups))
    if extra:
        raise AssayError(f"--runs-csv {path} has weights for groups not in the pool: {extra[:10]}")
    metric_cols = [c for c in cols if c.endswith(f":{objective}") and not c.startswith("w:")]
    X, y = [], []
    skipped = 0
    for line, row in enumerate(rows, start=2):
        try:
            w = [float(row[f"w:{g}"] or 0) for g in groups]
            if row.get("objective") not in (None, ""):
                value = float(row["objective"])
            elif metric_cols:
                value = float(np.mean([float(row[c]) for c in metric_cols]))
            else:
                raise AssayError(
                    f"--runs-csv {path} has no 'objective' or '<target>:{objective}' column"
                )
        except ValueError as e:
            raise AssayError(f"{path}:{line}: not a number ({e})") from None
        if sum(w) <= 0 or min(w) < 0:
            raise AssayError(f"{path}:{line}: weights must be >= 0 and not all 0")
        if not math.isfinite(value):
            skipped += 1  # a failed run is data, but not a training point for the predictor
            continue
        X.append(np.asarray(w) / sum(w))
        y.append(value)
    return np.asarray(X).reshape(-1, len(groups)), np.asarray(y), skipped
