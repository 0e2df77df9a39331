#!/usr/bin/env python
"""Calibrate the proxy on known answers: at which size and token budget does it order data mixes correctly?

    # the committed CPU experiment (real English text of ../shared/data: several hours on 2 cores)
    python pipelines/calibrate.py -o runs/calibration --workers 2

    # your own clean text and references, your own degradations
    python pipelines/calibrate.py -o runs/cal -i 'clean/*.parquet' --heldout-ref web=ref/web.parquet \\
        --degrade shuffle:0.25 --degrade spam:0.1 --proxies cpu-1m --budgets 2000000 --seeds 3

A researcher's decision between two data mixes is only as good as the instrument that scores them. Here the
answer is known: clean text against the same text with a fraction of its documents degraded the way web junk
is (``filters/degrade.py``: word order shuffled within sentences, boilerplate lines inserted, near-duplicate
spam, another language, character noise). Every proxy size x token budget trains on each mix with several
seeds and is scored on held-out clean text of the same kinds; **decision accuracy** (DataDecide, Magnusson et
al. 2025) is the fraction of (clean seed, degraded seed) comparisons in which the clean mix scores better,
with a bootstrap interval over reference documents (or task examples), per metric: reference bits per byte
(token-weighted over domains), the continuous task metrics (the correct continuation's log-probability per
byte, the normalised probability of the correct choice) and task accuracy. Every trial also records its
n-gram floor (unigram and bigram models fit on exactly its training tokens) and its epochs.

Steps (each resumable: rerunning the command skips what is finished):

1. Clean text. With no ``--input``: the English corpora of ``--english-src`` in their native formats
   (:mod:`train_small.eval.corpora`: Wikipedia, Gutenberg books, Reuters news, Stack Exchange, Python docs),
   split per domain by a hash of the document id into a training part and a held-out reference part; the pool
   takes ``--pool-bytes`` from the training parts (equal bytes per domain, by id hash). With ``--input``: your
   clean text, and ``--heldout-ref NAME=PATH`` your held-out clean text (required).
2. Mixes: ``clean`` and one per ``--degrade KIND:FRACTION``, each a run of the curation runner over the pool
   (the degraded ones through a ``Degrade`` stage; the ``degraded`` column marks the rows it changed).
3. One SentencePiece tokenizer (trained on the clean mix), one token stream per mix and sequence length. A
   budget larger than a mix's stream is refused: no mix is repeated (``epochs`` <= 1 in every trial).
4. Trials: proxy x budget x mix x seed, as one pass (``pipelines/trials.py``): train, score the references
   with the n-gram floor, the few-shot tasks with per-example metrics.
5. ``sensitivity.json`` (one row per (proxy, params, tokens, degradation, fraction, metric) with
   ``decision_accuracy`` and its interval, the mean difference and its interval, the floor verdict),
   ``sensitivity.md`` and ``sensitivity.png`` (decision accuracy against the budget, one panel per
   degradation), and the smallest (proxy, budget) that orders each degradation at 25% reliably per metric
   (decision accuracy >= 0.9 with the lower end of its interval over documents >= 0.5).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from curation import storage  # noqa: E402

logger = logging.getLogger("calibrate")

DEFAULT_DEGRADE = ("shuffle:0.25", "boilerplate:0.25", "spam:0.25", "foreign:0.25", "charnoise:0.25")
DEFAULT_DOMAINS = ("wikipedia", "books", "news", "stackexchange", "python_docs")
METRICS = {  # name -> (source, field): reference documents or task examples
    "reference_bpb": ("reference", "nll"),
    "task_gold_bpb": ("tasks", "gold_bits_per_byte"),
    "task_prob_correct_centered": ("tasks", "prob_correct_centered"),
    "task_accuracy": ("tasks", "accuracy"),
}
BYTES_PER_TOKEN_GUESS = 3.0  # for sizing the pool before a tokenizer exists; checked after the streams


def _int_list(v: str) -> list[int]:
    out = []
    for x in v.split(","):
        x = x.strip().lower().replace("_", "")
        mult = {"k": 10**3, "m": 10**6, "g": 10**9}.get(x[-1:], 1)
        out.append(int(float(x[:-1] if mult > 1 else x) * mult))
    return out


def build_parser() -> argparse.ArgumentParser:
    from curation.cli import add_run_arguments

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p, default_output="runs/calibration")
    c = p.add_argument_group("clean text and references")
    c.add_argument("--english-src", default="../shared/data/corpora/text",
                   help="without --input: the folder of the English corpora in their native formats (the "
                   "shared data's corpora/text); default %(default)s")
    c.add_argument("--domains", default=",".join(DEFAULT_DOMAINS),
                   help="without --input: the English domains to use (train_small.eval.corpora.DOMAINS); "
                   "default %(default)s")
    c.add_argument("--pool-bytes", type=int, default=None,
                   help="UTF-8 bytes of clean text in the pool (equal shares per domain); default: enough for the "
                   f"largest budget at ~{BYTES_PER_TOKEN_GUESS:g} bytes per token plus 25%%")
    c.add_argument("--reference-bytes", type=int, default=600_000,
                   help="without --input: bytes of held-out reference text per domain (default %(default)s)")
    c.add_argument("--heldout-ref", action="append", default=None, metavar="NAME=PATH",
                   help="held-out clean text to score (required with --input; default: the English domains' "
                   "reference parts); repeatable")
    g = p.add_argument_group("degradations and proxies")
    g.add_argument("--degrade", action="append", default=None, metavar="KIND:FRACTION",
                   help="a degraded mix: KIND from filters.degrade.KINDS (shuffle, boilerplate, spam, foreign, "
                   "charnoise) and the fraction of documents degraded (0.25 or 25%%); repeatable; default "
                   f"{', '.join(DEFAULT_DEGRADE)}")
    g.add_argument("--charnoise-rate", type=float, default=0.05,
                   help="fraction of letters changed in a charnoise-degraded document (default %(default)s)")
    g.add_argument("--proxies", default="cpu-1m,cpu-4m",
                   help="comma list of train_small recipes to calibrate (default %(default)s)")
    g.add_argument("--budgets", type=_int_list, default=[1_000_000, 4_000_000], metavar="N,N",
                   help="comma list of training token budgets (1m, 500k, ... accepted); default 1m,4m")
    g.add_argument("--seeds", type=int, default=3, help="training seeds per (proxy, budget, mix) (default 3)")
    g.add_argument("--vocab-size", type=int, default=4096, help="pieces of the trained tokenizer (default 4096)")
    g.add_argument("--tokenizer", default=None, help="a SentencePiece .model to use instead of training one")
    g.add_argument("--cpus-per-trial", type=int, default=1, help="torch threads per trial without GPUs (default 1)")
    g.add_argument("--device", default=None, help="torch device for the trials (default: cuda if Ray sees GPUs)")
    g.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the intervals (default 1000)")
    g.add_argument("--gpu-preset", action="store_true",
                   help="the GPU check of bench/gpu.sh: proxy-20m, budgets 20m,60m, two degradations, 2 seeds, "
                   "in this process (no Ray), on the pool prepared by --prepare-only on a CPU machine "
                   "(runs/gpu_calibration, carried to the device)")
    g.add_argument("--prepare-only", action="store_true",
                   help="stop after the token streams (e.g. to carry them to a GPU machine)")
    g.add_argument("--analyse-only", action="store_true",
                   help="train nothing: analyse the trials of this grid that have finished (their result.json), "
                   "and list the ones that have not")
    e = p.add_argument_group("evaluation")
    e.add_argument("--eval-dir", default=None,
                   help="llm-foundry eval folder for the task metrics (default: ../shared/data/eval when present; "
                   "'none': reference text only)")
    e.add_argument("--tasks", default="cpu", help="task set or comma list (default %(default)s)")
    e.add_argument("--max-examples", type=int, default=300, help="examples per task (default %(default)s)")
    e.add_argument("--num-fewshot", type=int, default=0, help="shots per task (default %(default)s)")
    e.add_argument("--eval-seed", type=int, default=1234, help="seed of the few-shot draws and subsets")
    e.add_argument("--batch-tokens", type=int, default=16384, help="padded tokens per scoring batch")
    return p


GPU_PREPARED = "prepared.json"


def _apply_gpu_preset(args: argparse.Namespace) -> None:
    """The GPU check (bench/gpu.sh, which gives it about a minute of its nine): proxy-20m on 4M tokens, clean
    against word-shuffled text (a degradation the CPU proxies order only with enough tokens), 2 seeds: 4 trials
    of 61 steps. A first reading of the path and of proxy-20m's decision accuracy, not the full curve:
    ``--budgets``/``--degrade``/``--seeds`` given on the command line replace the preset's."""
    args.proxies = "proxy-20m"
    args.budgets = args.budgets if args.budgets != [1_000_000, 4_000_000] else [4_000_000]
    args.degrade = args.degrade or ["shuffle:0.25"]
    args.seeds = args.seeds if args.seeds != 3 else 2
    args.executor = "local"
    args.vocab_size = 8192
    args.max_examples = 500
    if args.output == "runs/calibration":
        args.output = "runs/gpu_calibration"


