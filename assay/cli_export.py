"""``assay export-merge``: Megatron prefixes of a distributed or resumed export into one.

A top-level command rather than ``export merge``: ``export`` takes the selection folder as
its first argument, and a Click group cannot tell a folder name from a subcommand name.
"""

from __future__ import annotations

from pathlib import Path

import typer

from assay.cli_common import fail as _fail
from assay.errors import AssayError


def export_merge(
    prefixes: list[Path] = typer.Argument(
        ..., help="Megatron prefixes (PREFIX.bin + PREFIX.idx), merged in this order"
    ),
    out: Path = typer.Option(..., "-o", "--out", help="Output prefix (writes OUT.bin, OUT.idx)"),
    check_tokenizer: bool = typer.Option(
        True, help="Refuse prefixes whose recorded tokenizer differs or is not recorded"
    ),
    overwrite: bool = typer.Option(False, help="Replace an earlier OUT.bin/.idx"),
) -> None:
    """Merge Megatron .bin/.idx prefixes into one (documents and dtype kept, streamed)."""
    try:
        from selector.export.merge import merge_prefixes

        m = merge_prefixes(prefixes, out, check_tokenizer=check_tokenizer, overwrite=overwrite)
    except AssayError as e:
        _fail(e)
        return
    c = m["counts"]
    typer.echo(
        f"merged {len(m['inputs'])} prefixes: {c['docs']:,} documents, {c['tokens']:,} "
        f"{m['dtype']} tokens -> {out}.bin / {out}.idx"
    )
