#!/usr/bin/env python
"""DCLM-Baseline-style curation: heuristics -> dedup -> fastText quality -> token streams.

    python pipelines/baseline.py                         # demo pool, embedded local Ray
    python pipelines/baseline.py -i 'rw/*.parquet@refinedweb' -i 'pile/*.jsonl.zst' -o runs/b1
    ray job submit --working-dir . -- python pipelines/baseline.py -o /shared/runs/b1 ...

Without --input it writes the seeded demo pool (all four native formats) and curates
that. The recipe reads top to bottom; every block can be switched off for ablations.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from curation import io  # noqa: E402
from curation.cli import add_run_arguments, config_from_args, inputs_from_args, setup_logging  # noqa: E402
from curation.runner import InputSpec, Runner  # noqa: E402

logger = logging.getLogger("baseline")

BLOCKS = ("heuristics", "dedup", "quality")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Run `curate stats RUN` / `curate quarantine RUN` to inspect a finished run.",
    )
    add_run_arguments(p, default_output="runs/baseline")
    d = p.add_argument_group("demo pool (used when no --input is given)")
    d.add_argument("--demo-dir", default=None, help="where to write the demo pool (default: <output>/../demo_pool)")
    d.add_argument("--demo-docs", type=int, default=2000,
                   help="documents in the demo pool (default %(default)s; 1000000 for scale runs)")
    r = p.add_argument_group("recipe")
    r.add_argument("--blocks", default=",".join(BLOCKS),
                   help=f"comma-separated recipe blocks to run, in order, from {BLOCKS}; "
                   "'' keeps only reading (the raw pool); default %(default)s")
    r.add_argument("--c4", action="store_true", help="also apply the C4 rules block after the RefinedWeb heuristics")
    r.add_argument("--decontam", default=None, metavar="EVAL_DIR",
                   help="drop training documents sharing 13-grams with the evaluation tasks in EVAL_DIR "
                   "(llm-foundry jsonl, e.g. ../shared/data/eval); runs after the heuristics")
    r.add_argument("--dedup", default="exact,minhash,bff",
                   help="dedup methods in order: exact (normalised text and URL), minhash (fuzzy, LSH), "
                   "bff (Bloom paragraph dedup, DCLM's order-dependent step); default %(default)s")
    r.add_argument("--quality-model", default=None,
                   help="fastText .bin quality classifier (e.g. DCLM's released one); default: train the "
                   "offline default classifier into <output>/quality_model (see filters/quality)")
    r.add_argument("--quality-label", default="__label__hq",
                   help="the high-quality label of the classifier (default %(default)s)")
    sel = r.add_mutually_exclusive_group()
    sel.add_argument("--quality-top-fraction", type=float, default=0.1,
                     help="keep this top fraction of the whole pool by quality score "
                     "(default %(default)s: DCLM kept 10%%)")
    sel.add_argument("--quality-threshold", type=float, default=None,
                     help="keep documents with quality_score >= this instead of a top fraction")
    t = p.add_argument_group("token streams")
    t.add_argument("--no-tokens", dest="tokens", action="store_false", help="stop after curation")
    t.add_argument("--tokenizer", default=None,
                   help="sentencepiece tokenizer.model to use (e.g. LLaMA's); default: train a BPE one on the output")
    t.add_argument("--vocab-size", type=int, default=32000,
                   help="vocabulary of a trained tokenizer, capped to what the sample supports (default %(default)s)")
    t.add_argument("--seq-len", type=int, default=2048,
                   help="tokens per training window, files hold seq_len + 1 (default %(default)s)")
    return p


def build_recipe(args: argparse.Namespace) -> list:
    blocks = [b for b in args.blocks.split(",") if b]
    unknown = set(blocks) - set(BLOCKS)
    if unknown:
        raise SystemExit(f"error: unknown --blocks {sorted(unknown)}; choose from {BLOCKS}")
    stages: list = []
    if "heuristics" in blocks:
        from filters.heuristics import c4_stages, refinedweb_stages

        stages += refinedweb_stages()
        if args.c4:
            stages += c4_stages()
    if args.decontam:
        from filters.decontam import Decontaminate

        stages.append(Decontaminate(args.decontam))
    if "dedup" in blocks:
        from filters.dedup import BloomDedup, ExactDedup, MinHashDedup

        methods = {
            "exact": lambda: [ExactDedup(key="text"), ExactDedup(key="url")],
            "minhash": lambda: [MinHashDedup()],
            "bff": lambda: [BloomDedup()],
        }
        for m in [m for m in args.dedup.split(",") if m]:
            if m not in methods:
                raise SystemExit(f"error: unknown --dedup method {m!r}; choose from {sorted(methods)}")
            stages += methods[m]()
    if "quality" in blocks:
        from filters.quality import QualityScorer, QualityThreshold, TopFractionSelect, default_model

        model = args.quality_model or default_model(os.path.join(args.output, "quality_model"))
        stages.append(QualityScorer(model, label=args.quality_label))
        if args.quality_threshold is not None:
            stages.append(QualityThreshold(args.quality_threshold))
        else:
            stages.append(TopFractionSelect(args.quality_top_fraction))
    return stages


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    if args.input:
        inputs = inputs_from_args(args.input)
    else:
        from curation.demo import generate_pool

        demo_dir = args.demo_dir or os.path.join(os.path.dirname(os.path.abspath(args.output)), "demo_pool")
        pool_json = os.path.join(demo_dir, "pool.json")
        pool = io.read_json(pool_json) if io.exists(pool_json) else {}
        if (pool.get("n_docs"), pool.get("seed")) != (args.demo_docs, args.seed):
            logger.info("writing the demo pool (%d docs) to %s", args.demo_docs, demo_dir)
            generate_pool(demo_dir, n_docs=args.demo_docs, seed=args.seed)
        inputs = [InputSpec(p) for p in _demo_files(demo_dir)]
    cfg = config_from_args(args)
    runner = Runner(build_recipe(args), inputs, cfg)
    res = runner.run()
    if not res.ok:
        logger.error("%d shards failed: %s; rerun to retry them", len(res.failed_shards), res.failed_shards)
        return 1
    if args.tokens:
        from curation.tokens import build_token_stream, train_tokenizer

        tok = args.tokenizer or train_tokenizer([args.output], os.path.join(args.output, "tokenizer", "sp"),
                                                vocab_size=args.vocab_size, seed=args.seed)
        manifest = build_token_stream([(args.output, 1.0)], os.path.join(args.output, "tokens"), tok,
                                      seq_len=args.seq_len, seed=args.seed, num_workers=args.workers,
                                      overwrite=True)
        from curation.report import append_tokens_section

        append_tokens_section(args.output, manifest)
    print(f"report: {os.path.join(args.output, 'report.md')}")
    return 0


def _demo_files(demo_dir: str) -> list[str]:
    manifest = io.read_json(os.path.join(demo_dir, "pool.json"))
    return sorted(os.path.join(demo_dir, f) for fmt in manifest["formats"].values() for f in fmt["files"])


if __name__ == "__main__":
    sys.exit(main())
