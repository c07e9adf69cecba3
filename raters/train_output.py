"""Writing a trained rater folder: refuse to clobber, stage, spec, manifest, swap in."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from assay import manifest as mf
from assay.errors import ManifestMismatchError
from raters.labels import SPLITS, LabelSet
from raters.train_config import TrainConfig
from raters.train_heads import HeadPlan


def prepare_out(out: Path, overwrite: bool) -> None:
    """Refuse to replace a folder that is not a rater we wrote (or without --overwrite)."""
    if not out.exists():
        return
    if out.is_dir() and not any(out.iterdir()):
        return
    ours = (out / "manifest.json").is_file() and _kind(out / "manifest.json") == "rater"
    if not ours:
        raise ManifestMismatchError(
            f"{out} exists and is not a rater written by assay train-rater",
            hint="choose another -o (assay never deletes a folder it did not write)",
        )
    if not overwrite:
        raise ManifestMismatchError(
            f"{out} already holds a trained rater", hint="pass --overwrite to replace it"
        )


def _kind(path: Path) -> str | None:
    try:
        return json.loads(path.read_text()).get("kind")
    except (json.JSONDecodeError, OSError):
        return None


def write_spec(
    folder: Path,
    cfg: TrainConfig,
    plans: list[HeadPlan],
    backbone_ref: str,
    default_name: str,
    labels: LabelSet,
) -> Any:
    """``rater.json`` for the trained heads (an ``assay-heads`` encoder rater)."""
    from raters.spec import RaterSpec

    name = rater_name(cfg, default_name)
    domain = next((p for p in plans if p.kind == "domain"), None)
    spec = RaterSpec.from_dict(
        {
            "name": name,
            "version": cfg.version,
            "kind": "encoder",
            "model": ".",
            "format": "assay-heads",
            "backbone": backbone_ref,
            "criteria": [p.spec_entry() for p in plans if p.kind != "domain"],
            "domain": (
                None
                if domain is None
                else {"logits": [domain.start, domain.end], "labels": list(domain.labels or ())}
            ),
            "max_tokens": cfg.max_tokens,
            "long_doc": "head",
            "description": describe(cfg, labels),
        },
        base_dir=folder,
    )
    spec.save(folder / "rater.json")
    return spec


def rater_name(cfg: TrainConfig, default: str) -> str:
    """``--name``, or the output folder's name made usable as a column prefix."""
    return cfg.name or re.sub(r"[^A-Za-z0-9_-]", "-", default).strip("-") or "rater"


def describe(cfg: TrainConfig, labels: LabelSet) -> str:
    return cfg.description or (
        f"Trained by assay train-rater (--kind {cfg.kind} --method {cfg.method}) on "
        f"{Path(labels.source).name} (sha256 {labels.sha256[:12]}), base {cfg.base}; "
        "see train_log.json and metrics.json."
    )


def staging_dir(out: Path) -> Path:
    """A fresh temporary folder beside ``out`` (same file system: the final rename is atomic)."""
    staging = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def rater_manifest(
    spec: dict[str, Any],
    cfg: TrainConfig,
    labels: LabelSet,
    rows: dict[str, np.ndarray],
    base_ref: str,
    base_dir: Path,
    timings: dict[str, float],
    folder: Path,
) -> dict[str, Any]:
    from raters.hub import weights_sha256

    return mf.new_manifest(
        "rater",
        name=spec["name"],
        version=spec["version"],
        rater_kind=cfg.kind,
        method=cfg.method,
        inputs=[{"path": str(Path(labels.source).resolve()), "sha256": labels.sha256}],
        labels={
            "criteria": labels.criteria,
            "domains": labels.domain_labels(),
            "rubric": labels.rubric,
            "examples": {s: len(rows[s]) for s in SPLITS},
        },
        base={"name": base_ref, "path": str(base_dir), "weights_sha256": weights_sha256(base_dir)},
        weights_sha256=weights_sha256(folder),
        spec=spec,
        config=cfg.to_dict(),
        seeds={"seed": cfg.seed},
        extra_packages=mf.package_versions(("peft", "safetensors")),
        timings={k: round(v, 3) for k, v in timings.items()},
    )


def swap_in(staging: Path, out: Path) -> None:
    for path in staging.rglob("*"):  # temp files are created 0600; a rater is shared
        path.chmod(0o755 if path.is_dir() else 0o644)
    if out.exists():
        shutil.rmtree(out)  # checked by prepare_out: empty, or a rater of ours + --overwrite
    out.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging, out)


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
