"""``make demo``: the main job end to end on the bundled demo corpus.

For now: annotate with the heuristic and perplexity raters, then print a per-domain
summary and where the results are. Later steps (cluster, mix, select, export) join here.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from assay.errors import AssayError, ManifestMismatchError

SUMMARY_COLUMNS = {
    "n_tokens": "tokens",
    "heuristics.rps_doc_word_count": "words",
    "heuristics.rps_doc_frac_unique_words": "uniq words",
    "heuristics.rps_doc_unigram_entropy": "entropy",
    "heuristics.rps_doc_frac_chars_dupe_5grams": "dup 5g chars",
    "perplexity.perplexity": "perplexity",
    "assay-mini-v1.quality": "mini quality",
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


def run_demo(corpus: Path, out: Path, *, ppl_tokens: int = 32) -> None:
    from assay.annotate import annotate, read_annotations
    from assay.progress import progress_printer
    from raters.heuristics import HeuristicRater
    from raters.perplexity import PerplexityRater
    from raters.registry import build_rater
    from raters.tokens import TokenCounter

    if not corpus.exists():
        raise AssayError(f"demo corpus {corpus} not found", hint="run make demo from the repo root")
    dtype = "bfloat16" if cpu_has_bf16() else "auto"
    raters = [
        HeuristicRater(),
        PerplexityRater(max_tokens=ppl_tokens, dtype=dtype),
        build_rater("assay-mini-v1", dtype=dtype),  # the shipped default rater
    ]
    annotated = out / "annotated"
    started = time.perf_counter()
    progress = progress_printer("annotate demo")
    try:
        run = dict(
            shard_size=500,
            count_tokens=TokenCounter("smollm2-135m"),
            tokenizer_name="smollm2-135m",
            on_progress=progress,
        )
        try:
            manifest = annotate([corpus], annotated, raters, **run)
        except ManifestMismatchError:
            # The demo owns out/demo: an older demo's annotations are replaced, not mixed.
            print(f"{annotated} holds an older demo run with other raters; starting over")
            manifest = annotate([corpus], annotated, raters, overwrite=True, **run)
    finally:
        progress.close()  # type: ignore[attr-defined]
    table = read_annotations(annotated)
    print_summary(
        domain_summary(table),
        f"Demo corpus: {manifest['counts']['rows']:,} documents, per-domain medians "
        f"(perplexity: SmolLM2-135M on the first {ppl_tokens} tokens, {dtype})",
    )
    print(f"\nannotated corpus: {annotated.resolve()}  ({manifest['counts']['shards']} shards)")
    print(f"manifest:         {(annotated / 'manifest.json').resolve()}\n")

    from clustering.demo import cluster_demo

    # MiniLM reads 128 tokens here (default 256): the demo must finish in minutes on 2 cores.
    paths = cluster_demo(annotated, out, dtype=dtype, max_tokens=128)
    print(f"\nembeddings:       {Path(paths['embeddings']).resolve()}")
    print(f"clusters:         {Path(paths['clusters']).resolve()}")
    print(f"cluster report:   {Path(paths['report_html']).resolve()}  (open in a browser)")
    print(f"demo finished in {time.perf_counter() - started:,.0f} s")
