"""The ablation leaderboard: per mix, statistics over seeds, the n-gram floor, epochs, and comparisons with
intervals; a ranking only where the instrument can give one.

Three checks stand between the trials and a ranking (DESIGN.md, "Proxy training and scoring"):

* **The n-gram floor.** A mix's proxy must beat the bigram model fit on its own training tokens on every
  reference domain, by more than its seed spread and with the bootstrap interval of the margin above 0
  (:func:`train_small.eval.decide.floor_verdict`). When a mix's trials are below the floor the leaderboard
  lists the mixes but does not rank them, and says why and what size the calibration found sufficient.
* **Repetition.** Each trial records the epochs it read of its mix. Above one epoch a mix is repeated; two
  mixes whose repetition (``max(1, epochs)``) differs by more than 2x compare repetition as much as data (the
  old CPU ablation read its baseline 3.6 times and raw 0.4 times), so no "better" is called between them unless
  ``allow_repetition``. Mixes read at most once each are compared whatever fraction of them was read.
* **Intervals.** The difference to raw on the primary metric carries a paired bootstrap interval over
  reference documents (when the trials wrote them); a mix beats raw when its mean is better by more than the
  larger seed spread and the interval excludes 0.
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
REFERENCE_PRIMARY = "reference/weighted_bits_per_byte"
MAX_EPOCH_RATIO = 2.0


def _per_doc(result: dict[str, Any]) -> dict[str, np.ndarray] | None:
    path = os.path.join(str(result.get("out_dir", "")), "reference_docs.parquet")
    if not result.get("out_dir") or not os.path.exists(path):
        return None
    from train_small.eval.decide import read_items

    return read_items(path)


def leaderboard(results: list[dict[str, Any]], mixes: list[Mix], primary: str = PRIMARY, *,
                allow_repetition: bool = False, n_boot: int = 1000) -> list[dict[str, Any]]:
    """Per mix: mean, std, min, max and spread over seeds of every metric, epochs, the n-gram floor verdict;
    sorted by ``primary`` (lower is better for losses and bits per byte, higher for accuracies); the comparison
    with raw on ``primary`` (see the module docstring). Each row's ``rank`` is None when the leaderboard cannot
    rank (:func:`ranking_status`)."""
    from train_small.eval.decide import difference, floor_verdict, reference_scores
    from train_small.eval.score import flat_metrics

    lower = lower_is_better(primary)
    by_mix: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by_mix.setdefault(r["extra"]["mix"], []).append(r)
    rows = []
    docs: dict[str, list[dict[str, np.ndarray]]] = {}
    for m in mixes:
        trials = sorted(by_mix.get(m.name, []), key=lambda r: r.get("seed", 0))
        if not trials:
            continue
        runs = [flat_metrics(r) for r in trials]
        row: dict[str, Any] = {"mix": m.name, "seeds": len(runs), "description": m.description}
        for k in sorted({k for r in runs for k in r}):
            v = np.array([r[k] for r in runs if k in r], dtype=float)
            row[k] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                      "min": float(v.min()), "max": float(v.max()), "spread": float(v.max() - v.min()),
                      "values": v.tolist()}  # fmt: skip
        epochs = [float(r["epochs"]) for r in trials if r.get("epochs") is not None]
        row["epochs"] = max(epochs) if epochs else None
        per = [_per_doc(r) for r in trials]
        if per and all(p is not None for p in per) and all(len(p["bytes"]) for p in per):
            docs[m.name] = per  # type: ignore[assignment]
            if all(np.isfinite(p["bigram"]).all() for p in per):  # type: ignore[index]
                row["floor"] = floor_verdict(per, n_boot=n_boot)  # type: ignore[arg-type]
        rows.append(row)
    sign = 1.0 if lower else -1.0
    rows.sort(key=lambda r: sign * r[primary]["mean"] if primary in r else math.inf)
    status = ranking_status(rows)
    for i, r in enumerate(rows, 1):
        r["rank"] = i if status["ranked"] else None
        if "floor" in r:
            r["beats_ngram_floor"] = r["floor"]["beats_ngram_floor"]
    raw = next((r for r in rows if r["mix"] == "raw"), None)
    for r in rows:
        if raw is None or r is raw or primary not in r or primary not in raw:
            continue
        delta = sign * (raw[primary]["mean"] - r[primary]["mean"])  # > 0: better than raw
        noise = max(raw[primary]["spread"], r[primary]["spread"])
        r["delta_vs_raw"] = delta
        r["noise"] = noise
        interval = None
        if primary == REFERENCE_PRIMARY and r["mix"] in docs and "raw" in docs:
            sc = reference_scores(docs["raw"] + docs[r["mix"]], "nll")
            n_raw = len(docs["raw"])
            d = difference(sc, list(range(n_raw)), list(range(n_raw, n_raw + len(docs[r["mix"]]))), n_boot=n_boot)
            interval = [sign * d["interval"][0], sign * d["interval"][1]]  # raw - mix, oriented: > 0 is better
            r["delta_interval"] = sorted(interval)
        if r["mix"] in docs and "raw" in docs:  # every reference domain: raw - mix bits per byte, with its interval
            r["domain_deltas_vs_raw"] = domain_differences(docs["raw"], docs[r["mix"]], n_boot)
        ratio = _epoch_ratio(raw.get("epochs"), r.get("epochs"))
        r["epoch_ratio_vs_raw"] = ratio
        if min(r["seeds"], raw["seeds"]) < 2:
            r["beats_raw"] = None  # with one seed there is no spread to beat: the test says nothing
            r["not_compared"] = "one seed"
        elif ratio is not None and ratio > MAX_EPOCH_RATIO and not allow_repetition:
            r["beats_raw"] = None
            r["not_compared"] = f"repetition differs {ratio:.1f}x (repetition, not data, would be compared)"
        elif not status["ranked"]:
            r["beats_raw"] = None
            r["not_compared"] = "below the n-gram floor"
        else:
            clear = interval is None or min(interval) > 0
            r["beats_raw"] = bool(delta > noise and clear)
    return rows


def domain_differences(raw: list[dict[str, np.ndarray]], mix: list[dict[str, np.ndarray]],
                       n_boot: int = 1000) -> dict[str, dict[str, Any]]:
    """Per reference domain: raw's mean bits per byte minus the mix's (> 0: the mix is better), its paired
    bootstrap interval over the domain's documents, and both seed spreads."""
    from train_small.eval.decide import difference, reference_scores

    out = {}
    for name in sorted(set(raw[0]["domain"])):
        pick = [{k: (v[np.asarray(d["domain"]) == name]) for k, v in d.items()} for d in raw + mix]
        sc = reference_scores(pick, "nll")
        d = difference(sc, list(range(len(raw))), list(range(len(raw), len(raw) + len(mix))), n_boot=n_boot)
        out[name] = {"delta": d["difference"], "interval": d["interval"], "spread_raw": d["spread_a"],
                     "spread_mix": d["spread_b"]}
    return out