# ------------------------------------------------------------------------------------------------ data


def _pool_from_corpora(args: argparse.Namespace, domains: list[str]) -> tuple[list[str], dict[str, str]]:
    """Prepare the English corpora, write the clean pool; (pool files, {domain: reference file})."""
    import pyarrow.parquet as pq

    from curation.schema import DOC_SCHEMA
    from train_small.eval.corpora import id_fraction, prepare

    english = os.path.join(args.output, "english")
    prepare(args.english_src, english, domains, args.reference_bytes)
    per_domain = args.pool_bytes // len(domains)
    files = []
    for d in domains:
        path = os.path.join(args.output, "pool", f"{d}.parquet")
        files.append(path)
        if storage.exists(path):
            continue
        t = pq.read_table(os.path.join(english, d, "train.parquet"))
        ids, texts = t.column("id").to_pylist(), t.column("text").to_pylist()
        order = sorted(range(len(ids)), key=lambda i: (id_fraction(ids[i], "pool"), ids[i]))
        keep, total = [], 0
        for i in order:
            if total >= per_domain:
                break
            keep.append(i)
            total += len(texts[i].encode("utf-8"))
        if total < per_domain:
            logger.warning("domain %s holds %d bytes of training text, less than its pool share %d", d, total,
                           per_domain)  # fmt: skip
        storage.write_parquet_atomic(path, t.take(sorted(keep)).cast(DOC_SCHEMA))
    refs = {d: os.path.join(english, d, "reference.parquet") for d in domains}
    return files, refs


