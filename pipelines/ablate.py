#!/usr/bin/env python
"""Ablate data mixes: curation -> tokens -> fixed-recipe proxy -> evaluation, N seeds each, on Ray.

    # CPU: the demo pool, the tiny recipe, 3 seeds, quick eval (minutes on a laptop)
    python pipelines/ablate.py -o runs/ablate --seeds 3 --recipe tiny --eval-dir ../shared/data/eval \\
        --tasks cpu --max-examples 100 --num-fewshot 0

    # one H100, ~60M proxy, 4 mixes x 1 seed on your own pool (see "GPU recipe" below)
    python pipelines/ablate.py -o runs/ab60 -i 'rw/*.parquet@refinedweb' \\
        --mixes raw,heuristics,heuristics+dedup,baseline --recipe proxy-60m --total-tokens 300000000 \\
        --seeds 1 --eval-dir EVAL --tasks core --max-examples 500

Steps (each resumable; a rerun skips what is finished):

1. Held-out split. A fixed fraction of the input documents (``--heldout-fraction``,
   chosen by a hash of the document id and the seed) is reserved: every mix's
   curation drops it first (reason ``holdout:reserved``), so no mix trains on it.
   The reserved documents that are *clean* form the held-out domain ``clean``
   (clean = the demo pool's ground-truth label when the input is the demo pool,
   else the documents that pass the RefinedWeb heuristics); all reserved documents
   form the domain ``raw``. ``--heldout`` replaces this with the user's files.
2. Curation, once per distinct recipe (the blocks of ``pipelines/baseline.py``:
   heuristics, dedup, quality), through the Ray runner (resumable per shard).
3. One SentencePiece tokenizer for every mix, trained on the raw training split,
   so that losses are comparable (bits per byte are reported too).
4. One token stream per mix (``curation.tokens.build_token_stream``); a mix with
   source weights splits its curated run by ``source`` and mixes those parts.
5. Trials: mix x seed, each ``train_small.eval.score`` (proxy training, held-out
   loss, few-shot tasks) as one Ray task, one GPU per trial where the cluster has
   GPUs, else ``--cpus-per-trial`` CPUs. A trial whose result.json is finished for
   the same settings is not rerun.
6. Leaderboard: ``leaderboard.md``, ``leaderboard.png`` (every seed as a dot, the
   mean, the min-max spread) and ``ablation.json`` (every trial's full result).
   A mix "beats raw" when its mean clean held-out loss is lower than raw's by more
   than the larger of the two seed spreads (max - min).

GPU recipe (one H100, within an hour): 4 mixes x 1 seed of ``proxy-60m`` (65M
parameters, 2048-token windows) at ``--total-tokens 300000000`` (~4.6 tokens per
parameter; DCLM's 1x would be 1.3B tokens and does not fit 4 trials in an hour)
runs 4 x ~7-8 min of training at ~0.7M tokens/s (fused kernels, bf16; measure your
own with ``bench/train.py``), plus curation and evaluation (CORE at 500 examples
per task: ~2 min per trial). Use a pool large enough that the stream is not
repeated many times (300M tokens is about 1.2 GB of clean text).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from curation import io as cio  # noqa: E402
from filters.decontam import Decontaminate, HoldoutSplit  # noqa: E402

logger = logging.getLogger("ablate")

PRIMARY = "heldout/clean/loss"


# --------------------------------------------------------------------------------------- mixes


@dataclass(frozen=True)
class Mix:
    """One data mix: the curation blocks to run, and optional per-source token weights."""

    name: str
    blocks: tuple[str, ...]  # from pipelines/baseline.py BLOCKS, in order; () = the raw pool
    weights: tuple[tuple[str, float], ...] | str | None = None  # ((source, w), ...), "uniform", or natural
    description: str = ""
    recipe_args: tuple[str, ...] = ()  # extra pipelines/baseline.py flags for this mix's curation

    @property
    def curation_key(self) -> str:
        key = "raw" if not self.blocks else "+".join(self.blocks)
        if self.recipe_args:
            key += "~" + hashlib.sha256(json.dumps(list(self.recipe_args)).encode()).hexdigest()[:8]
        return key

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["weights"] = dict(self.weights) if isinstance(self.weights, tuple) else self.weights
        d["recipe_args"] = list(self.recipe_args)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Mix:
        w = d.get("weights")
        w = tuple(sorted((str(k), float(v)) for k, v in w.items())) if isinstance(w, dict) else w
        args = tuple(str(a) for a in d.get("recipe_args", ()))
        return cls(d["name"], tuple(d.get("blocks", ())), w, d.get("description", ""), args)


#: mixes run by default (the ablation ladder of the DCLM paper, plus a source re-weighting)
DEFAULT_MIXES: dict[str, Mix] = {
    m.name: m
    for m in [
        Mix("raw", (), description="the pool as read (minus the held-out slice)"),
        Mix("heuristics", ("heuristics",), description="RefinedWeb heuristics only"),
        Mix("heuristics+dedup", ("heuristics", "dedup"), description="heuristics, then exact/MinHash/BFF dedup"),
        Mix("baseline", ("heuristics", "dedup", "quality"), description="the full DCLM-style baseline"),
        Mix(
            "baseline-uniform-sources",
            ("heuristics", "dedup", "quality"),
            weights="uniform",
            description="the baseline's documents, every source weighted equally",
        ),
    ]
}


#: further named mixes (``--mixes`` accepts any of KNOWN_MIXES)
KNOWN_MIXES: dict[str, Mix] = DEFAULT_MIXES | {
    m.name: m
    for m in [
        Mix(
            "baseline-top30",
            ("heuristics", "dedup", "quality"),
            description="the baseline keeping the top 30% by quality (10% of a small pool is very little text)",
            recipe_args=("--quality-top-fraction", "0.3"),
        ),
    ]
}


# --------------------------------------------------------------------------------------- held-out split


# --------------------------------------------------------------------------------------- steps


def _baseline():
    import baseline  # pipelines/baseline.py (the lead's recipe)

    return baseline


def curation_stages(
    blocks: tuple[str, ...], run_dir: str, args: argparse.Namespace, recipe_args: tuple[str, ...] = ()
) -> list:
    """The stages of pipelines/baseline.py for ``blocks``, with its defaults (then --baseline-arg, then the mix's)."""
    if not blocks:
        return []
    b = _baseline()
    flags = ["-o", run_dir, "--blocks", ",".join(blocks)] + list(args.baseline_args) + list(recipe_args)
    bargs = b.build_parser().parse_args(flags)
    return b.build_recipe(bargs)


def run_config(args: argparse.Namespace, out: str):
    from curation.runner import RunConfig

    return RunConfig(
        output_dir=out, num_workers=args.workers, address=args.address, limit=args.limit, seed=args.seed,
        progress=args.progress, resume=True,
    )  # fmt: skip


def resolve_inputs(args: argparse.Namespace) -> tuple[list, str | None]:
    """(input specs, demo pool dir or None)."""
    from curation.runner import InputSpec

    if args.input:
        from curation.cli import inputs_from_args

        return inputs_from_args(args.input), None
    from curation.demo import generate_pool

    demo = args.demo_dir or os.path.join(args.output, "demo_pool")
    if not cio.exists(os.path.join(demo, "pool.json")):
        logger.info("writing the demo pool (%d docs) to %s", args.demo_docs, demo)
        generate_pool(demo, n_docs=args.demo_docs, seed=args.seed)
    manifest = cio.read_json(os.path.join(demo, "pool.json"))
    files = sorted(os.path.join(demo, f) for fmt in manifest["formats"].values() for f in fmt["files"])
    return [InputSpec(p) for p in files], demo


def _demo_clean_ids(demo: str) -> set[str] | None:
    """Ids of the demo pool's clean documents (truth categories ``clean``/``long``) that are neither
    duplicates nor the original of a planted duplicate (so no copy of them can sit in the training split)."""
    path = os.path.join(demo, "truth.parquet")
    if not os.path.exists(path):
        return None
    t = pq.read_table(path, columns=["id", "category", "dup_of"])
    ids, cats, dup_of = (t.column(c).to_pylist() for c in ("id", "category", "dup_of"))
    originals = {d for d in dup_of if d}
    return {i for i, c, d in zip(ids, cats, dup_of) if c in ("clean", "long") and not d and i not in originals}


def _is_clean_meta(meta: str | None) -> bool | None:
    if not meta:
        return None
    try:
        m = json.loads(meta)
    except ValueError:
        return None
    if not isinstance(m, dict):
        return None
    for key in ("demo_kind", "kind", "label"):
        if isinstance(m.get(key), str):
            return m[key] == "clean"
    return None


def build_heldout(args: argparse.Namespace, inputs: list, demo: str | None) -> dict[str, list[str]]:
    """The held-out parquet files per domain ({"clean": [...], "raw": [...]}), built once."""
    from curation.runner import Runner

    root = os.path.join(args.output, "heldout")
    done = os.path.join(root, "domains.json")
    if os.path.exists(done):
        return json.loads(Path(done).read_text())
    run_dir = os.path.join(root, "run")
    res = Runner([HoldoutSplit(args.heldout_fraction, args.seed, keep="heldout")], inputs,
                 run_config(args, run_dir)).run()  # fmt: skip
    if not res.ok:
        raise RuntimeError(f"held-out extraction failed on shards {res.failed_shards}")
    files = sorted(str(p) for p in Path(run_dir, "data").glob("*.parquet"))
    table = pa.concat_tables(
        [pq.read_table(f, columns=["id", "text", "source", "metadata"]) for f in files], promote_options="permissive"
    )
    clean_ids = _demo_clean_ids(demo) if demo else None
    if clean_ids is not None:
        mask = [i in clean_ids for i in table.column("id").to_pylist()]
        how = "demo pool labels"
    else:
        labels = [_is_clean_meta(m) for m in table.column("metadata").to_pylist()]
        if demo and any(x is not None for x in labels):
            mask = [bool(x) for x in labels]
            how = "demo pool metadata"
        else:
            mask = _passes_heuristics(table)
            how = "documents passing the RefinedWeb heuristics"
    clean = table.filter(pa.array(mask, pa.bool_()))
    os.makedirs(root, exist_ok=True)
    out = {"clean": os.path.join(root, "clean.parquet"), "raw": os.path.join(root, "raw.parquet")}
    pq.write_table(clean.select(["id", "text", "source"]), out["clean"])
    pq.write_table(table.select(["id", "text", "source"]), out["raw"])
    info = {k: [v] for k, v in out.items()}
    Path(done).write_text(json.dumps(info, indent=2))
    logger.info("held-out: %d documents reserved, %d clean (%s)", table.num_rows, clean.num_rows, how)
    if clean.num_rows == 0:
        raise RuntimeError("held-out split has no clean documents: raise --heldout-fraction or pass --heldout")
    return info


def _passes_heuristics(table: pa.Table) -> list[bool]:
    """Which documents pass the RefinedWeb heuristics (the fallback definition of "clean")."""
    from filters.heuristics import refinedweb_stages

    t = table
    for st in refinedweb_stages():
        st.setup()
        t = st(t).kept
    kept = set(t.column("id").to_pylist())
    return [i in kept for i in table.column("id").to_pylist()]


def curate(args: argparse.Namespace, mixes: list[Mix], inputs: list) -> dict[str, str]:
    """Run each distinct curation recipe once; returns {curation key: run dir}."""
    from curation.runner import Runner

    runs: dict[str, str] = {}
    keys = ["raw"] + [m.curation_key for m in mixes]
    spec_of = {"raw": ((), ())} | {m.curation_key: (m.blocks, m.recipe_args) for m in mixes}
    for key in dict.fromkeys(keys):
        run_dir = os.path.join(args.output, "curated", key.replace("+", "_").replace("~", "-"))
        stages = [HoldoutSplit(args.heldout_fraction, args.seed, keep="train")]
        if args.decontam:
            stages.append(Decontaminate(args.eval_dir, n=args.decontam_n))
        stages += curation_stages(spec_of[key][0], run_dir, args, spec_of[key][1])
        t0 = time.perf_counter()
        res = Runner(stages, inputs, run_config(args, run_dir)).run()
        if not res.ok:
            raise RuntimeError(f"curation {key} failed on shards {res.failed_shards}; rerun to retry")
        logger.info("curated %s in %.1fs (%d shards processed, %d skipped)", key, time.perf_counter() - t0,
                    res.processed_shards, res.skipped_shards)  # fmt: skip
        runs[key] = run_dir
    return runs


def tokenizer_for(args: argparse.Namespace, raw_run: str) -> str:
    if args.tokenizer:
        return args.tokenizer
    from curation.tokens import train_tokenizer

    prefix = os.path.join(args.output, "tokenizer", "sp")
    if os.path.exists(prefix + ".model"):
        return prefix + ".model"
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    return train_tokenizer([raw_run], prefix, vocab_size=args.vocab_size, seed=args.seed)


def _split_by_source(run_dir: str, out_dir: str) -> dict[str, str]:
    """Write the run's documents into one parquet folder per source; {source: folder}."""
    files = sorted(Path(run_dir, "data").glob("*.parquet"))
    t = (
        pa.concat_tables(
            [pq.read_table(f, columns=["id", "text", "source"]) for f in files], promote_options="permissive"
        )
        if files
        else None
    )
    if t is None or t.num_rows == 0:
        raise RuntimeError(f"{run_dir} holds no documents")
    out: dict[str, str] = {}
    for src in sorted(set(t.column("source").to_pylist())):
        d = os.path.join(out_dir, src)
        os.makedirs(d, exist_ok=True)
        pq.write_table(t.filter(pc.equal(t.column("source"), src)), os.path.join(d, "part-0.parquet"))
        out[src] = d
    return out


def token_stream(args: argparse.Namespace, mix: Mix, run_dir: str, tok: str, seq_len: int) -> str:
    from curation.tokens import build_token_stream

    out = os.path.join(args.output, "tokens", mix.name)
    # what the stream depends on: the curated files (a recomputed curation rebuilds it), weights, tokenizer
    data = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in Path(run_dir, "data").glob("*.parquet"))
    key = json.dumps({"weights": mix.to_json()["weights"], "run": run_dir, "data": data, "tok": _sha_file(tok),
                      "seq_len": seq_len, "seed": args.seed, "total": args.stream_tokens}, sort_keys=True)  # fmt: skip
    stamp = os.path.join(args.output, "tokens", f"{mix.name}.key.json")
    if os.path.exists(os.path.join(out, "manifest.json")) and os.path.exists(stamp):
        if Path(stamp).read_text() == key:
            return out
    if mix.weights is None:
        sources: Any = [(run_dir, 1.0)]
        total = args.stream_tokens
    else:
        parts = _split_by_source(run_dir, os.path.join(args.output, "tokens", f"{mix.name}.by_source"))
        w = {s: 1.0 for s in parts} if mix.weights == "uniform" else dict(mix.weights)  # type: ignore[arg-type]
        missing = set(w) - set(parts)
        if missing:
            raise ValueError(f"mix {mix.name}: no curated documents from sources {sorted(missing)}")
        sources = [(parts[s], float(w[s])) for s in sorted(w) if w[s] > 0]
        total = args.stream_tokens or _natural_tokens(run_dir, tok)
    build_token_stream(sources, out, tok, seq_len=seq_len, seed=args.seed, num_workers=args.workers,
                       total_tokens=total, overwrite=True)  # fmt: skip
    Path(stamp).write_text(key)
    return out


