"""``assay pipeline RECIPE.yaml``: the whole mission from one YAML recipe.

Steps, in order (:data:`STEPS`): ``split`` (hold a target slice out of the corpus) ->
``annotate`` -> ``embed`` -> ``cluster`` -> ``mix`` (mixture search for the target) ->
``influence`` (proxy, probe, influence model, scores for the pool) -> ``select`` (token
budget) -> ``export`` (JSONL / Megatron + the mixture files).

Where things live: the recipe (typed dataclasses, validation) in
:mod:`assay.pipeline_recipe`; the runner and resume in :mod:`assay.pipeline_run`; what
steps share in :mod:`assay.pipeline_context`; the step bodies, by stage, behind
:mod:`assay.pipeline_steps`. This module keeps the public names in one place.

Resume: ``OUT/pipeline.json`` records, per finished step, a fingerprint (its recipe
section + the sha256 of every upstream artifact's manifest) and the sha256 of the
manifest it wrote. A step whose fingerprint and manifest still match is not rerun; a
changed recipe section or a rewritten upstream artifact reruns it and everything after
it. ``skip: true`` leaves a step out (later steps use what is there: without clusters
the mixture groups by an annotation column, without influence the score must not use
it). Example::

    recipe = load_recipe("configs/pipelines/demo.yaml")
    state = run_pipeline(recipe)
"""

from __future__ import annotations

from assay.pipeline_context import Context, require
from assay.pipeline_recipe import (
    SCALARS,
    STEPS,
    AnnotateStep,
    ClusterStep,
    EmbedStep,
    ExportStep,
    InfluenceStep,
    MixStep,
    Recipe,
    SelectStep,
    SplitStep,
    load_recipe,
)
from assay.pipeline_run import STATE, fingerprint, run_pipeline

__all__ = [
    "SCALARS",
    "STATE",
    "STEPS",
    "AnnotateStep",
    "ClusterStep",
    "Context",
    "EmbedStep",
    "ExportStep",
    "InfluenceStep",
    "MixStep",
    "Recipe",
    "SelectStep",
    "SplitStep",
    "fingerprint",
    "load_recipe",
    "require",
    "run_pipeline",
]
