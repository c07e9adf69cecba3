"""``make demo``: the main job end to end on the bundled demo corpus.

It runs the demo recipe (``configs/pipelines/demo.yaml``) through :mod:`assay.pipeline`:
split a held-out encyclopedic target -> annotate (heuristics, perplexity, assay-mini-v1,
lang) -> embed -> cluster -> mixture search -> influence -> select 200k tokens of English
text, one document per near-duplicate cluster -> export, then prints what was selected
and where.
The per-domain summary table below is the annotate step's report.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from assay.errors import AssayError

SUMMARY_COLUMNS = {
    "n_tokens": "tokens",
    "heuristics.rps_doc_word_count": "words",
    "heuristics.rps_doc_frac_unique_words": "uniq words",
    "heuristics.rps_doc_unigram_entropy": "entropy",
    "heuristics.rps_doc_frac_chars_dupe_5grams": "dup 5g chars",
    "perplexity.perplexity": "perplexity",
    "assay-mini-v1.quality": "mini quality",
    "lang.score": "lang p",
}


def cpu_has_bf16() -> bool:
    """AMX / AVX512-BF16 CPUs run bf16 matmuls several times faster than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def domain_summary(table: pa.Table) -> list[dict]:
    """Per-domain medians of the summary columns (plain numpy, no pandas)."""
    domains = np.array(table.column("domain").to_pylist(), dtype=object)
    rows = []
    for domain in sorted(set(domains)):
        mask = domains == domain
        row: dict = {"domain": domain, "docs": int(mask.sum())}
        for column, label in SUMMARY_COLUMNS.items():
            if column in table.column_names:
                values = table.column(column).to_numpy(zero_copy_only=False)[mask]
                values = values.astype(np.float64)
                row[label] = float(np.nanmedian(values)) if np.isfinite(values).any() else None
        rows.append(row)
    return rows


def print_summary(rows: list[dict], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for key in rows[0]:
        table.add_column(key, justify="left" if key == "domain" else "right")
    for row in rows:
        table.add_row(
            *(
                f"{v:,.3g}" if isinstance(v, float) else "-" if v is None else str(v)
                for v in row.values()
            )
        )
    Console(width=120).print(table)  # a log file is not a terminal: do not squeeze columns


DEMO_RECIPE = Path(__file__).resolve().parents[1] / "configs" / "pipelines" / "demo.yaml"


def run_demo(corpus: Path, out: Path, *, ppl_tokens: int = 32, recipe: Path = DEMO_RECIPE) -> dict:
    """Run the demo recipe (configs/pipelines/demo.yaml) on ``corpus`` into ``out``.

    The steps print as they go: the per-domain table after annotating, the cluster
    report's path, the mixture, the influence model, and at the end what was selected
    per group (each topic named by its top terms) and where every artifact is, with how
    to open the cluster report, the mixture files and the exports
    (:func:`assay.pipeline_output.print_final_summary`). A rerun reuses the steps done.
    """
    from assay.pipeline import load_recipe, run_pipeline

    if not corpus.exists():
        raise AssayError(f"demo corpus {corpus} not found", hint="run make demo from the repo root")
    config = load_recipe(recipe, corpus=[str(corpus)], out=str(out))
    config.annotate.options.setdefault("perplexity", {})["max_tokens"] = ppl_tokens
    return run_pipeline(config)