def _epoch_ratio(a: float | None, b: float | None) -> float | None:
    """How much more one of two mixes was repeated than the other: the ratio of ``max(1, epochs)``."""
    if not a or not b:
        return None
    ra, rb = max(1.0, a), max(1.0, b)
    return max(ra, rb) / min(ra, rb)


def ranking_status(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"ranked": bool, "reason": str}``: no ranking when a mix's proxy is below its n-gram floor; a ranking
    "unchecked" when the trials wrote no per-document reference scores (the floor could not be checked)."""
    below = [r["mix"] for r in rows if r.get("floor") and not r["floor"]["beats_ngram_floor"]]
    unchecked = [r["mix"] for r in rows if "floor" not in r]
    if below:
        return {"ranked": False, "floor_checked": True, "below": below,
                "reason": f"the proxies of {', '.join(below)} do not beat the bigram model fit on their own training "
                          "tokens on every reference domain by more than their seed spread: differences between "
                          "these mixes are not signal at this size"}  # fmt: skip
    if unchecked:
        return {"ranked": True, "floor_checked": False, "below": [],
                "reason": f"n-gram floor not checked for {', '.join(unchecked)} (no reference domains scored per "
                          "document): the ranking is not validated against it"}  # fmt: skip
    return {"ranked": True, "floor_checked": True, "below": [], "reason": "every mix's proxy beats its n-gram floor"}


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
    cols += [("core", "CORE"), ("core_partial", "centered acc. (partial task set, not CORE)"),
             ("core_prob", "CORE-set gold prob. (centered)"), ("core_gold_bpb", "CORE-set gold bits/byte")]
    return [(k, h) for k, h in cols if k in present and k != primary]


def leaderboard_markdown(rows: list[dict[str, Any]], primary: str, title: str | None = None) -> list[str]:
    cols = _columns(rows, primary)
    head = "| rank | mix | seeds | epochs | " + primary + " | spread | bigram floor | " + " | ".join(h for _, h in cols)
    head += (" | " if cols else "") + "Δ vs raw [interval] | beats raw |"
    rule = "|---:|---|---:|---:|---|---:|---|" + "---|" * len(cols) + "---|:---:|"
    md = ([f"## {title}", ""] if title else []) + [head, rule]
    for r in rows:
        spread = f"{r[primary]['spread']:.4f}" if primary in r else "–"
        delta = f"{r['delta_vs_raw']:+.4f}" if "delta_vs_raw" in r else "–"
        if "delta_interval" in r:
            delta += f" [{r['delta_interval'][0]:+.4f}, {r['delta_interval'][1]:+.4f}]"
        beats = "–"
        if "beats_raw" in r:
            beats = {True: "yes", False: "no"}.get(r["beats_raw"], f"not compared ({r.get('not_compared', '')})")
        floor = "–"
        if r.get("floor"):
            worst = min(r["floor"]["domains"].items(), key=lambda kv: kv[1]["margin"])
            floor = ("above" if r["floor"]["beats_ngram_floor"] else "**below**") + \
                f" (worst: {worst[0]} {worst[1]['margin']:+.3f})"
        epochs = f"{r['epochs']:.2f}" if r.get("epochs") is not None else "–"
        rank = str(r["rank"]) if r.get("rank") else "–"
        cells = " | ".join(_fmt(r, k) for k, _ in cols)
        md.append(f"| {rank} | {r['mix']} | {r['seeds']} | {epochs} | {_fmt(r, primary)} | {spread} | {floor} | "
                  + cells + (" | " if cols else "") + f"{delta} | {beats} |")
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
                      extra: list[str] | None = None, title: str | None = None,
                      needed: str | None = None) -> str:
    """``needed``: what the calibration says a ranking needs (printed when the mixes are not ranked)."""
    better = "lower" if lower_is_better(primary) else "higher"
    status = ranking_status(rows)
    md = [
        "# Data-mix ablation leaderboard",
        "",
        f"Recipe `{settings['recipe']}`, {settings['seeds']} seed(s) per mix, "
        f"ordered by `{primary}` ({better} is better). ± is the standard deviation over seeds; *spread* is max − min "
        "over seeds; *epochs* how many times the trial read its mix; *bigram floor* whether the proxy beats a bigram "
        "model fit on its own training tokens on every reference domain (worst domain's margin in bits per byte). "
        "A mix beats raw when its mean is better by more than the larger seed spread and the bootstrap interval "
        "over reference documents excludes 0; mixes whose repetition (max(1, epochs)) differs more than 2x are not "
        "compared.",
        "",
    ]
    if not status["ranked"]:
        reason = status["reason"][0].upper() + status["reason"][1:]
        md += [f"**Not ranked.** {reason}." + (f" {needed}" if needed else ""), ""]
    elif not status["floor_checked"]:
        md += [f"*{status['reason']}.*", ""]
    md += leaderboard_markdown(rows, primary, title)
    per = [r for r in rows if r.get("domain_deltas_vs_raw")]
    if per:
        domains = sorted({d for r in per for d in r["domain_deltas_vs_raw"]})
        md += ["", "Per reference domain, raw − mix in bits per byte (> 0: the mix is better) [95% bootstrap interval "
               "over the domain's documents]" + ("; not a ranking: the proxies are below their n-gram floor"
                                                 if not status["ranked"] else "") + ":", "",
               "| mix | " + " | ".join(domains) + " |", "|---|" + "---|" * len(domains)]
        for r in per:
            cells = [f"{v['delta']:+.3f} [{v['interval'][0]:+.3f}, {v['interval'][1]:+.3f}]"
                     for v in (r["domain_deltas_vs_raw"][d] for d in domains)]
            md.append(f"| {r['mix']} | " + " | ".join(cells) + " |")
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
