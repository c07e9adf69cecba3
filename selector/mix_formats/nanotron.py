"""Nanotron nanosets: ``dataset_folder: {path: weight}`` inside a data stage.

``NanosetDatasetsArgs`` (``docs/nanoset.md``): a dict of tokenized dataset folders to
weights; weights are *samples* (``sequence_length + 1`` tokens each), normalised; a small
folder repeats. Stages: ``data_stages: [{name, start_training_step, data: {dataset,
seed}}]``; we write one stage starting at step 1.
"""

from __future__ import annotations

from typing import Any

import yaml

from assay.errors import AssayError
from selector.mix_formats._common import check_weights


def render(rows: list[Any], *, seed: int = 42, **_: Any) -> dict[str, str]:
    from selector.mix_export import fixed_decimals

    folders = {
        r.path: w for w, r in zip(fixed_decimals([r.weight for r in rows]), rows, strict=True)
    }
    doc = {
        "data_stages": [
            {
                "name": "stable",
                "start_training_step": 1,
                "data": {
                    "dataset": {"dataset_folder": folders},
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
    folders = stage["data"]["dataset"]["dataset_folder"]
    if not isinstance(folders, dict):
        raise AssayError("nanoset.yaml: dataset_folder must map folder -> weight")
    check_weights(list(folders.values()), "nanoset.yaml dataset_folder")
