"""Progress display for long runs: a rich bar on a terminal, a log line every 10 s elsewhere."""

from __future__ import annotations

import time


def progress_printer(label: str):
    """A callback that draws a rich progress bar (docs/s, tokens/s, ETA by input bytes)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[docs]:,} docs  {task.fields[rate]}"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    )
    task = bar.add_task(label, total=None, docs=0, rate="")
    state = {"last_log": 0.0, "started": False}

    def update(p) -> None:
        if not state["started"]:
            bar.start()
            state["started"] = True
        elapsed = max(time.perf_counter() - p.started, 1e-9)
        rate = f"{p.docs / elapsed:,.1f} docs/s  {p.tokens / elapsed:,.0f} tok/s"
        if p.bad:
            rate += f"  {p.bad} quarantined"
        bar.update(task, completed=p.bytes_done, total=p.bytes_total, docs=p.docs, rate=rate)
        if not console.is_terminal and time.perf_counter() - state["last_log"] > 10:
            state["last_log"] = time.perf_counter()
            share = p.bytes_done / max(p.bytes_total, 1)
            console.print(f"{label}: {p.docs:,} docs ({share:.0%} of input), {rate}")

    def close() -> None:
        if state["started"]:
            bar.stop()

    update.close = close  # type: ignore[attr-defined]
    return update