def _mix_runs(args: argparse.Namespace, inputs: list, specs: list) -> dict[str, str]:
    """Run the curation runner once per mix over the clean inputs; {mix label: run dir}."""
    from curation.runner import Runner
    from filters.degrade import Degrade
    from pipelines.ablation_data import run_config

    runs = {}
    for label, spec in [("clean", None)] + [(s.label, s) for s in specs]:
        out = os.path.join(args.output, "mixes", label)
        stages = [] if spec is None else [Degrade(spec.kind, spec.fraction, seed=args.seed, rate=args.charnoise_rate)]
        res = Runner(stages, inputs, run_config(args, out)).run()
        if not res.ok:
            raise RuntimeError(f"mix {label} failed on shards {res.failed_shards}; rerun to retry")
        runs[label] = out
    return runs


def _degraded_share(run_dir: str) -> dict[str, float]:
    """Achieved fraction of degraded documents and bytes of a mix run (the ``degraded`` column)."""
    import pyarrow.parquet as pq

    files = sorted(Path(run_dir, "data").glob("*.parquet"))
    n = k = 0
    for f in files:
        t = pq.read_table(f, columns=["degraded"]) if "degraded" in pq.read_schema(f).names else None
        if t is None:
            n += pq.read_metadata(f).num_rows
            continue
        n += t.num_rows
        k += t.num_rows - t.column("degraded").null_count
    return {"documents": n, "degraded_documents": k, "degraded_fraction": k / n if n else 0.0}


def _stream(args: argparse.Namespace, label: str, run_dir: str, tok: str, seq_len: int) -> str:
    """The mix's token stream for ``seq_len`` (a finished build with the same key is returned as it is)."""
    from curation.passes import make_executor
    from curation.tokens import build_token_stream

    out = os.path.join(args.output, "tokens", f"{label}-T{seq_len}")
    size = sum(p.stat().st_size for p in Path(run_dir, "data").glob("*.parquet"))
    ex = make_executor(args.executor, input_bytes=size, num_workers=args.workers, address=args.address,
                       max_retries=args.max_retries, memory_per_worker=args.memory_per_worker, progress=args.progress)
    build_token_stream([(run_dir, 1.0)], out, tok, seq_len=seq_len, seed=args.seed, overwrite=True, executor=ex)
    return out


# ------------------------------------------------------------------------------------------------ trials


def _items(args: argparse.Namespace, streams: dict[tuple[str, int], str], labels: list[str],
           reference: dict[str, str]) -> list:
    """One pass item per (proxy, budget, mix, seed)."""
    import hashlib

    from curation.tokens.manifest import stream_identity
    from pipelines.trials import trial_item
    from train_small.recipes import get_recipe

    items = []
    for proxy in args.proxies.split(","):
        rec = get_recipe(proxy)
        for budget in args.budgets:
            for label in labels:
                stream = streams[(label, rec.seq_len)]
                for s in range(args.seeds):
                    name = f"{proxy}-{budget}-{label}-seed{s}"
                    what = [proxy, budget, label, s, stream_identity(stream), sorted(reference.items()),
                            args.eval_dir, args.tasks, args.max_examples, args.num_fewshot, args.eval_seed]
                    key = hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]
                    spec = dict(
                        data_dir=stream, recipe=proxy, out_dir=os.path.join(args.output, "trials", f"{name}-{key[:8]}"),
                        seed=s, total_tokens=budget, eval_dir=args.eval_dir,
                        tasks=args.tasks if args.eval_dir else None,
                        max_examples=args.max_examples, num_fewshot=args.num_fewshot, eval_seed=args.eval_seed,
                        batch_tokens=args.batch_tokens, reference=dict(reference), ngram_floor=True, per_doc=True,
                        extra={"mix": label, "proxy": proxy, "budget": budget, "trial_key": key}, force=False,
                    )  # fmt: skip
                    items.append(trial_item(name, spec))
    return items


# ------------------------------------------------------------------------------------------------ analysis


RELIABLE_DA = 0.9  # decision accuracy that calls an ordering reliable (issue 17)
RELIABLE_LOWER = 0.5  # ... with the lower end of its interval over documents above chance


