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

from curation import storage
from pipelines.mixes import Mix

PRIMARY = "heldout/clean/loss"


def leaderboard(results: list[dict[str, Any]], mixes: list[Mix], primary: str = PRIMARY) -> list[dict[str, Any]]:
    """Per mix: mean, std, min, max and spread over seeds of every metric; ranked by ``primary`` (lower is
    better for losses and bits per byte, higher for accuracies); the "beats raw" test on ``primary``."""
    from train_small.eval.score import flat_metrics

    lower = lower_is_better(primary)
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
    sign = 1.0 if lower else -1.0
    rows.sort(key=lambda r: sign * r[primary]["mean"] if primary in r else math.inf)
    raw = next((r for r in rows if r["mix"] == "raw"), None)
    for r in rows:
        if raw is not None and primary in r and primary in raw and r is not raw:
            delta = sign * (raw[primary]["mean"] - r[primary]["mean"])  # > 0: better than raw
            noise = max(raw[primary]["spread"], r[primary]["spread"])
            r["delta_vs_raw"] = delta
            r["noise"] = noise
            # with one seed there is no spread to beat: the test says nothing
            r["beats_raw"] = bool(delta > noise) if min(r["seeds"], raw["seeds"]) > 1 else None
    return rows


def lower_is_better(metric: str) -> bool:
    return any(k in metric for k in ("loss", "bits_per_byte", "perplexity"))


def _fmt(row: dict[str, Any], k: str, digits: int = 4) -> str:
    if k not in row:
        return "–"
    v = row[k]
    return f"{v['mean']:.{digits}f} ± {v['std']:.{digits}f}" if row["seeds"] > 1 else f"{v['mean']:.{digits}f}"


def _columns(rows: list[dict[str, Any]], primary: str) -> list[tuple[str, str]]:
    """(metric, header) of the table: the primary first, then what the trials measured."""
    present = {k for r in rows for k in r}
    cols = [("heldout/clean/bits_per_byte", "clean bits/byte"), ("heldout/raw/loss", "raw held-out loss")]
    refs = sorted(k for k in present if k.startswith("reference/") and k.endswith("/bits_per_byte")
                  and not k.startswith("reference/mean"))
    cols += [(k, f"{k.split('/')[1]} bits/byte") for k in refs]
    cols += [("core", "CORE"), ("core_partial", "centered acc. (partial task set, not CORE)")]
    return [(k, h) for k, h in cols if k in present and k != primary]


def leaderboard_markdown(rows: list[dict[str, Any]], primary: str, title: str | None = None) -> list[str]:
    cols = _columns(rows, primary)
    head = "| rank | mix | seeds | " + primary + " | spread | " + " | ".join(h for _, h in cols)
    head += (" | " if cols else "") + "Δ vs raw | beats raw |"
    rule = "|---:|---|---:|---|---:|" + "---|" * len(cols) + "---:|:---:|"
    md = ([f"## {title}", ""] if title else []) + [head, rule]
    for i, r in enumerate(rows, 1):
        spread = f"{r[primary]['spread']:.4f}" if primary in r else "–"
        delta = f"{r['delta_vs_raw']:+.4f}" if "delta_vs_raw" in r else "–"
        beats = {True: "yes", False: "no", None: "n/a (1 seed)"}[r["beats_raw"]] if "beats_raw" in r else "–"
        cells = " | ".join(_fmt(r, k) for k, _ in cols)
        md.append(f"| {i} | {r['mix']} | {r['seeds']} | {_fmt(r, primary)} | {spread} | " + cells
                  + (" | " if cols else "") + f"{delta} | {beats} |")
    return md


def agreement_markdown(agreement: dict[str, Any]) -> list[str]:
    """The rank agreement between proxy families (train_small.eval.agreement)."""
    md = ["## Does the ranking depend on the proxy? (rank agreement between families)", "",
          f"Kendall τ-b between the families' rankings of the mixes by `{agreement.get('metric')}`, per seed; "
          "1 = same order, −1 = reversed, ~0 = unrelated.", "",
          "| families | seeds | τ mean | τ std | τ min | τ max | τ of seed means |",
          "|---|---:|---:|---:|---:|---:|---:|"]
    for pair, a in sorted((agreement.get("pairs") or {}).items()):
        md.append(f"| {pair} | {a.get('n_seeds')} | {a.get('tau_mean', float('nan')):.3f} | "
                  f"{a.get('tau_std', float('nan')):.3f} | {a.get('tau_min', float('nan')):.3f} | "
                  f"{a.get('tau_max', float('nan')):.3f} | {a.get('tau_of_means', float('nan')):.3f} |")
    for arch, ranking in sorted((agreement.get("rankings") or {}).items()):
        md.append(f"\n{arch}: " + " > ".join(ranking))
    return md + [""]


def write_leaderboard(out: str, rows: list[dict[str, Any]], settings: dict[str, Any], primary: str = PRIMARY,
                      extra: list[str] | None = None, title: str | None = None) -> str:
    better = "lower" if lower_is_better(primary) else "higher"
    md = [
        "# Data-mix ablation leaderboard",
        "",
        f"Recipe `{settings['recipe']}`, {settings['seeds']} seed(s) per mix, "
        f"ranked by `{primary}` ({better} is better). ± is the standard deviation over seeds; "
        "*spread* is max − min over seeds; a mix beats raw when its mean is better than raw's by more "
        "than the larger of the two spreads (not decided with one seed).",
        "",
        *leaderboard_markdown(rows, primary, title),
    ]
    task_keys = sorted({k for r in rows for k in r if k.startswith("task/") and k.endswith("/accuracy")})
    if task_keys:
        md += ["", "## Few-shot accuracy per task (mean over seeds)", ""]
        names = [k.split("/")[1] for k in task_keys]
        md.append("| mix | " + " | ".join(names) + " |")
        md.append("|---|" + "---:|" * len(names))
        for r in rows:
            md.append(f"| {r['mix']} | " + " | ".join(f"{r[k]['mean']:.3f}" if k in r else "–" for k in task_keys)
                      + " |")  # fmt: skip
    md += ["", *(extra or [])]
    md += ["", f"Plot: `leaderboard.png`. All results: `ablation.json`. Settings: `{json.dumps(settings)}`", ""]
    path = os.path.join(out, "leaderboard.md")
    storage.write_bytes_atomic(path, "\n".join(md).encode())
    return path


def plot_leaderboard(out: str, rows: list[dict[str, Any]], primary: str = PRIMARY) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    better = "lower" if lower_is_better(primary) else "higher"
    panels = [(primary, f"{primary} ({better} is better)"), ("core", "CORE centered accuracy"),
              ("core_partial", "centered accuracy, partial task set (not CORE)")]
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
