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
2. Curation, once per distinct recipe (``pipelines/recipes.py``: the blocks heuristics,
   dedup, quality, with this command's recipe flags and the mix's own options), through
   the runner (resumable per shard).
3. One SentencePiece tokenizer for every mix, trained on the raw training split,
   so that losses are comparable (bits per byte are reported too).
4. One token stream per mix (``curation.tokens.build_token_stream``); a mix with
   source weights splits its curated run by ``source`` and mixes those parts.
5. Trials: mix x seed, each ``train_small.eval.score`` (proxy training, held-out
   loss, few-shot tasks), as one pass of Ray tasks (``--executor local``: in this
   process), one GPU per trial where the cluster has GPUs, else ``--cpus-per-trial``
   CPUs. A trial finished for the same settings (its pass marker) is not rerun.
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
from filters.decontam import HoldoutSplit  # noqa: E402,F401 - part of this script's API (tests use it)
from pipelines.ablation_data import build_heldout, curate, resolve_inputs, token_stream, tokenizer_for  # noqa: E402
from pipelines.leaderboard import (  # noqa: E402
    PRIMARY,
    REFERENCE_PRIMARY,
    agreement_markdown,
    leaderboard,
    leaderboard_markdown,
    plot_leaderboard,
    write_leaderboard,
)
from pipelines.mixes import DEFAULT_MIXES, KNOWN_MIXES, Mix, select_mixes  # noqa: E402,F401
from pipelines.recipes import add_recipe_arguments, options_from_args  # noqa: E402
from pipelines.trials import run_trials, trial_items, trials_executor  # noqa: E402

logger = logging.getLogger("ablate")


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
        help="JSON list of mixes [{name, blocks: [...], weights: {source: w} | 'uniform', recipe_options: "
        "{option: value} (the recipe flags below, e.g. {\"quality_top_fraction\": 0.3})}], added to --mixes "
        "(use --mixes '' for only these)",
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
    r = p.add_argument_group("recipe (the options of pipelines/recipes.py for every mix; a mix's own "
                             "recipe_options apply on top)")
    add_recipe_arguments(r, decontam=False)
    t = p.add_argument_group("tokens and training")
    t.add_argument("--recipe", default="tiny", help="train_small recipe (tiny, proxy-20m, proxy-60m, ...)")
    t.add_argument("--seeds", type=int, default=3, help="training seeds per mix")
    t.add_argument("--total-tokens", type=_tokens_arg, default=None,
                   help="override the recipe's training token budget: a number, or 'smallest' for the smallest "
                   "mix's stream (so that no mix is repeated: every trial reads at most one epoch)")
    t.add_argument("--allow-repetition", action="store_true",
                   help="compare mixes whose trials read their data more than 2x as many times as each other's "
                   "(by default such pairs are not compared: repetition, not data, would be measured)")
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
    t.add_argument("--archs", default=None, type=lambda v: [a for a in v.split(",") if a], metavar="A,B",
                   help="proxy families to train every mix with (openelm, mobilellm: the same size, "
                   "train_small Recipe.for_arch); with two or more the leaderboard reports the rank agreement "
                   "between the families (Kendall tau over mixes, per seed and its spread). Default: the "
                   "recipe's own model")
    e = p.add_argument_group("evaluation")
    from train_small.eval.__main__ import add_eval_args

    add_eval_args(e)
    e.set_defaults(tasks="cpu", max_heldout_tokens=None)
    e.add_argument("--calibration", default=None, metavar="SENSITIVITY_JSON",
                   help="the known-answer calibration (pipelines/calibrate.py's sensitivity.json) used to say what "
                   "proxy size and budget a ranking needs when the trials are below the n-gram floor (default: "
                   "train_small/eval/results/sensitivity/sensitivity.json when present)")
    e.add_argument("--primary", default=None, metavar="METRIC",
                   help="the metric that ranks the mixes (a key of train_small.eval.score.flat_metrics, e.g. "
                   "reference/mean_bits_per_byte, heldout/clean/loss, core); default: the reference domains' "
                   "mean bits per byte with --heldout-ref, else the clean held-out loss, else CORE (or the "
                   "centered accuracy of a partial task set)")
    return p


