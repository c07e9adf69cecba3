"""Every YAML file in configs/ parses; the ones with a typed loader load through it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
YAMLS = sorted((REPO / "configs").rglob("*.yaml"))


def test_there_are_configs():
    assert any(p.parent.name == "pipelines" for p in YAMLS), "configs/pipelines/*.yaml missing"


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_yaml_parses(path: Path):
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict) and data, f"{path} is empty or not a mapping"


@pytest.mark.parametrize(
    "path", sorted((REPO / "configs" / "pipelines").glob("*.yaml")), ids=lambda p: p.name
)
def test_pipeline_recipes_load_and_validate(path: Path):
    from assay.pipeline import load_recipe

    recipe = load_recipe(path)
    assert recipe.corpus and recipe.select.budget_tokens > 0


def test_cluster_yaml_loads():
    from clustering.config import ClusterConfig

    ClusterConfig.from_yaml(REPO / "configs" / "cluster.yaml")