def _natural_tokens(run_dir: str, tok: str) -> int:
    """Approximate token count of a run (bytes / bytes-per-token of a sample), for weighted mixes."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=tok)
    files = sorted(Path(run_dir, "data").glob("*.parquet"))
    t = pa.concat_tables([pq.read_table(f, columns=["text"]) for f in files], promote_options="permissive")
    texts = t.column("text").to_pylist()
    sample = texts[:: max(1, len(texts) // 200)]
    bpt = sum(len(x.encode()) for x in sample) / max(1, sum(len(sp.encode(x)) + 1 for x in sample))
    return int(sum(len(x.encode()) for x in texts) / bpt)


def _sha_file(p: str) -> str:
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()[:16]


# --------------------------------------------------------------------------------------- trials


def trial_key(mix: Mix, seed: int, stream: str, args: argparse.Namespace, heldout: Any) -> str:
    manifest = Path(stream, "manifest.json").read_bytes()
    payload = {
        "mix": [mix.name, mix.curation_key, mix.to_json()["weights"]], "seed": seed,
        "manifest": hashlib.sha256(manifest).hexdigest(),
        "recipe": args.recipe, "total_tokens": args.total_tokens, "max_steps": args.max_steps,
        "eval": [args.eval_dir, args.tasks, args.max_examples, args.num_fewshot, args.eval_seed],
        "heldout": heldout, "max_heldout_tokens": args.max_heldout_tokens,
    }  # fmt: skip
    if getattr(args, "heldout_ref", None):  # only when set, so earlier trials keep their keys
        payload["reference"] = sorted(args.heldout_ref)
    if getattr(args, "precision", "fp32") != "fp32":
        payload["precision"] = args.precision
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _train_key(stream: str, seed: int, args: argparse.Namespace) -> str:
    manifest = hashlib.sha256(Path(stream, "manifest.json").read_bytes()).hexdigest()
    payload = [manifest, seed, args.recipe, args.total_tokens, args.max_steps]
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:8]


def _finished(out_dir: str, key: str) -> dict[str, Any] | None:
    p = Path(out_dir, "result.json")
    if not p.exists():
        return None
    r = json.loads(p.read_text())
    return r if r.get("finished") and (r.get("extra") or {}).get("trial_key") == key else None


def run_trials(args: argparse.Namespace, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    import ray

    from curation.ray_utils import init_ray

    init_ray(address=args.address, num_workers=args.workers)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    if gpus:
        opts = {"num_gpus": 1, "num_cpus": 1}
    else:
        opts = {"num_cpus": args.cpus_per_trial}
    from train_small.eval.score import score_trial  # importable by workers (a script's functions are not)

    remote = ray.remote(max_retries=1)(score_trial).options(**opts)
    logger.info("%d trials to run (%s per trial)", len(jobs), "1 GPU" if gpus else f"{args.cpus_per_trial} CPUs")
    pending = {}
    for job in jobs:
        spec = dict(job["spec"], threads=1 if gpus else args.cpus_per_trial, device="cuda" if gpus else "cpu")
        pending[remote.remote(spec)] = job
    results: list[dict[str, Any]] = []
    failed: list[str] = []
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        job = pending.pop(done[0])
        try:
            results.append(ray.get(done[0]))
            logger.info("trial %s seed %d finished", job["mix"], job["seed"])
        except Exception as e:  # noqa: BLE001 - one failed trial must not lose the others
            logger.error("trial %s seed %d failed: %s", job["mix"], job["seed"], e)
            failed.append(f"{job['mix']}/seed{job['seed']}")
    if failed:
        logger.error("failed trials (rerun to retry): %s", failed)
    return results


# --------------------------------------------------------------------------------------- leaderboard


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


# --------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    from curation.cli import add_run_arguments

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split(
                                    "\n\n", 1)[1])  # fmt: skip
    add_run_arguments(p, default_output="runs/ablate")
    d = p.add_argument_group("demo pool (used when no --input is given)")
    d.add_argument("--demo-dir", default=None, help="demo pool folder (default: <output>/demo_pool)")
    d.add_argument("--demo-docs", type=int, default=2000, help="documents in the demo pool")
    m = p.add_argument_group("mixes")
    m.add_argument(
        "--mixes",
        default=",".join(DEFAULT_MIXES),
        help=f"comma list of mixes from {list(KNOWN_MIXES)} (default: the first {len(DEFAULT_MIXES)})",
    )
    m.add_argument(
        "--mix-file",
        default=None,
        help="JSON list of mixes [{name, blocks: [...], weights: {source: w} | 'uniform', recipe_args: "
        "[pipelines/baseline.py flags]}], added to --mixes (use --mixes '' for only these)",
    )
    m.add_argument(
        "--baseline-arg",
        dest="baseline_args",
        action="append",
        default=[],
        help="extra flag passed to pipelines/baseline.py's recipe builder (repeatable), "
        "e.g. --baseline-arg=--quality-top-fraction=0.3",
    )
    m.add_argument(
        "--decontam",
        action="store_true",
        help="drop training documents sharing word n-grams with every task of --eval-dir, in every mix "
        "(filters.decontam; counts under decontam:ngram_overlap in each run's report)",
    )
    m.add_argument("--decontam-n", type=int, default=13, help="n-gram size for --decontam")
    m.add_argument(
        "--heldout-fraction",
        type=float,
        default=0.05,
        help="fraction of documents reserved for held-out loss (never trained on)",
    )
    t = p.add_argument_group("tokens and training")
    t.add_argument("--recipe", default="tiny", help="train_small recipe (tiny, proxy-20m, proxy-60m, ...)")
    t.add_argument("--seeds", type=int, default=3, help="training seeds per mix")
    t.add_argument("--total-tokens", type=int, default=None, help="override the recipe's training token budget")
    t.add_argument("--max-steps", type=int, default=None, help="stop every trial at this step (smoke runs)")
    t.add_argument("--tokenizer", default=None, help="sentencepiece .model for every mix (default: train one)")
    t.add_argument(
        "--vocab-size",
        type=int,
        default=None,
        help="vocabulary of the trained tokenizer (default: 1024 for tiny, else 32000)",
    )
    t.add_argument(
        "--stream-tokens",
        type=int,
        default=None,
        help="size every token stream to this many tokens (default: each mix's natural size)",
    )
    t.add_argument("--cpus-per-trial", type=int, default=1, help="CPUs (torch threads) per trial without GPUs")
    e = p.add_argument_group("evaluation")
    from train_small.eval.__main__ import add_eval_args

    add_eval_args(e)
    e.set_defaults(tasks="cpu", max_heldout_tokens=None)
    return p


def select_mixes(args: argparse.Namespace) -> list[Mix]:
    mixes = []
    for name in [x for x in args.mixes.split(",") if x]:
        if name not in KNOWN_MIXES:
            raise SystemExit(f"error: unknown mix {name!r}; known: {list(KNOWN_MIXES)} (or use --mix-file)")
        mixes.append(KNOWN_MIXES[name])
    if args.mix_file:
        mixes += [Mix.from_json(d) for d in json.loads(Path(args.mix_file).read_text())]
    names = [m.name for m in mixes]
    if len(set(names)) != len(names) or not mixes:
        raise SystemExit(f"error: need distinct, non-empty mixes, got {names}")
    known = set(_baseline().BLOCKS)
    for m in mixes:
        if set(m.blocks) - known:
            raise SystemExit(f"error: mix {m.name}: unknown blocks {sorted(set(m.blocks) - known)}")
    return mixes


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from curation.cli import setup_logging

    setup_logging(args.log_level)
    from train_small.recipes import get_recipe

    recipe = get_recipe(args.recipe)
    if args.vocab_size is None:
        args.vocab_size = 1024 if recipe.name == "tiny" else 32000
    mixes = select_mixes(args)
    if args.decontam and not args.eval_dir:
        raise SystemExit("error: --decontam needs --eval-dir")
    os.makedirs(args.output, exist_ok=True)
    t0 = time.perf_counter()
    inputs, demo = resolve_inputs(args)
    if args.heldout:
        from train_small.eval.__main__ import _heldout_arg

        heldout: Any = _heldout_arg(args.heldout)
    else:
        heldout = build_heldout(args, inputs, demo)
    runs = curate(args, mixes, inputs)
    tok = tokenizer_for(args, runs["raw"])
    streams = {m.name: token_stream(args, m, runs[m.curation_key], tok, recipe.seq_len) for m in mixes}
    t_data = time.perf_counter() - t0

    jobs, results = [], []
    for m in mixes:
        for s in range(args.seeds):
            # the folder is named by what training depends on, so a new budget never resumes an old run
            tkey = _train_key(streams[m.name], s, args)
            out = os.path.join(args.output, "trials", m.name, f"seed{s}-{tkey}")
            key = trial_key(m, s, streams[m.name], args, heldout)
            done = _finished(out, key)
            if done is not None:
                results.append(done)
                continue
            spec = dict(
                data_dir=streams[m.name], recipe=args.recipe, out_dir=out, seed=s, eval_dir=args.eval_dir,
                tasks=args.tasks, heldout=heldout, max_examples=args.max_examples, num_fewshot=args.num_fewshot,
                max_heldout_tokens=args.max_heldout_tokens, total_tokens=args.total_tokens,
                max_steps=args.max_steps, eval_seed=args.eval_seed, batch_tokens=args.batch_tokens,
                reference=args.heldout_ref, precision=args.precision,
                extra={"mix": m.name, "mix_spec": m.to_json(), "trial_key": key}, force=True,
            )  # fmt: skip
            jobs.append({"mix": m.name, "seed": s, "spec": spec})
    logger.info("%d trials finished earlier, %d to run", len(results), len(jobs))
    t1 = time.perf_counter()
    if jobs:
        results += run_trials(args, jobs)
    t_trials = time.perf_counter() - t1

    primary = PRIMARY if any("heldout" in r and "clean" in r["heldout"]["domains"] for r in results) else "core"
    rows = leaderboard(results, mixes, primary)
    settings = {
        "recipe": args.recipe, "seeds": args.seeds, "mixes": [m.to_json() for m in mixes], "tokenizer": tok,
        "inputs": len(inputs), "demo_pool": demo, "limit": args.limit, "heldout": heldout,
        "eval_dir": args.eval_dir, "tasks": args.tasks, "max_examples": args.max_examples,
        "num_fewshot": args.num_fewshot, "total_tokens": args.total_tokens, "max_steps": args.max_steps,
        "seconds": {"data": t_data, "trials": t_trials},
    }  # fmt: skip
    results.sort(key=lambda r: (r["extra"]["mix"], r["seed"]))
    payload = {"settings": settings, "leaderboard": rows, "trials": results, "primary_metric": primary}
    cio.write_bytes_atomic(
        os.path.join(args.output, "ablation.json"), json.dumps(payload, indent=2, default=float).encode()
    )
    md = write_leaderboard(args.output, rows, settings, primary)
    png = plot_leaderboard(args.output, rows, primary)
    print(Path(md).read_text())
    print(f"leaderboard: {md}\nplot: {png}\nall results: {os.path.join(args.output, 'ablation.json')}")
    expected = len(mixes) * args.seeds
    return 0 if len(results) == expected else 1


if __name__ == "__main__":
    sys.exit(main())
