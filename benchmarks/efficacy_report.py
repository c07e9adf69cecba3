"""The efficacy suite's report: the per-target table, the per-arm summary (win rate,
loss rate, median tokens-to-random) and the arms x targets heatmap of Δ / random std."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

import numpy as np

WIN, LOSS = -1.0, 1.0  # Δ / random std thresholds of a win and a loss


def delta_z(result: dict[str, Any], arm: str) -> tuple[float, float]:
    """(Δ loss vs random, Δ in random's seed std) of ``arm`` on one target's result."""
    a, base = result["arms"][arm], result["arms"]["random"]
    d = a["loss_mean"] - base["loss_mean"]
    return d, d / base["loss_std"] if base["loss_std"] > 0 else float("nan")


def summarize(results: list[dict[str, Any]], arms: list[str]) -> tuple[str, dict[str, Any]]:
    """Markdown (per-target rows, then the per-arm summary) and the summary as a dict."""
    lines = [
        "| target | arm | loss (mean ± std) | Δ vs random | Δ / random std | bigram | "
        "tokens to random's final loss |",
        "|---|---|---|---|---|---|---|",
    ]
    per_arm: dict[str, dict[str, list[float]]] = {a: {"z": [], "reach": []} for a in arms}
    for r in results:
        for arm in arms:
            a = r["arms"][arm]
            d, z = delta_z(r, arm)
            reach = a.get("reach_fraction")
            per_arm[arm]["z"].append(z)
            per_arm[arm]["reach"].append(np.inf if reach is None else reach)
            reach_text = "not reached" if reach is None else f"{reach:.0%}"
            lines.append(
                f"| {r['target']} | {arm} | {a['loss_mean']:.4f} ± {a['loss_std']:.4f} | "
                f"{d:+.4f} | {z:+.1f} | {a['bigram_mean']:.4f} | {reach_text} |"
            )
    summary: dict[str, Any] = {}
    rows = [
        "| arm | targets | win rate (Δ < −1 std) | loss rate (Δ > +1 std) | median Δ/std | "
        "median tokens-to-random |",
        "|---|---|---|---|---|---|",
    ]
    for arm in arms:
        z = np.array(per_arm[arm]["z"], dtype=float)
        reach = float(np.median(per_arm[arm]["reach"])) if results else float("nan")
        s = {
            "targets": len(z),
            "win_rate": float(np.mean(z < WIN)) if len(z) else float("nan"),
            "loss_rate": float(np.mean(z > LOSS)) if len(z) else float("nan"),
            "median_z": float(np.nanmedian(z)) if len(z) else float("nan"),
            "median_reach_fraction": None if not np.isfinite(reach) else reach,
            "wins": [r["target"] for r, v in zip(results, z, strict=True) if v < WIN],
            "losses": [r["target"] for r, v in zip(results, z, strict=True) if v > LOSS],
        }
        summary[arm] = s
        med = "> 100% (not reached)" if s["median_reach_fraction"] is None else f"{reach:.0%}"
        rows.append(
            f"| {arm} | {s['targets']} | {s['win_rate']:.0%} | {s['loss_rate']:.0%} | "
            f"{s['median_z']:+.1f} | {med} |"
        )
    return "\n".join(rows) + "\n\n" + "\n".join(lines), summary


def _color(z: float) -> str:
    """Blue for better than random (negative Δ), red for worse, white at 0; clipped at ±4."""
    if not np.isfinite(z):
        return "#dddddd"
    t = min(abs(z), 4.0) / 4.0
    lo = int(255 - 175 * t)
    return f"rgb({lo},{lo},255)" if z < 0 else f"rgb(255,{lo},{lo})"


def write_heatmap_svg(path: Path, results: list[dict[str, Any]], arms: list[str],
                      title: str) -> str:  # fmt: skip
    """Arms (rows) x targets (columns), each cell Δ / random std with its number."""
    cw, ch, left, top = 78, 26, 110, 92
    w, h = left + cw * len(results) + 20, top + ch * len(arms) + 40
    parts = [f'<text x="{w / 2}" y="20" text-anchor="middle" font-size="13">{escape(title)}'
             "</text>"]  # fmt: skip
    for j, r in enumerate(results):
        x = left + cw * j + cw / 2
        name = escape(r["target"])
        parts.append(f'<text x="{x}" y="{top - 8}" font-size="11" text-anchor="start" '
                     f'transform="rotate(-35 {x} {top - 8})">{name}</text>')  # fmt: skip
    for i, arm in enumerate(arms):
        y = top + ch * i
        parts.append(f'<text x="{left - 6}" y="{y + ch / 2 + 4}" font-size="11" '
                     f'text-anchor="end">{escape(arm)}</text>')  # fmt: skip
        for j, r in enumerate(results):
            _, z = delta_z(r, arm)
            x = left + cw * j
            parts.append(f'<rect x="{x}" y="{y}" width="{cw - 2}" height="{ch - 2}" '
                         f'fill="{_color(z)}"/>')  # fmt: skip
            parts.append(f'<text x="{x + cw / 2 - 1}" y="{y + ch / 2 + 4}" font-size="11" '
                         f'text-anchor="middle">{z:+.1f}</text>')  # fmt: skip
    parts.append(f'<text x="{left}" y="{h - 12}" font-size="11">blue: lower target loss '
                 "than random (better); red: higher; in random's seed std</text>")  # fmt: skip
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           f'font-family="sans-serif"><title>{escape(title)}</title>' + "".join(parts)
           + "</svg>\n")  # fmt: skip
    path.write_text(svg)
    return str(path)


__all__ = ["LOSS", "WIN", "delta_z", "summarize", "write_heatmap_svg"]
