"""The steps of ``assay pipeline``, in order, by name (the runner is
:mod:`assay.pipeline_run`).

Each ``step_<name>(ctx)`` runs one step with the existing library functions (the same
ones the single commands call), writes into ``OUT/<FOLDERS[name]>`` and returns
``{"artifact": folder, "manifest": file, "summary": {...}}``. Heavy packages are
imported inside the steps. The bodies live by stage: :mod:`assay.pipeline_prepare`
(split, annotate, embed), :mod:`assay.pipeline_mixture` (cluster, mix),
:mod:`assay.pipeline_influence` (influence), :mod:`assay.pipeline_output` (select,
export, the final summary).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from assay.pipeline_context import FOLDERS, Context, pool_inputs, target_file
from assay.pipeline_influence import step_influence
from assay.pipeline_mixture import step_cluster, step_mix
from assay.pipeline_output import print_final_summary, step_export, step_select
from assay.pipeline_prepare import step_annotate, step_embed, step_split
from assay.pipeline_recipe import STEPS

STEP_FUNCTIONS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "split": step_split,
    "annotate": step_annotate,
    "embed": step_embed,
    "cluster": step_cluster,
    "mix": step_mix,
    "influence": step_influence,
    "select": step_select,
    "export": step_export,
}
assert tuple(STEP_FUNCTIONS) == STEPS  # one body per step, in the recipe's order

__all__ = [
    "FOLDERS",
    "STEP_FUNCTIONS",
    "pool_inputs",
    "print_final_summary",
    "step_annotate",
    "step_cluster",
    "step_embed",
    "step_export",
    "step_influence",
    "step_mix",
    "step_select",
    "step_split",
    "target_file",
]