def reliable(row: dict[str, Any]) -> bool:
    """An ordering is reliable when its decision accuracy is at least 0.9 and the lower end of its bootstrap
    interval over documents is at least 0.5: a point estimate of 1.0 from a few seed pairs whose order flips
    when the reference documents are resampled (interval [0, 1]) is not."""
    return row["decision_accuracy"] >= RELIABLE_DA and row["interval"][0] >= RELIABLE_LOWER


def analyse(results: list[dict[str, Any]], specs: list, n_boot: int = 1000) -> dict[str, Any]:
    """The sensitivity rows and the smallest reliable (proxy, budget) per degradation and metric."""
    from train_small.eval.decide import (
        decision_accuracy,
        difference,
        floor_verdict,
        read_items,
        reference_scores,
        task_scores,
    )

    groups: dict[tuple[str, int], dict[str, list[dict[str, Any]]]] = {}
    for r in results:
        key = (r["extra"]["proxy"], int(r["extra"]["budget"]))
        groups.setdefault(key, {}).setdefault(r["extra"]["mix"], []).append(r)
    rows: list[dict[str, Any]] = []
    floors: list[dict[str, Any]] = []
    for (proxy, budget), mixes in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        clean = sorted(mixes.get("clean", []), key=lambda r: r["seed"])
        if not clean:
            continue
        docs = {m: [read_items(os.path.join(r["out_dir"], "reference_docs.parquet")) for r in rs]
                for m, rs in mixes.items()}
        examples = {m: [read_items(os.path.join(r["out_dir"], "task_examples.parquet")) for r in rs]
                    for m, rs in mixes.items()} if clean[0].get("tasks") else {}
        verdict = floor_verdict(docs["clean"], n_boot=n_boot)
        floors.append({"proxy": proxy, "params": clean[0].get("num_params"), "tokens": budget,
                       "epochs": max(r.get("epochs") or 0 for rs in mixes.values() for r in rs), **verdict})
        for spec in specs:
            deg = sorted(mixes.get(spec.label, []), key=lambda r: r["seed"])
            if not deg:
                continue
            good, bad = list(range(len(clean))), list(range(len(clean), len(clean) + len(deg)))
            for metric, (src, field) in METRICS.items():
                if src == "reference":
                    sc = reference_scores(docs["clean"] + docs[spec.label], field)
                elif examples:
                    sc = task_scores(examples["clean"] + examples[spec.label], field)
                else:
                    continue
                da = decision_accuracy(sc, good, bad, n_boot=n_boot)
                diff = difference(sc, bad, good, n_boot=n_boot)  # degraded - clean, in the metric's units
                rows.append({
                    "proxy": proxy, "params": clean[0].get("num_params"), "tokens": budget,
                    "degradation": spec.kind, "fraction": spec.fraction, "metric": metric,
                    "lower_is_better": sc.lower_is_better, **da,
                    "difference_degraded_minus_clean": diff["difference"], "difference_interval": diff["interval"],
                    "seeds": len(clean), "degraded_seeds": len(deg),
                    "clean_beats_ngram_floor": verdict["beats_ngram_floor"],
                    "epochs": max(r.get("epochs") or 0 for r in clean + deg),
                })  # fmt: skip
                rows[-1]["reliable"] = reliable(rows[-1])
    smallest: dict[str, dict[str, Any]] = {}
    for spec in specs:
        if abs(spec.fraction - 0.25) > 1e-9:
            continue
        for metric in METRICS:
            ok = [r for r in rows if r["degradation"] == spec.kind and r["fraction"] == spec.fraction
                  and r["metric"] == metric and reliable(r)]
            best = min(ok, key=lambda r: (r["params"] * r["tokens"], r["params"]), default=None)
            smallest.setdefault(spec.kind, {})[metric] = (
                {"proxy": best["proxy"], "params": best["params"], "tokens": best["tokens"],
                 "decision_accuracy": best["decision_accuracy"], "interval": best["interval"]} if best else None)
    return {"rows": rows, "floor": floors, "smallest_reliable_at_25pct": smallest}


def write_outputs(out: str, summary: dict[str, Any], settings: dict[str, Any], name: str = "sensitivity") -> list[str]:
    from train_small.eval.score import portable

    settings = portable(settings)
    payload = {"settings": settings, **summary}
    paths = [os.path.join(out, f"{name}.json"), os.path.join(out, f"{name}.md"), os.path.join(out, f"{name}.png")]
    storage.write_bytes_atomic(paths[0], json.dumps(payload, indent=1, default=float).encode())
    storage.write_bytes_atomic(paths[1], "\n".join(markdown(summary, settings)).encode())
    plot(paths[2], summary)
    return paths


