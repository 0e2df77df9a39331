#!/usr/bin/env python
"""DCLM-Baseline-style curation: heuristics -> dedup -> fastText quality -> token streams.

    python pipelines/baseline.py                         # demo pool, embedded local Ray
    python pipelines/baseline.py -i 'rw/*.parquet@refinedweb' -i 'pile/*.jsonl.zst' -o runs/b1
    python pipelines/baseline.py -i 'cc/*.warc.gz' --extractor trafilatura -o runs/cc   # from raw crawl
    ray job submit --working-dir . -- python pipelines/baseline.py -o /shared/runs/b1 ...

Without --input it writes the seeded demo pool (four native formats and a WARC file) and
curates that. When an input is a WARC file, HTML extraction runs first. The script is a
command line -> RecipeOptions -> pipelines/recipes.baseline_recipe (the stages; shared with
pipelines/ablate.py) -> the runner -> token streams. The recipe reads top to bottom; every
block can be switched off for ablations.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from curation import storage  # noqa: E402
from curation.cli import add_run_arguments, config_from_args, inputs_from_args, setup_logging  # noqa: E402
from curation.runner import InputSpec, Runner  # noqa: E402
from pipelines.recipes import BLOCKS, add_recipe_arguments, baseline_recipe, options_from_args  # noqa: E402

logger = logging.getLogger("baseline")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Run `curate stats RUN` / `curate quarantine RUN` to inspect a finished run.",
    )
    add_run_arguments(p, default_output="runs/baseline")
    d = p.add_argument_group("demo pool (used when no --input is given)")
    d.add_argument("--demo-dir", default=None, help="where to write the demo pool (a local folder; default: "
                   "<output>/../demo_pool, or runs/demo_pool for an output on an object store)")
    d.add_argument("--demo-docs", type=int, default=2000,
                   help="documents in the demo pool (default %(default)s; 1000000 for scale runs)")
    r = p.add_argument_group("recipe")
    r.add_argument("--blocks", default=",".join(BLOCKS),
                   help=f"comma-separated recipe blocks to run, in order, from {BLOCKS}; "
                   "'' keeps only reading (the raw pool); default %(default)s")
    add_recipe_arguments(r)
    t = p.add_argument_group("token streams")
    t.add_argument("--no-tokens", dest="tokens", action="store_false", help="stop after curation")
    t.add_argument("--tokenizer", default=None,
                   help="sentencepiece tokenizer.model to use (e.g. LLaMA's); default: train a BPE one on the output")
    t.add_argument("--vocab-size", type=int, default=32000,
                   help="vocabulary of a trained tokenizer, capped to what the sample supports (default %(default)s)")
    t.add_argument("--seq-len", type=int, default=2048,
                   help="tokens per training window, files hold seq_len + 1 (default %(default)s)")
    return p


def build_recipe(args: argparse.Namespace, inputs: list[InputSpec] | None = None) -> list:
    """The command line -> :class:`RecipeOptions` -> the stages (``pipelines/recipes.py``)."""
    blocks = [b for b in args.blocks.split(",") if b]
    unknown = set(blocks) - set(BLOCKS)
    if unknown:
        raise SystemExit(f"error: unknown --blocks {sorted(unknown)}; choose from {BLOCKS}")
    try:
        options = options_from_args(args, decontam=args.decontam)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    return baseline_recipe(blocks, options, args.output, inputs=inputs)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    if args.input:
        inputs = inputs_from_args(args.input)
    else:
        from demopool import GENERATOR_VERSION, generate_pool, pool_files, read_manifest

        demo_dir = args.demo_dir or _default_demo_dir(args.output)
        pool = read_manifest(demo_dir) or {}
        wanted = (args.demo_docs, args.seed, GENERATOR_VERSION)
        if (pool.get("n_docs"), pool.get("seed"), pool.get("version")) != wanted:
            logger.info("writing the demo pool (%d docs) to %s", args.demo_docs, demo_dir)
            generate_pool(demo_dir, n_docs=args.demo_docs, seed=args.seed)
        inputs = [InputSpec(p) for p in pool_files(demo_dir)]
        args.executor = args.executor or "ray"  # the demo is there to show the distributed path
    cfg = config_from_args(args)
    runner = Runner(build_recipe(args, inputs), inputs, cfg)
    res = runner.run()
    if not res.ok:
        logger.error("%d shards failed: %s; rerun to retry them", len(res.failed_shards), res.failed_shards)
        return 1
    if args.tokens:
        from curation.tokens import build_token_stream, train_tokenizer

        tok = args.tokenizer or train_tokenizer([args.output], os.path.join(args.output, "tokenizer", "sp"),
                                                vocab_size=args.vocab_size, seed=args.seed)
        manifest = build_token_stream([(args.output, 1.0)], os.path.join(args.output, "tokens"), tok,
                                      seq_len=args.seq_len, seed=args.seed, overwrite=True,
                                      executor=runner.executor)  # the run's executor: one Ray session
        from curation.report import append_tokens_section

        append_tokens_section(args.output, manifest)
    print(f"report: {os.path.join(args.output, 'report.md')}")
    return 0


def _default_demo_dir(output: str) -> str:
    """Beside a local run folder; for a run on an object store, ``runs/demo_pool`` here (the generator writes
    local files)."""
    if storage.is_local(output):
        return os.path.join(os.path.dirname(os.path.abspath(output)), "demo_pool")
    return os.path.join("runs", "demo_pool")


if __name__ == "__main__":
    sys.exit(main())
