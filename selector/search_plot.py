"""Predicted vs measured objective per search round, as a dependency-free SVG.

matplotlib is not a dependency of assay, and a scatter plot is a few dozen SVG elements.
Round 0 (and RegMix) has no prediction made before its runs, so its points use k-fold
cross-validated predictions; later CLIMB rounds use the predictions that chose the runs.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

import numpy as np

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
W, H, PAD = 360, 320, 48


def _panel(
    x0: int, title: str, pred: np.ndarray, meas: np.ndarray, color: str, lo: float, hi: float
) -> list[str]:
    span = hi - lo or 1.0

    def sx(v: float) -> float:
        return x0 + PAD + (v - lo) / span * (W - 2 * PAD)

    def sy(v: float) -> float:
        return H - PAD - (v - lo) / span * (H - 2 * PAD)

    out = [
        f'<rect x="{x0 + PAD}" y="{PAD}" width="{W - 2 * PAD}" height="{H - 2 * PAD}" '
        'fill="none" stroke="#999"/>',
        f'<line x1="{sx(lo):.1f}" y1="{sy(lo):.1f}" x2="{sx(hi):.1f}" y2="{sy(hi):.1f}" '
        'stroke="#bbb" stroke-dasharray="4 3"/>',
        f'<text x="{x0 + W / 2}" y="{PAD - 14}" text-anchor="middle" font-size="13">'
        f"{escape(title)}</text>",
        f'<text x="{x0 + W / 2}" y="{H - 12}" text-anchor="middle" font-size="11">measured</text>',
        f'<text x="{x0 + 14}" y="{H / 2}" font-size="11" transform="rotate(-90 {x0 + 14} '
        f'{H / 2})" text-anchor="middle">predicted</text>',
        f'<text x="{x0 + PAD}" y="{H - PAD + 14}" font-size="10">{lo:.3f}</text>',
        f'<text x="{x0 + W - PAD}" y="{H - PAD + 14}" font-size="10" text-anchor="end">'
        f"{hi:.3f}</text>",
    ]
    for p, m in zip(pred, meas, strict=True):
        out.append(
            f'<circle cx="{sx(m):.1f}" cy="{sy(p):.1f}" r="3.5" fill="{color}" '
            'fill-opacity="0.75"/>'
        )
    return out


def write_plot(path: Path, result: Any, objective: str) -> str:
    """One panel per round; returns the path written."""
    rounds = sorted(set(result.rounds.tolist()))
    pred = np.where(np.isnan(result.predicted), result.cv_predicted, result.predicted)
    both = np.concatenate([pred, result.y])
    lo, hi = float(both.min()), float(both.max())
    margin = (hi - lo) * 0.05 or 0.01
    lo, hi = lo - margin, hi + margin
    parts: list[str] = []
    for i, r in enumerate(rounds):
        sel = result.rounds == r
        rep = result.round_reports[i] if i < len(result.round_reports) else {}
        rho = rep.get("heldout_spearman")
        if rho is None:
            rho, kind = rep.get("cv_spearman"), "CV"
        else:
            kind = "held-out"
        label = f"round {r}: {int(sel.sum())} runs, {kind} Spearman "
        label += "n/a" if rho is None else f"{rho:.2f}"
        parts += _panel(i * W, label, pred[sel], result.y[sel], COLORS[i % len(COLORS)], lo, hi)
    width = W * max(1, len(rounds))
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{H}" '
        f'font-family="sans-serif"><title>predicted vs measured {escape(objective)}</title>'
        + "".join(parts)
        + "</svg>\n"
    )
    path.write_text(svg)
    return str(path)
