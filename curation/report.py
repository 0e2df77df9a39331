"""The end-of-run report: report.md plus PNG plots, from a run directory's stats.json.

* ``funnel.png``: documents remaining after each stage, one line per source;
* ``lengths.png``: document length (UTF-8 bytes, log scale) before and after;
* ``report.md``: per stage and source, documents and bytes in / kept / dropped by
  reason / quarantined, example ids per reason, global stage summaries, timings.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import numpy as np

from curation import storage
from curation.stats import LENGTH_BINS

logger = logging.getLogger(__name__)


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return str(n)


def _sources(stats: dict[str, Any]) -> list[str]:
    out: set[str] = set()
    for st in stats["stages"]:
        out.update(st["by_source"])
    return sorted(out)


def plot_funnel(stats: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = stats["stages"]
    names = ["input"] + [s["name"] for s in stages]
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(names) + 3), 4.5))
    for src in _sources(stats):
        first = stages[0]["by_source"].get(src, {})
        ys = [first.get("in", 0)] + [s["by_source"].get(src, {}).get("kept", 0) for s in stages]
        # a source that disappeared at stage k stays at 0 afterwards
        ax.plot(names, ys, marker="o", label=src)
    total_first = sum(d["in"] for d in stages[0]["by_source"].values())
    total = [total_first] + [sum(d["kept"] for d in s["by_source"].values()) for s in stages]
    ax.plot(names, total, marker="s", color="black", linewidth=2, label="all")
    ax.set_yscale("symlog")
    ax.set_ylabel("documents remaining")
    ax.set_title("Documents through the stages")
    ax.tick_params(axis="x", rotation=45)
    for lbl in ax.get_xticklabels():
        lbl.set_horizontalalignment("right")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)


def plot_lengths(stats: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hist = stats.get("length_hist", {})
    fig, ax = plt.subplots(figsize=(7, 4))
    centers = 10 ** ((LENGTH_BINS[:-1] + LENGTH_BINS[1:]) / 2)
    widths = np.diff(10**LENGTH_BINS)
    for key, label, alpha in (("in", "before (read)", 0.5), ("out", "after (final output)", 0.6)):
        if key in hist:
            ax.bar(centers, hist[key], width=widths, alpha=alpha, label=f"{label}: {sum(hist[key]):,} docs",
                   align="center")
    ax.set_xscale("log")
    ax.set_xlabel("document length (UTF-8 bytes)")
    ax.set_ylabel("documents")
    ax.set_title("Document length before and after curation")
    ax.legend()
    fig.tight_layout()
    _save(fig, path)


def _save(fig, path: str) -> None:
    import io as _io

    import matplotlib.pyplot as plt

    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    storage.write_bytes_atomic(path, buf.getvalue())


def render_markdown(stats: dict[str, Any], run: dict[str, Any], timings: dict[str, Any] | None = None) -> str:
    timings = timings or {}
    lines = [f"# Curation report: `{run.get('output_dir', '')}`", ""]
    lines += [
        f"- recipe hash: `{stats.get('recipe_hash')}`",
        f"- status: **{run.get('status')}**" + (f" (failed shards: {run.get('failed_shards')})"
                                               if run.get("failed_shards") else ""),
        f"- inputs: {len(run.get('inputs', []))} shards; git commit: `{run.get('git_commit')}`",
    ]
    if run.get("started") and run.get("finished"):
        lines.append(f"- wall time: {run['finished'] - run['started']:.1f} s")
    lines += ["", "![funnel](funnel.png)", "", "![lengths](lengths.png)", "", "## Stages (all sources)", ""]
    lines.append("| stage | in | kept | dropped | quarantined | kept bytes | seconds (sum over workers) |")
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for st in stats["stages"]:
        t = stats["totals"][st["name"]]
        dropped = sum(v[0] for v in t["dropped"].values())
        quar = sum(v[0] for v in t["quarantined"].values())
        secs = timings.get("stage_seconds", stats.get("seconds", {})).get(st["name"], 0.0)
        lines.append(f"| {st['name']} | {t['in']:,} | {t['kept']:,} | {dropped:,} | {quar:,} | "
                     f"{_fmt_bytes(t['kept_bytes'])} | {secs:.2f} |")
    lines += ["", "## Drops and quarantine by reason, per source", ""]
    lines.append("| stage | source | kind | reason | documents | bytes | example ids |")
    lines.append("| --- | --- | --- | --- | ---: | ---: | --- |")
    for st in stats["stages"]:
        for src, d in sorted(st["by_source"].items()):
            for kind in ("dropped", "quarantined"):
                for reason, (n, b) in sorted(d[kind].items(), key=lambda kv: -kv[1][0]):
                    ex = st["examples"].get(f"{src}|{kind}/{reason}", [])[:3]
                    ex_s = ", ".join(f"`{e}`" for e in ex)
                    lines.append(f"| {st['name']} | {src} | {kind} | `{reason}` | {n:,} | {_fmt_bytes(b)} | {ex_s} |")
    lines += ["", "## Per source", ""]
    lines.append("| source | read | final | kept fraction | bytes read | bytes kept |")
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: |")
    if stats["stages"]:
        first, last = stats["stages"][0], stats["stages"][-1]
        for src in _sources(stats):
            a = first["by_source"].get(src, {"in": 0, "in_bytes": 0})
            z = last["by_source"].get(src, {"kept": 0, "kept_bytes": 0})
            frac = z["kept"] / a["in"] if a["in"] else 0.0
            lines.append(f"| {src} | {a['in']:,} | {z['kept']:,} | {frac:.1%} | {_fmt_bytes(a['in_bytes'])} | "
                         f"{_fmt_bytes(z['kept_bytes'])} |")
    if stats.get("unsplittable_inputs"):
        lines += ["", "## Inputs larger than --max-shard-bytes that could not be split", "",
                  "Compressed streams are read whole by one task each:", ""]
        lines += [f"- `{p}`" for p in stats["unsplittable_inputs"]]
    for g in stats.get("global", []):
        lines += ["", f"## Global stage `{g['name']}`", ""]
        fit_s = timings.get("global", {}).get(g["name"], {}).get("fit_seconds", g.get("seconds"))
        if fit_s is not None:
            lines.append(f"fit time: {fit_s:.1f} s")
            lines.append("")
        lines += ["```json", json.dumps(g.get("summary", {}), indent=1, sort_keys=True)[:20000], "```"]
        for p in g.get("plots", []):
            rel = p if not os.path.isabs(p) else os.path.relpath(p, run.get("output_dir", "."))
            lines += ["", f"![{g['name']}]({rel})"]
    lines.append("")
    return "\n".join(lines)


def write_report(run_dir: str) -> str:
    """Write report.md, funnel.png and lengths.png into ``run_dir``; return the report path."""
    stats = storage.read_json(storage.join(run_dir, "stats.json"))
    run = storage.read_json(storage.join(run_dir, "run.json"))
    run["output_dir"] = run_dir
    if stats["stages"]:
        plot_funnel(stats, storage.join(run_dir, "funnel.png"))
    plot_lengths(stats, storage.join(run_dir, "lengths.png"))
    timings_path = storage.join(run_dir, "timings.json")
    timings = storage.read_json(timings_path) if storage.exists(timings_path) else {}
    path = storage.join(run_dir, "report.md")
    storage.write_bytes_atomic(path, render_markdown(stats, run, timings).encode())
    logger.info("report written to %s", path)
    return path


def append_tokens_section(run_dir: str, manifest: dict[str, Any]) -> None:
    """Add the token-stream summary (tokens per mix source and per corpus source) to report.md."""
    path = storage.join(run_dir, "report.md")
    text = storage.read_bytes(path).decode() if storage.exists(path) else ""
    marker = "\n## Token streams\n"
    text = text.split(marker)[0].rstrip("\n") + "\n" + marker + "\n"
    tok = manifest.get("tokenizer", {})
    lines = [
        f"- tokenizer: `{tok.get('path')}` (sha256 `{str(tok.get('sha256'))[:16]}...`), "
        f"vocab {manifest.get('vocab_size')}, EOS id {manifest.get('eos_id')}, dtype {manifest.get('dtype')}",
        f"- seq_len {manifest.get('seq_len')} (windows of seq_len + 1), seed {manifest.get('seed')}, "
        f"{manifest.get('num_windows')} windows ({manifest.get('num_tokens'):,} tokens) "
        f"in {len(manifest.get('files', []))} files",
        "",
        "| mix source | weight | documents | document tokens | tokens in windows | windows | repetitions |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in manifest.get("mix", {}).get("sources", []):
        lines.append(f"| {s.get('name')} | {s.get('weight')} | {s.get('docs'):,} | {s.get('doc_tokens'):,} | "
                     f"{s.get('tokens'):,} | {s.get('windows'):,} | {s.get('repetitions', 0)} |")
    # exact per value of the documents' `source` column (counted by the tokenizer pass)
    per_corpus = manifest.get("doc_tokens_by_corpus_source") or {}
    if per_corpus:
        lines += ["", "| corpus source | documents | document tokens (with EOS) |", "| --- | ---: | ---: |"]
        lines += [f"| {k} | {v['docs']:,} | {v['doc_tokens']:,} |" for k, v in sorted(per_corpus.items())]
    storage.write_bytes_atomic(path, (text + "\n".join(lines) + "\n").encode())