def markdown(summary: dict[str, Any], settings: dict[str, Any]) -> list[str]:
    md = ["# Known-answer calibration of the proxy", "",
          "Clean text against the same text with a fraction of its documents degraded; up to "
          f"{settings.get('seeds')} seeds per (proxy, budget, mix) (the table gives each row's clean x degraded "
          "seeds). Decision accuracy = fraction of (clean seed, degraded seed) pairs in which the clean mix scores "
          "better; [interval] = 95% bootstrap over reference documents (or task examples); *reliable* = decision "
          f"accuracy >= {RELIABLE_DA} with the interval's lower end >= {RELIABLE_LOWER}. Δ = degraded − clean in "
          "the metric's units: for bits per byte (reference_bpb, task_gold_bpb) "
          "positive means the degraded mix scores worse, for the probability and accuracy metrics negative does.",
          "", "## n-gram floor (the clean mix's proxy against unigram/bigram models fit on its own tokens)", "",
          "| proxy | params | tokens | epochs | beats floor | per domain: proxy / bigram bits per byte |",
          "|---|---:|---:|---:|:---:|---|"]
    for f in summary["floor"]:
        per = "; ".join(f"{d} {v['proxy_bpb']:.3f} / {v['bigram_bpb']:.3f}" for d, v in f["domains"].items())
        md.append(f"| {f['proxy']} | {f['params']:,} | {f['tokens']:,} | {f['epochs']:.2f} | "
                  f"{'yes' if f['beats_ngram_floor'] else 'no'} | {per} |")
    md += ["", "## Decision accuracy", "",
           "| proxy | tokens | seeds | degradation | metric | decision accuracy | reliable | Δ (degraded − clean) |",
           "|---|---:|---:|---|---|---|:---:|---|"]
    for r in summary["rows"]:
        md.append(f"| {r['proxy']} | {r['tokens']:,} | {r['seeds']}x{r.get('degraded_seeds', r['seeds'])} | "
                  f"{r['degradation']} {r['fraction']:.0%} | {r['metric']} | "
                  f"{r['decision_accuracy']:.2f} [{r['interval'][0]:.2f}, {r['interval'][1]:.2f}] | "
                  f"{'yes' if r.get('reliable') else 'no'} | "
                  f"{r['difference_degraded_minus_clean']:+.4f} [{r['difference_interval'][0]:+.4f}, "
                  f"{r['difference_interval'][1]:+.4f}] |")
    md += ["", "## Smallest proxy and budget ordering each degradation at 25% reliably", "",
           "(decision accuracy >= 0.9, interval's lower end >= 0.5; *not reached* = in none of the configurations "
           "run for that degradation)", "",
           "| degradation | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
    for kind, per in summary["smallest_reliable_at_25pct"].items():
        cells = [f"{v['proxy']} @ {v['tokens']:,}" if v else "not reached" for v in (per.get(m) for m in METRICS)]
        md.append(f"| {kind} | " + " | ".join(cells) + " |")
    md += ["", f"Settings: `{json.dumps(settings, default=str)}`", ""]
    return md


def plot(path: str, summary: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = sorted({(r["degradation"], r["fraction"]) for r in summary["rows"]})
    if not kinds:
        return
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.2 * len(kinds), 3.6), squeeze=False, sharey=True, sharex=True)
    styles = {"reference_bpb": "-", "task_gold_bpb": "--", "task_prob_correct_centered": ":",
              "task_accuracy": "-."}
    colors = dict(zip(styles, ["C0", "C1", "C2", "C3"]))
    proxies = sorted({r["proxy"] for r in summary["rows"]}, key=lambda p: min(r["params"] or 0 for r in summary["rows"]
                                                                             if r["proxy"] == p))
    markers = dict(zip(proxies, "osD^v<>"))
    for ax, (kind, frac) in zip(axes[0], kinds):
        for proxy in proxies:
            for metric, ls in styles.items():
                rs = sorted((r for r in summary["rows"] if (r["degradation"], r["fraction"], r["proxy"], r["metric"])
                             == (kind, frac, proxy, metric)), key=lambda r: r["tokens"])
                if not rs:
                    continue
                x = [r["tokens"] for r in rs]
                y = [r["decision_accuracy"] for r in rs]
                err = [[r["decision_accuracy"] - r["interval"][0] for r in rs],
                       [r["interval"][1] - r["decision_accuracy"] for r in rs]]
                ax.errorbar(x, y, yerr=err, ls=ls, marker=markers.get(proxy, "o"), color=colors[metric], capsize=3,
                            label=f"{proxy} {metric}", alpha=0.85)
        ax.axhline(0.9, color="grey", lw=0.8)
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_title(f"{kind} {frac:.0%}")
        ax.set_xlabel("training tokens")
        ax.set_ylim(-0.05, 1.05)
    axes[0][0].set_ylabel("decision accuracy")
    handles: dict[str, Any] = {}  # one legend for the figure: every (proxy, metric) drawn in any panel
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    ncol = max(1, min(4, len(handles), 2 * len(kinds)))  # a one-panel figure holds two legend columns, not four
    fig.legend(list(handles.values()), list(handles), fontsize=7, loc="lower center", ncol=ncol)
    fig.tight_layout(rect=(0, 0.08 + 0.04 * ((len(handles) - 1) // ncol), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------ GPU preset


def degrade_file(src: str, dst: str, kind: str, fraction: float, seed: int, rate: float) -> int:
    """One clean pool file through the ``Degrade`` stage (the runner's stage, applied here in-process: the
    accelerator image has no Ray and no crawl readers). A pass item's body; returns the documents degraded."""
    import pyarrow.parquet as pq

    from filters.degrade import Degrade

    stage = Degrade(kind, fraction, seed=seed, rate=rate)
    stage.setup()
    kept = stage(pq.read_table(src)).kept
    storage.write_parquet_atomic(dst, kept)
    return len(kept) - kept.column("degraded").null_count


def _degrade_local(files: list[str], spec: Any, seed: int, rate: float, out: str) -> str:
    """A degraded mix written in this process, one pass item per pool file (resumable at the file)."""
    from curation.passes import Item, make_executor

    data = os.path.join(out, "data")
    items = [Item(f"part-{i:05d}", (f, os.path.join(data, f"part-{i:05d}.parquet"), spec.kind, spec.fraction, seed,
                                    rate), inputs=(f,), outputs=(os.path.join(data, f"part-{i:05d}.parquet"),))
             for i, f in enumerate(files)]  # fmt: skip
    make_executor("local", progress=False).run("degrade", degrade_file, items,
                                               marker_dir=os.path.join(out, "_passes", "degrade"))
    return out


def run_gpu_preset(args: argparse.Namespace, specs: list, recipes: list) -> int:
    """On the accelerator: the pool prepared on a CPU machine (``--gpu-preset --prepare-only``, carried to it),
    degraded, tokenised and trained here, every trial in this process; writes ``sensitivity_gpu.json``."""
    import torch

    from curation.tokens import build_token_stream
    from train_small.eval.score import score_trial

    prepared_path = os.path.join(args.output, GPU_PREPARED)
    if not os.path.exists(prepared_path):
        raise SystemExit(f"error: {prepared_path} not found: run `python pipelines/calibrate.py --gpu-preset "
                         "--prepare-only` on a CPU machine with ../shared/data and carry the folder")
    prep = json.loads(Path(prepared_path).read_text())
    t0 = time.perf_counter()
    pool = [os.path.join(args.output, f) for f in prep["pool"]]
    runs = {"clean": os.path.join(args.output, "mixes", "clean")}
    if not os.path.exists(os.path.join(runs["clean"], "data")):
        os.makedirs(os.path.join(runs["clean"], "data"))
        for i, f in enumerate(pool):
            os.symlink(os.path.abspath(f), os.path.join(runs["clean"], "data", f"part-{i:05d}.parquet"))
    for spec in specs:
        runs[spec.label] = _degrade_local(pool, spec, args.seed, args.charnoise_rate,
                                          os.path.join(args.output, "mixes", spec.label))
    tok = os.path.join(args.output, prep["tokenizer"])
    streams = {}
    for label, run in runs.items():
        for r in recipes:
            out = os.path.join(args.output, "tokens", f"{label}-T{r.seq_len}")
            build_token_stream([(run, 1.0)], out, tok, seq_len=r.seq_len, seed=args.seed, overwrite=True,
                               executor="local")  # a finished build with the same key is returned as it is
            streams[(label, r.seq_len)] = out
    reference = {k: os.path.join(args.output, v) for k, v in prep["reference"].items()}
    if prep.get("eval_dir") and not args.eval_dir:
        args.eval_dir = os.path.join(args.output, prep["eval_dir"])
    t_data = time.perf_counter() - t0
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    from curation.passes import make_executor

    items = [dataclasses.replace(it, runtime={"device": device, "threads": args.cpus_per_trial})
             for it in _items(args, streams, list(runs), reference)]
    res = make_executor("local", progress=True).run("trials", score_trial, items, on_error="collect",
                                                    marker_dir=os.path.join(args.output, "_passes", "trials"))
    results = [r for r in res.results if r is not None]
    summary = analyse(results, specs, n_boot=args.bootstrap)
    settings = {"preset": "gpu", "proxies": args.proxies.split(","), "budgets": args.budgets, "seeds": args.seeds,
                "degradations": [s.label for s in specs], "device": torch.cuda.get_device_name(0)
                if device == "cuda" else device, "git": _git(),
                "seconds": {"data": t_data, "total": time.perf_counter() - t0}, "failed_trials": sorted(res.failed)}
    paths = write_outputs(args.output, summary, settings, "sensitivity_gpu")
    if os.environ.get("GPU_SH_RESULTS"):  # bench/gpu.sh: what comes back from the device is under its results
        import shutil

        for p in paths:
            if os.path.exists(p):
                shutil.copyfile(p, os.path.join(os.environ["GPU_SH_RESULTS"], os.path.basename(p)))
    print(Path(paths[1]).read_text())
    if res.failed:
        logger.error("failed trials (rerun to retry): %s", sorted(res.failed))
    return 1 if res.failed else 0


def prepare_gpu_preset(args: argparse.Namespace) -> int:
    """On a CPU machine with ../shared/data: the clean pool, the reference parts and a tokenizer for the GPU
    preset, in ``--output`` (relative paths in ``prepared.json``), to carry to the accelerator."""
    from curation.tokens import train_tokenizer

    domains = [d for d in args.domains.split(",") if d]
    pool, reference = _pool_from_corpora(args, domains)
    prefix = os.path.join(args.output, "tokenizer", "sp")
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    train_tokenizer([os.path.dirname(pool[0])], prefix, vocab_size=args.vocab_size, seed=args.seed)
    rel = lambda p: os.path.relpath(p, args.output)  # noqa: E731
    prep = {"pool": [rel(p) for p in pool], "reference": {k: rel(v) for k, v in reference.items()},
            "tokenizer": rel(prefix + ".model"), "budgets": args.budgets, "pool_bytes": args.pool_bytes}
    if args.eval_dir:  # the task files the trials score (../shared does not travel to the accelerator)
        import shutil

        from train_small.eval.tasks import META_CSV, resolve_tasks

        dst = os.path.join(args.output, "eval")
        for _, path in resolve_tasks(args.eval_dir, args.tasks):
            target = os.path.join(dst, os.path.relpath(path, args.eval_dir))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(path, target)
        if os.path.exists(os.path.join(args.eval_dir, META_CSV)):
            shutil.copyfile(os.path.join(args.eval_dir, META_CSV), os.path.join(dst, META_CSV))
        prep["eval_dir"] = rel(dst)
    storage.write_json_atomic(os.path.join(args.output, GPU_PREPARED), prep)
    size = sum(os.path.getsize(os.path.join(args.output, f)) for f in
               prep["pool"] + list(prep["reference"].values()) + [prep["tokenizer"]])
    print(json.dumps({**prep, "bytes_to_carry": size}, indent=2))
    return 0


# ------------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from curation.cli import setup_logging

    setup_logging(args.log_level)
    if args.gpu_preset:
        _apply_gpu_preset(args)
    from filters.degrade import parse_degrade
    from train_small.recipes import get_recipe

    try:
        specs = [parse_degrade(v) for v in (args.degrade or DEFAULT_DEGRADE)]
        recipes = [get_recipe(p) for p in args.proxies.split(",")]
    except (ValueError, KeyError) as e:
        raise SystemExit(f"error: {e}") from None
    if len({s.label for s in specs}) != len(specs):
        raise SystemExit("error: --degrade lists the same degradation twice")
    if args.eval_dir is None and os.path.isdir("../shared/data/eval"):
        args.eval_dir = "../shared/data/eval"
    elif args.eval_dir == "none":
        args.eval_dir = None
    args.pool_bytes = args.pool_bytes or int(max(args.budgets) * BYTES_PER_TOKEN_GUESS * 1.25)
    os.makedirs(args.output, exist_ok=True)
    if args.gpu_preset:
        return prepare_gpu_preset(args) if args.prepare_only else run_gpu_preset(args, specs, recipes)
    if args.analyse_only:
        return analyse_existing(args, specs)
    t0 = time.perf_counter()

    # 1. clean text and references
    from curation.cli import inputs_from_args
    from curation.runner import InputSpec

    if args.input:
        inputs = inputs_from_args(args.input)
        if not args.heldout_ref:
            raise SystemExit("error: with --input, name the held-out clean text to score with --heldout-ref NAME=PATH")
        from train_small.eval.reference import parse_reference_specs

        reference = parse_reference_specs(args.heldout_ref)
    else:
        domains = [d for d in args.domains.split(",") if d]
        pool, reference = _pool_from_corpora(args, domains)
        if args.heldout_ref:
            from train_small.eval.reference import parse_reference_specs

            reference = parse_reference_specs(args.heldout_ref)
        inputs = [InputSpec(p, "parquet", None) for p in pool]

    # 2-3. mixes, tokenizer, token streams
    runs = _mix_runs(args, inputs, specs)
    tok = args.tokenizer
    if tok is None:  # reused when trained on the same inputs with the same settings
        from curation.tokens import train_tokenizer

        prefix = os.path.join(args.output, "tokenizer", "sp")
        os.makedirs(os.path.dirname(prefix), exist_ok=True)
        tok = train_tokenizer([runs["clean"]], prefix, vocab_size=args.vocab_size, seed=args.seed)
    streams = {(label, r.seq_len): _stream(args, label, run, tok, r.seq_len)
               for label, run in runs.items() for r in recipes}
    sizes = {k: json.loads(Path(v, "manifest.json").read_text()) for k, v in streams.items()}
    for (label, seq), m in sizes.items():
        tokens = int(m["num_windows"]) * seq
        if tokens < max(args.budgets):
            raise SystemExit(f"error: mix {label} holds {tokens:,} training tokens at sequence length {seq}, fewer "
                             f"than the largest budget {max(args.budgets):,}: raise --pool-bytes (now "
                             f"{args.pool_bytes:,}) so that no mix is repeated")
    shares = {label: _degraded_share(run) for label, run in runs.items()}
    t_data = time.perf_counter() - t0
    logger.info("data ready in %.0fs: %s", t_data, {k: v["degraded_fraction"] for k, v in shares.items()})
    if args.prepare_only:
        print(json.dumps({"streams": {f"{k[0]}-T{k[1]}": v for k, v in streams.items()}, "tokenizer": tok,
                          "reference": reference}, indent=2))
        return 0

    # 4. trials
    from pipelines.trials import run_trials, trials_executor

    items = _items(args, streams, list(runs), reference)
    results, failed = run_trials(args, items, trials_executor(args))
    # 5. analysis
    summary = analyse(results, specs, n_boot=args.bootstrap)
    settings = {
        "proxies": args.proxies.split(","), "budgets": args.budgets, "seeds": args.seeds,
        "degradations": [s.label for s in specs], "achieved": shares, "vocab_size": args.vocab_size,
        "pool_bytes": args.pool_bytes, "domains": args.domains if not args.input else None,
        "reference": {k: os.path.relpath(v) if os.path.isabs(v) else v for k, v in reference.items()},
        "eval_dir": args.eval_dir, "tasks": args.tasks, "max_examples": args.max_examples,
        "num_fewshot": args.num_fewshot, "bootstrap": args.bootstrap, "failed_trials": failed,
        "stream_tokens": {f"{k[0]}-T{k[1]}": int(m["num_windows"]) * k[1] for k, m in sizes.items()},
        "git": _git(), "seconds": {"data": t_data, "total": time.perf_counter() - t0},
    }  # fmt: skip
    paths = write_outputs(args.output, summary, settings, "sensitivity_gpu" if args.gpu_preset else "sensitivity")
    print(Path(paths[1]).read_text())
    print("\n".join(paths))
    return 0 if len(results) == len(items) and not failed else 1


def analyse_existing(args: argparse.Namespace, specs: list) -> int:
    """``--analyse-only``: the finished trials under ``<output>/trials`` of this grid (proxies x budgets x
    clean and the degradations), analysed without training or rebuilding anything; the trials of the grid
    that have not finished are listed in the settings (``trials_not_run``)."""
    labels = ["clean"] + [s.label for s in specs]
    want = {(p, b, m, s) for p in args.proxies.split(",") for b in args.budgets for m in labels
            for s in range(args.seeds)}
    found: dict[tuple, dict[str, Any]] = {}
    for path in sorted(Path(args.output, "trials").glob("*/result.json")):
        r = json.loads(path.read_text())
        e = r.get("extra") or {}
        key = (e.get("proxy"), int(e.get("budget", -1)), e.get("mix"), r.get("seed"))
        if key not in want or not r.get("finished"):
            continue
        if key in found:
            raise SystemExit(f"error: two finished trials for {key}: {found[key]['out_dir']} and {path.parent}")
        r["out_dir"] = str(path.parent)  # where its per-document files are, seen from here
        found[key] = r
    missing = sorted("-".join(map(str, k)) for k in want - set(found))
    logger.info("--analyse-only: %d finished trials of %d; not run: %s", len(found), len(want), missing)
    summary = analyse(list(found.values()), specs, n_boot=args.bootstrap)
    manifests = {p.parent.name: json.loads(p.read_text()) for p in Path(args.output, "tokens").glob("*/manifest.json")}
    settings = {
        "proxies": args.proxies.split(","), "budgets": args.budgets, "seeds": args.seeds,
        "degradations": [s.label for s in specs], "vocab_size": args.vocab_size,
        "achieved": {m: _degraded_share(os.path.join(args.output, "mixes", m)) for m in labels
                     if os.path.isdir(os.path.join(args.output, "mixes", m, "data"))},
        "stream_tokens": {k: int(m["num_windows"]) * int(m["seq_len"]) for k, m in manifests.items()},
        "reference": sorted({d for r in found.values() for d in (r.get("reference") or {}).get("domains", {})}),
        "eval_dir": args.eval_dir, "tasks": args.tasks, "max_examples": args.max_examples,
        "num_fewshot": args.num_fewshot, "bootstrap": args.bootstrap, "trials_not_run": missing,
        "trial_commits": sorted({str(r.get("git_commit")) + (" (dirty)" if r.get("git_dirty") else "")
                                 for r in found.values()}),
        "analysed_by": _git(),
    }  # fmt: skip
    paths = write_outputs(args.output, summary, settings)
    print(Path(paths[1]).read_text())
    print("\n".join(paths))
    return 0


def _git() -> dict[str, Any]:
    from train_small.eval.score import git_info

    return git_info()


if __name__ == "__main__":
    sys.exit(main())
