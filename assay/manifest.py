"""manifest.json: what produced an artifact folder, so a later step can check its inputs.

Every artifact (annotations, embeddings, clusters, mixture, selection, export) has one. It
records inputs (paths, sizes, hashes), models (name, source, weight hashes, spec), config,
package versions, seeds, row and error counts, and timings.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from assay.errors import AssayError, ManifestMismatchError

MANIFEST = "manifest.json"
SCHEMA_VERSION = 1
TRACKED_PACKAGES = ("assay", "numpy", "pyarrow", "torch", "transformers", "tokenizers")


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON to a temp file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=False, default=str)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def describe_inputs(paths: Iterable[str | os.PathLike], *, hash_files: bool = True) -> list[dict]:
    out = []
    for p in paths:
        st = os.stat(p)
        entry: dict[str, Any] = {"path": str(Path(p).resolve()), "size": st.st_size}
        if hash_files:
            entry["sha256"] = sha256_of(p)
        out.append(entry)
    return out


def package_versions(names: Iterable[str] = TRACKED_PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def new_manifest(kind: str, **sections: Any) -> dict[str, Any]:
    """A manifest dict with the common header; ``sections`` are added as given."""
    return {
        "kind": kind,
        "schema_version": SCHEMA_VERSION,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "packages": package_versions(),
        **sections,
    }


def read_manifest(folder: str | os.PathLike, *, kind: str | None = None) -> dict[str, Any]:
    """Load ``folder/manifest.json``; refuse a folder of another kind or without one."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise AssayError(
            f"{folder} has no {MANIFEST}: it is not a finished assay artifact",
            hint="rerun the step that writes it; an interrupted run resumes with the same command",
        )
    manifest = json.loads(path.read_text())
    if kind is not None and manifest.get("kind") != kind:
        raise ManifestMismatchError(
            f"{folder} holds a {manifest.get('kind')!r} artifact, this step needs {kind!r}"
        )
    return manifest


def diff_keys(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """Top-level keys whose values differ between two dicts."""
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


RUN_FILE = "_run.json"


def prepare_run_folder(
    out: Path, fingerprint: dict[str, Any], overwrite: bool, *, what: str, holds: str
) -> bool:
    """Make ``out`` ready for a resumable run; True if it already holds this exact,
    finished run (a manifest whose ``run`` matches).

    ``_run.json`` records the command's fingerprint; a folder of another command or
    input is refused (``--overwrite`` restarts), and a non-empty folder that is not one
    of ours is never deleted. ``what`` names the run in messages ("an assay annotation
    run"), ``holds`` what a mismatching folder holds ("a run of a different command").
    """
    run_file, manifest_file = out / RUN_FILE, out / MANIFEST
    if overwrite and (run_file.exists() or manifest_file.exists()):
        shutil.rmtree(out)  # only ever a folder an earlier run of ours wrote
    if out.exists() and any(out.iterdir()):
        previous = None
        if run_file.exists():
            previous = json.loads(run_file.read_text())
        elif manifest_file.exists():
            previous = json.loads(manifest_file.read_text()).get("run")
        if previous is None:
            raise ManifestMismatchError(
                f"output folder {out} exists, is not empty and is not {what}",
                hint="choose another -o (assay never deletes a folder it did not write)",
            )
        if previous != fingerprint:
            changed = ", ".join(diff_keys(previous, fingerprint))
            raise ManifestMismatchError(
                f"{out} holds {holds} (differs in: {changed})",
                hint="rerun the original command to resume it, or pass --overwrite to restart",
            )
        if manifest_file.exists():
            return True
    out.mkdir(parents=True, exist_ok=True)
    if not run_file.exists():
        write_json_atomic(run_file, fingerprint)
    return False
