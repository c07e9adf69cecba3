"""``assay mix export -f nanotron`` loaded by nanotron's own config loader.

nanotron has no PyPI release with Nanosets (the last, 0.4 of 2024-03, has neither
``NanosetDatasetsArgs`` nor ``data_stages``), so ``make venv`` installs a pinned GitHub
commit into ``.verify/`` with ``--no-deps``; its ``nanotron.config`` imports flash-attn
at module level, which ``conftest.py`` stands in for (see the ``nanotron`` fixture). The
tests skip, naming the import error, where nanotron cannot be imported. ``Nanoset``
itself is not run: it reads datatrove-tokenised ``*.ds`` folders, which assay does not
write, and needs datatrove.
"""

from __future__ import annotations

import pytest
import yaml

from selector.mix_export import export_mixture
from selector.mixture import Group, Mixture


def _stages(nanotron, path) -> list:
    """Every stage of ``nanoset.yaml`` as nanotron's ``DatasetStageArgs``, through its
    own dacite loader (``strict=True``: an unknown or mistyped key fails)."""
    doc = yaml.safe_load(path.read_text())
    return [
        nanotron.get_config_from_dict(stage, config_class=nanotron.DatasetStageArgs)
        for stage in doc["data_stages"]
    ]


def test_nanotron_loads_the_dataset_stage(nanotron, tmp_path):
    mix = Mixture(
        [
            Group("topic 3/web", 0.2, 4_000, 10),
            Group("code", 0.5, 1_000, 10),
            Group("math", 0.3, 9_000, 10),
            Group("unused", 0.0, 9_000, 10),
        ],
        group_by="topic",
    )
    m = export_mixture(
        mix, "nanotron", tmp_path, path_template=f"{tmp_path}/tok/{{group}}", options={"seed": 7}
    )
    (stage,) = _stages(nanotron, tmp_path / "nanoset.yaml")
    assert stage.start_training_step == 1  # Config requires a stage starting at step 1
    assert stage.data.seed == 7
    dataset = stage.data.dataset
    assert isinstance(dataset, nanotron.NanosetDatasetsArgs)
    assert dataset.dataset_folder == [g["path"] for g in m["groups"]]
    assert dataset.dataset_folder[0] == f"{tmp_path}/tok/topic 3/web"
    # samples of sequence_length + 1 tokens: the sample share is the token share
    assert dataset.dataset_weights == pytest.approx([0.2, 0.5, 0.3], abs=1e-6)
    assert m["unit"] == "samples"


def test_nanotron_loads_one_group(nanotron, tmp_path):
    export_mixture(Mixture([Group("all", 1.0, 100, 1)], "g"), "nanotron", tmp_path)
    (stage,) = _stages(nanotron, tmp_path / "nanoset.yaml")
    assert stage.data.dataset.dataset_folder == ["data/all"]
    assert stage.data.dataset.dataset_weights == [1.0]


def test_nanotron_refuses_the_folder_to_weight_mapping(nanotron, tmp_path):
    """Why the file holds two lists: the ``{folder: weight}`` mapping nanotron's
    docs/nanoset.md still shows matches no dataset class since nanotron commit 7323ce1."""
    stage = {
        "name": "stable",
        "start_training_step": 1,
        "data": {"dataset": {"dataset_folder": {"data/a": 0.5, "data/b": 0.5}}, "seed": 1},
    }
    import dacite  # installed beside nanotron

    with pytest.raises(dacite.UnionMatchError, match=r"data\.dataset"):
        nanotron.get_config_from_dict(stage, config_class=nanotron.DatasetStageArgs)
