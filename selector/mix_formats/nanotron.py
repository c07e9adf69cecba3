"""Nanotron Nanosets: ``dataset_folder: [path, ...]`` and ``dataset_weights: [w, ...]``
inside a data stage.

What nanotron reads (``src/nanotron/config/config.py`` at commit 2411b02, 2026-04; no
PyPI release has Nanosets, the last, 0.4, is from 2024-03): ``NanosetDatasetsArgs``
takes ``dataset_folder: Union[str, List[str]]`` and ``dataset_weights:
Optional[List[float]]``, loaded by dacite with ``strict=True`` (an unknown key fails).
The ``{folder: weight}`` mapping that ``docs/nanoset.md`` and
``examples/config_nanoset.yaml`` still show was removed in commit 7323ce1 (2024-09): it
fails with dacite's ``UnionMatchError`` on ``data.dataset``. ``Nanoset`` normalises the
weights and draws *samples* of ``sequence_length + 1`` tokens at those shares; a small
folder repeats. Stages: ``data_stages: [{name, start_training_step, data: {dataset,
seed, num_loading_workers}}]``, one of them starting at step 1; we write one stage.

Each folder holds datatrove-tokenised ``*.ds`` files (nanotron's
``tools/preprocess_data.py``); ``assay export`` writes none, so the paths are where the
user tokenises each group (``--path-template``, default ``data/{group}``).
``tests/selector/test_export_nanotron.py`` loads the file with nanotron's own loader.
"""

from __future__ import annotations

from typing import Any

import yaml

from assay.errors import AssayError
from selector.mix_formats._common import check_weights


def render(rows: list[Any], *, seed: int = 42, **_: Any) -> dict[str, str]:
    from selector.mix_export import fixed_decimals

    doc = {
        "data_stages": [
            {
                "name": "stable",
                "start_training_step": 1,
                "data": {
                    "dataset": {
                        "dataset_folder": [r.path for r in rows],
                        "dataset_weights": fixed_decimals([r.weight for r in rows]),
                    },
                    "seed": seed,
                    "num_loading_workers": 1,
                },
            }
        ]
    }
    return {"nanoset.yaml": yaml.safe_dump(doc, sort_keys=False)}


def check(files: dict[str, str], **_: Any) -> None:
    doc = yaml.safe_load(files["nanoset.yaml"])
    stage = doc["data_stages"][0]
    if stage.get("start_training_step") != 1:
        raise AssayError("nanoset.yaml: the first stage must start at step 1")
    dataset = stage["data"]["dataset"]
    folders, weights = dataset.get("dataset_folder"), dataset.get("dataset_weights")
    if not (isinstance(folders, list) and all(isinstance(f, str) for f in folders)):
        raise AssayError("nanoset.yaml: dataset_folder must be a list of folders")
    if len(set(folders)) != len(folders):
        raise AssayError("nanoset.yaml: a dataset_folder repeats")
    if not isinstance(weights, list):
        raise AssayError("nanoset.yaml: dataset_weights must be a list of weights")
    if len(weights) != len(folders):
        raise AssayError(
            f"nanoset.yaml: {len(weights)} dataset_weights for {len(folders)} dataset_folder"
        )
    check_weights(weights, "nanoset.yaml dataset_weights")
