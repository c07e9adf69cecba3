"""mixture.json: target weights over groups of documents, in tokens.

The contract between mixture search (``assay mix search``), selection (``assay select``)
and the trainer exporters (``assay mix export``). Weights are fractions of *training
tokens*; each exporter converts them into its trainer's unit (samples, documents, tokens)
with the groups' token and document counts kept here.

Example::

    {"kind": "mixture", "schema_version": 1, "unit": "tokens", "group_by": "cluster.topic",
     "groups": [{"name": "3", "weight": 0.6, "tokens_available": 120000,
                 "docs_available": 300, "paths": ["sel/group=3"]}, ...],
     "budget_tokens": 100000, "method": {"name": "regmix", ...}, "provenance": {...}}
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from assay import manifest as mf
from assay.errors import AssayError, ConfigError

KIND = "mixture"
WEIGHT_TOL = 1e-6


@dataclass
class Group:
    """One group of documents (a cluster, topic, domain or source) and its weight."""

    name: str
    """Group key as a string (cluster ids are written as their decimal string)."""
    weight: float
    """Fraction of training tokens drawn from this group; all weights sum to 1."""
    tokens_available: int
    """Tokens the group holds (``n_tokens`` summed); 0 when unknown."""
    docs_available: int
    """Documents the group holds."""
    tokens_selected: int | None = None
    """Tokens actually selected (``assay select``), or None before selection."""
    docs_selected: int | None = None
    """Documents actually selected, counting repeats."""
    paths: list[str] = field(default_factory=list)
    """Where the group's data lies once exported (shard folders, Megatron prefixes)."""

    def epochs(self, budget_tokens: int | None) -> float | None:
        """Passes over the group implied by ``weight * budget`` (None if unknown)."""
        if self.tokens_selected is not None and self.tokens_available:
            return self.tokens_selected / self.tokens_available
        if budget_tokens is None or not self.tokens_available:
            return None
        return self.weight * budget_tokens / self.tokens_available


@dataclass
class Mixture:
    """Weights over groups plus how they were found; see the module docstring."""

    groups: list[Group]
    group_by: str
    """Annotation column the groups come from (``cluster.topic``, ``domain``, ...)."""
    budget_tokens: int | None = None
    """Training tokens the weights are meant for; epochs are reported against it."""
    method: dict[str, Any] = field(default_factory=dict)
    """How the weights were found: name, proxy, iterations, predictor Spearman, ..."""
    provenance: dict[str, Any] = field(default_factory=dict)
    """Inputs (paths, manifest hashes) the groups were counted from."""
    unit: str = "tokens"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.unit != "tokens":
            raise ConfigError(f"mixture unit must be 'tokens', got {self.unit!r}")
        if not self.groups:
            raise ConfigError("a mixture needs at least one group")
        names = [g.name for g in self.groups]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ConfigError(f"mixture group names repeat: {', '.join(dup)}")
        for g in self.groups:
            if not (math.isfinite(g.weight) and g.weight >= 0):
                raise ConfigError(
                    f"group {g.name!r}: weight must be finite and >= 0, got {g.weight}"
                )
        total = sum(g.weight for g in self.groups)
        if abs(total - 1.0) > WEIGHT_TOL:
            raise ConfigError(
                f"mixture weights sum to {total:.6f}, not 1",
                hint="normalise them (Mixture.normalised) before writing",
            )

    @property
    def weights(self) -> dict[str, float]:
        return {g.name: g.weight for g in self.groups}

    def group(self, name: str) -> Group:
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        groups = []
        for g in self.groups:
            d = asdict(g)
            d["epochs"] = g.epochs(self.budget_tokens)
            groups.append(d)
        return mf.new_manifest(
            KIND,
            unit=self.unit,
            group_by=self.group_by,
            budget_tokens=self.budget_tokens,
            groups=groups,
            method=self.method,
            provenance=self.provenance,
        )

    def write(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        mf.write_json_atomic(path, self.to_dict())
        return path

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = "mixture") -> Mixture:
        if d.get("kind") != KIND:
            raise AssayError(f"{source} is not a mixture file (kind={d.get('kind')!r})")
        fields = set(Group.__dataclass_fields__)
        try:
            groups = [Group(**{k: v for k, v in g.items() if k in fields}) for g in d["groups"]]
        except (KeyError, TypeError) as e:
            raise AssayError(f"{source}: malformed group entry ({e})") from None
        return cls(
            groups=groups,
            group_by=d.get("group_by", ""),
            budget_tokens=d.get("budget_tokens"),
            method=d.get("method", {}),
            provenance=d.get("provenance", {}),
            unit=d.get("unit", "tokens"),
        )

    @classmethod
    def read(cls, path: str | os.PathLike) -> Mixture:
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise AssayError(f"mixture file {path} does not exist") from None
        except json.JSONDecodeError as e:
            raise AssayError(f"{path}: not valid JSON ({e})") from None
        return cls.from_dict(d, source=str(path))

    @staticmethod
    def normalised(weights: dict[str, float]) -> dict[str, float]:
        """Weights scaled to sum to 1 (negative or all-zero weights are refused)."""
        if any(w < 0 or not math.isfinite(w) for w in weights.values()):
            raise ConfigError("weights must be finite and >= 0")
        total = sum(weights.values())
        if total <= 0:
            raise ConfigError("weights sum to 0")
        return {k: w / total for k, w in weights.items()}
