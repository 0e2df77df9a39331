"""The ablation leaderboard: per mix, statistics over seeds, the "beats raw" test, markdown and a plot.

A mix "beats raw" when its mean primary metric (clean held-out loss) is lower than
raw's by more than the larger of the two seed spreads (max - min).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np

from curation import io as cio
from pipelines.mixes import Mix

PRIMARY = "heldout/clean/loss"


def leaderboard(results: list[dict[str, Any]], mixes: list[Mix], primary: str = PRIMARY) -> list[dict[str, Any]]:
    """Per mix: mean, std, min, max and spread over seeds of the primary metric, CORE, and the rest."""
    from train_small.eval.score import flat_metrics

    by_mix: dict[str, list[dict[str, float]]] = {}
    for r in results:
        by_mix.setdefault(r["extra"]["mix"], []).append(flat_metrics(r))
    rows = []
    for m in mixes:
        runs = by_mix.get(m.name, [])
        if not runs:
            continue
        row: dict[str, Any] = {"mix": m.name, "seeds": len(runs), "description": m.description}
        for k in sorted({k for r in runs for k in r}):
            v = np.array([r[k] for r in runs if k in r], dtype=float)
            row[k] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                      "min": float(v.min()), "max": float(v.max()), "spread": float(v.max() - v.min()),
                      "values": v.tolist()}  # fmt: skip
        rows.append(row)
    rows.sort(key=lambda r: r.get(primary, {}).get("mean", math.inf))
    raw = next((r for r in rows if r["mix"] == "raw"), None)
    for r in rows:
        if raw is not None and primary in r and primary in raw and r is not raw:
            delta = raw[primary]["mean"] - r[primary]["mean"]
            noise = max(raw[primary]["spread"], r[primary]["spread"])
            r["delta_vs_raw"] = delta
            r["noise"] = noise
            r["beats_raw"] = bool(delta > noise)
    return rows


def _fmt(row: dict[str, Any], k: str, digits: int = 4) -> str:
    if k not in row:
        return "–"
    v = row[k]
    return f"{v['mean']:.{digits}f} ± {v['std']:.{digits}f}" if row["seeds"] > 1 else f"{v['mean']:.{digits}f}"


def write_leaderboard(out: str, rows: list[dict[str, Any]], settings: dict[str, Any], primary: str = PRIMARY) -> str:
    md = [
        "# Data-mix ablation leaderboard",
        "",
        f"Recipe `{settings['recipe']}`, {settings['seeds']} seed(s) per mix, "
        f"ranked by `{primary}` (lower is better). ± is the standard deviation over seeds; "
        "*spread* is max − min over seeds; a mix beats raw when its mean is lower than raw's by more "
        "than the larger of the two spreads.",
        "",
        "| rank | mix | seeds | clean held-out loss | spread | clean bits/byte | raw held-out loss | CORE | "
        "Δ vs raw | beats raw |",
        "|---:|---|---:|---|---:|---|---|---|---:|:---:|",
    ]
    for i, r in enumerate(rows, 1):
        spread = f"{r[primary]['spread']:.4f}" if primary in r else "–"
        delta = f"{r['delta_vs_raw']:+.4f}" if "delta_vs_raw" in r else "–"
        beats = ("yes" if r["beats_raw"] else "no") if "beats_raw" in r else "–"
        md.append(
            f"| {i} | {r['mix']} | {r['seeds']} | {_fmt(r, primary)} | {spread} | "
            f"{_fmt(r, 'heldout/clean/bits_per_byte')} | {_fmt(r, 'heldout/raw/loss')} | {_fmt(r, 'core')} | "
            f"{delta} | {beats} |"
        )
    task_keys = sorted({k for r in rows for k in r if k.startswith("task/") and k.endswith("/accuracy")})
    if task_keys:
        md += ["", "## Few-shot accuracy per task (mean over seeds)", ""]
        names = [k.split("/")[1] for k in task_keys]
        md.append("| mix | " + " | ".join(names) + " |")
        md.append("|---|" + "---:|" * len(names))
        for r in rows:
            md.append(f"| {r['mix']} | " + " | ".join(f"{r[k]['mean']:.3f}" if k in r else "–" for k in task_keys)
                      + " |")  # fmt: skip
    md += ["", f"Plot: `leaderboard.png`. All results: `ablation.json`. Settings: `{json.dumps(settings)}`", ""]
    path = os.path.join(out, "leaderboard.md")
    cio.write_bytes_atomic(path, "\n".join(md).encode())
    return path


def plot_leaderboard(out: str, rows: list[dict[str, Any]], primary: str = PRIMARY) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(primary, "clean held-out loss (lower is better)"), ("core", "CORE-like centered accuracy")]
    panels = [(k, t) for k, t in panels if any(k in r for r in rows)]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 0.6 * len(rows) + 2), squeeze=False)
    names = [r["mix"] for r in rows]
    for ax, (k, title) in zip(axes[0], panels):
        for y, r in enumerate(rows):
            if k not in r:
                continue
            v = r[k]
            ax.hlines(y, v["min"], v["max"], color="0.6", lw=6, alpha=0.5)
            ax.scatter(v["values"], [y] * len(v["values"]), color="C0", s=18, zorder=3)
            ax.scatter([v["mean"]], [y], color="C3", marker="D", s=40, zorder=4)
        ax.set_yticks(range(len(rows)), names)
        ax.invert_yaxis()
        ax.set_title(title)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("data-mix ablation: dots = seeds, diamond = mean, bar = min-max spread")
    fig.tight_layout()
    path = os.path.join(out, "leaderboard.png")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