def _tokens_arg(v: str) -> int | str:
    if v == "smallest":
        return v
    try:
        return int(float(v))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--total-tokens takes a number or 'smallest', got {v!r}") from None


def _smallest_stream(streams: dict[str, str], seq_len: int, tokens_per_step: int) -> int:
    """The smallest mix's stream in tokens, rounded down to whole optimizer steps: the trainer rounds a budget up
    to whole steps, and one step more than the stream holds would repeat part of that mix."""
    sizes = {m: int(json.loads(Path(p, "manifest.json").read_text())["num_windows"]) * seq_len
             for m, p in streams.items()}
    budget = max(tokens_per_step, min(sizes.values()) // tokens_per_step * tokens_per_step)
    logger.info("--total-tokens smallest: %d (whole steps of %d; stream tokens per mix: %s)", budget,
                tokens_per_step, sizes)
    return budget


def needed_message(calibration: str | None, budget: int | None, recipe: str) -> str | None:
    """What the calibration found sufficient to beat the n-gram floor, for the leaderboard's refusal."""
    path = calibration or str(HERE.parent / "train_small" / "eval" / "results" / "sensitivity" / "sensitivity.json")
    if not os.path.exists(path):
        return None
    cal = json.loads(Path(path).read_text())
    above = [f for f in cal.get("floor", []) if f.get("beats_ngram_floor")]
    if not above:
        tried = ", ".join(f"{f['proxy']} @ {f['tokens']:,}" for f in cal.get("floor", []))
        return (f"In the known-answer calibration ({os.path.relpath(path)}) no proxy tried ({tried}) beat the floor "
                "either: a larger proxy and budget are needed than this machine has run.")
    first = min(above, key=lambda f: (f["params"] * f["tokens"], f["params"]))
    return (f"In the known-answer calibration ({os.path.relpath(path)}) the smallest configuration above the floor "
            f"was `{first['proxy']}` ({first['params']:,} parameters) trained on {first['tokens']:,} tokens; this "
            f"ablation trained `{recipe}` on {budget if budget else 'its recipe budget'} tokens per trial. A ranking "
            f"needs at least that budget with every mix's stream holding as many tokens (no repetition).")


def choose_primary(results: list[dict[str, Any]], requested: str | None) -> str:
    if requested:
        return requested
    from train_small.eval.score import flat_metrics

    keys = set().union(*(flat_metrics(r) for r in results)) if results else set()
    for k in (REFERENCE_PRIMARY, "reference/mean_bits_per_byte", PRIMARY, "core", "core_partial"):
        if k in keys:
            return k
    return PRIMARY


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from curation.cli import setup_logging

    setup_logging(args.log_level)
    from train_small.recipes import get_recipe

    recipe = get_recipe(args.recipe)
    if args.vocab_size is None:
        args.vocab_size = 1024 if recipe.name == "tiny" else 32000
    try:
        mixes = select_mixes(args.mixes, args.mix_file)
        options = options_from_args(args)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    if args.decontam and not args.eval_dir:
        raise SystemExit("error: --decontam needs --eval-dir")
    known = {"openelm", "mobilellm"}
    if args.archs and (set(args.archs) - known or len(set(args.archs)) != len(args.archs)):
        raise SystemExit(f"error: --archs takes distinct families from {sorted(known)}, got {args.archs}")
    os.makedirs(args.output, exist_ok=True)

    # data: held-out split, curation per recipe, one tokenizer, a token stream per mix
    t0 = time.perf_counter()
    inputs, demo = resolve_inputs(args)
    if args.heldout:
        from train_small.eval.__main__ import _heldout_arg

        heldout: Any = _heldout_arg(args.heldout)
    else:
        heldout = build_heldout(args, inputs, demo, options)
    runs = curate(args, mixes, inputs, options)
    tok = tokenizer_for(args, runs["raw"])
    streams = {m.name: token_stream(args, m, runs[m.curation_key], tok, recipe.seq_len) for m in mixes}
    if args.total_tokens == "smallest":
        args.total_tokens = _smallest_stream(streams, recipe.seq_len, recipe.tokens_per_step)
    reference_report = classifier_check = None
    if args.heldout_ref:  # English only, no overlap with the pool, not the quality classifier's positives
        from pipelines.references import check_classifier_overlap, clean_references
        from train_small.eval.reference import parse_reference_specs

        specs = parse_reference_specs(args.heldout_ref)
        if options.quality_model:
            try:
                classifier_check = check_classifier_overlap(options.quality_model, specs)
            except ValueError as e:
                raise SystemExit(f"error: {e}") from None
        cleaned, reference_report = clean_references(specs, [os.path.join(runs["raw"], "data")],
                                                     os.path.join(args.output, "reference"))
        args.heldout_ref = [f"{k}={v}" for k, v in sorted(cleaned.items())]
    t_data = time.perf_counter() - t0

    # trials: mix x seed, one pass
    t1 = time.perf_counter()
    results, failed = run_trials(args, trial_items(args, mixes, streams, heldout), trials_executor(args))
    t_trials = time.perf_counter() - t1

    # leaderboard (one per proxy family, and their rank agreement)
    primary = choose_primary(results, args.primary)
    archs = args.archs or [None]
    by_arch = {a: [r for r in results if a is None or r.get("arch") == a] for a in archs}
    boards = {a: leaderboard(by_arch[a], mixes, primary, allow_repetition=args.allow_repetition) for a in archs}
    rows = boards[archs[0]]
    extra: list[str] = []
    agreement = None
    if len(archs) > 1:
        from train_small.eval.agreement import rank_agreement_from_results

        for a in archs[1:]:
            extra += leaderboard_markdown(boards[a], primary, f"Proxy family `{a}`")
            extra.append("")
        try:
            agreement = rank_agreement_from_results(results, primary)
            extra += agreement_markdown(agreement)
        except ValueError as e:  # too few mixes or seeds finished
            logger.warning("no rank agreement: %s", e)
    settings = {
        "recipe": args.recipe, "seeds": args.seeds, "mixes": [m.to_json() for m in mixes], "tokenizer": tok,
        "recipe_options": options.overrides(), "inputs": len(inputs), "demo_pool": demo, "limit": args.limit,
        "heldout": heldout, "eval_dir": args.eval_dir, "tasks": args.tasks, "max_examples": args.max_examples,
        "num_fewshot": args.num_fewshot, "total_tokens": args.total_tokens, "max_steps": args.max_steps,
        "seconds": {"data": t_data, "trials": t_trials}, "failed_trials": failed, "archs": args.archs,
        "heldout_ref": args.heldout_ref, "precision": args.precision, "reference_checks": reference_report,
        "classifier_check": classifier_check, "allow_repetition": args.allow_repetition,
    }  # fmt: skip
    results.sort(key=lambda r: (str(r.get("arch")), r["extra"]["mix"], r["seed"]))
    verdicts = {(a, row["mix"]): row.get("beats_ngram_floor") for a, board in boards.items() for row in board}
    for r in results:  # the mix's verdict (it needs every seed) on each of its trials
        r["beats_ngram_floor"] = verdicts.get((r.get("arch") if args.archs else None, r["extra"]["mix"]))
    from pipelines.leaderboard import ranking_status

    status = ranking_status(rows)
    needed = None if status["ranked"] else needed_message(args.calibration, args.total_tokens, args.recipe)
    payload = {"settings": settings, "leaderboard": rows, "trials": results, "primary_metric": primary,
               "rank_agreement": agreement, "ranking": {**status, "needed": needed}}
    from train_small.eval.score import portable

    payload = portable(payload)
    settings = payload["settings"]
    storage.write_bytes_atomic(
        os.path.join(args.output, "ablation.json"), json.dumps(payload, indent=2, default=float).encode()
    )
    title = f"Proxy family `{archs[0]}`" if archs[0] else None
    md = write_leaderboard(args.output, rows, settings, primary, extra=extra, title=title, needed=needed)
    png = plot_leaderboard(args.output, rows, primary)
    print(Path(md).read_text())
    print(f"leaderboard: {md}\nplot: {png}\nall results: {os.path.join(args.output, 'ablation.json')}")
    return 0 if len(results) == len(mixes) * args.seeds * len(archs) else 1


if __name__ == "__main__":
    sys.exit(main())
