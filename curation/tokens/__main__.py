"""Command line: ``python -m curation.tokens {build,train-tokenizer,inspect} --help``."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from curation import storage

DESCRIPTION = """Tokenise, pack, globally shuffle and mix curated runs into Arrow token streams.

examples:
  python -m curation.tokens build --runs runs/web --out out/tokens --train-tokenizer --vocab-size 32000
  python -m curation.tokens build --runs runs/web:0.7 runs/code:0.3 --out out/mix --tokenizer tok.model
  python -m curation.tokens build --runs runs/web:=2B runs/wiki:=200M --out out/mix --tokenizer tok.model
  python -m curation.tokens train-tokenizer --runs runs/web --out-prefix out/tok/spm --vocab-size 32000
  python -m curation.tokens inspect out/tokens
"""


def _runs_help() -> str:
    return (
        "curation run directories (<run>/data/*.parquet, run.json), parquet folders or globs; "
        "each optionally DIR:WEIGHT (a mix weight) or DIR:=TOKENS (a token budget with k/M/B suffixes, "
        "upsampled by repetition when it exceeds the source)"
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m curation.tokens", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="build a token stream (tokenise, pack, mix, shuffle)")
    b.add_argument("--runs", nargs="+", required=True, metavar="DIR[:WEIGHT|:=TOKENS]", help=_runs_help())
    b.add_argument("--out", required=True, help="output folder for the .arrow files and manifest.json")
    tok = b.add_mutually_exclusive_group(required=True)
    tok.add_argument("--tokenizer", metavar="PATH", help="a SentencePiece tokenizer.model (e.g. LLaMA's)")
    tok.add_argument(
        "--train-tokenizer",
        action="store_true",
        help="train a SentencePiece BPE tokenizer on a sample of the runs first (written to OUT/tokenizer/spm.model)",
    )
    b.add_argument("--vocab-size", type=int, default=32000, help="with --train-tokenizer: vocabulary size (32000)")
    b.add_argument(
        "--tokenizer-sample-docs", type=int, default=50_000, help="with --train-tokenizer: documents sampled (50000)"
    )
    b.add_argument(
        "--strict-vocab",
        action="store_true",
        help="with --train-tokenizer: fail instead of training a smaller vocabulary when the sample is too small",
    )
    b.add_argument("--seq-len", type=int, default=2048, help="tokens per training sample; windows hold seq_len+1")
    b.add_argument("--seed", type=int, default=0, help="seed of the mix choices and the global shuffle (0)")
    b.add_argument("--workers", type=int, default=None, help="Ray CPUs / tasks in flight (default: all cores)")
    b.add_argument("--address", default=None, help="join this Ray cluster instead of starting a local one")
    b.add_argument(
        "--executor",
        choices=["auto", "ray", "local"],
        default="auto",
        help="where the passes run: ray, local (in this process), or auto (local for curated input under 16 MiB "
        "without --address, else ray); the output is the same either way",
    )
    b.add_argument(
        "--total-tokens", default=None, help="with weights: total size of the stream (k/M/B suffixes); upsamples"
    )
    b.add_argument("--num-shards", type=int, default=None, help="output files (= shuffle buckets); default by size")
    b.add_argument("--max-shard-mb", type=float, default=256, help="largest output file / shuffle bucket in MiB (256)")
    b.add_argument(
        "--remainder",
        choices=["pack", "drop"],
        default="pack",
        help="shard tails: pack them into extra windows per source (default) or drop them (counted either way)",
    )
    b.add_argument("--no-shuffle", action="store_true", help="write windows in source/shard/document order")
    b.add_argument("--dtype", choices=["auto", "uint16", "uint32"], default="auto", help="token dtype (auto)")
    b.add_argument("--eos-id", type=int, default=None, help="override the tokenizer's EOS id")
    b.add_argument("--text-column", default="text", help="column holding the document text (text)")
    b.add_argument("--overwrite", action="store_true", help="replace an existing stream in --out")
    b.add_argument("--keep-work", action="store_true", help="keep intermediate files and pass markers in OUT/_work")
    b.add_argument(
        "--no-resume",
        action="store_true",
        help="recompute every shard and bucket instead of reusing what an interrupted build completed (OUT/_work)",
    )
    b.add_argument(
        "--rehydrate",
        nargs="?",
        const="fineweb2",
        default=None,
        metavar="TABLE",
        help="upsample each document by its duplicate cluster's size (dup_cluster_size, written by exact and MinHash "
        "dedup): alone, FineWeb-2's table (1:1,2:2,3:3,5:5,100:8,1000:1: sizes 5-99 packed 5 times, 1000+ once); or "
        "SIZE:COPIES pairs; off by default; recorded in the manifest",
    )
    b.add_argument(
        "--on-error",
        choices=["skip", "raise"],
        default="skip",
        help="an unreadable curated shard: skip it and list it in the manifest (default) or stop the build",
    )

    t = sub.add_parser("train-tokenizer", help="train a SentencePiece BPE tokenizer on curated runs")
    t.add_argument("--runs", nargs="+", required=True, metavar="DIR", help="curation runs, parquet folders or globs")
    t.add_argument("--out-prefix", required=True, help="writes PREFIX.model, PREFIX.vocab, PREFIX.json")
    t.add_argument("--vocab-size", type=int, default=32000, help="vocabulary size (32000, as LLaMA/OpenELM)")
    t.add_argument("--sample-docs", type=int, default=50_000, help="documents sampled for training (50000)")
    t.add_argument("--seed", type=int, default=0, help="sampling seed (0)")
    t.add_argument("--strict-vocab", action="store_true", help="fail when the sample cannot support the vocabulary")

    i = sub.add_parser("inspect", help="summarise a token stream and decode its first window")
    i.add_argument("dir", help="token stream folder")
    i.add_argument("--decode", type=int, default=200, help="characters of the first window to print (200)")
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    from curation.tokens import TokenStreamConfig, build_token_stream, parse_source, train_tokenizer
    from curation.tokens.mix import parse_count

    if args.command == "train-tokenizer":
        path = train_tokenizer(
            args.runs,
            args.out_prefix,
            vocab_size=args.vocab_size,
            sample_docs=args.sample_docs,
            seed=args.seed,
            allow_smaller_vocab=not args.strict_vocab,
        )
        print(path)
        return 0
    if args.command == "inspect":
        from curation.tokens import TokenStream, load_tokenizer

        ts = TokenStream(args.dir)
        m = ts.manifest
        print(ts)
        print(json.dumps({"tokens_per_source": m["tokens_per_source"], "tokenizer": m["tokenizer"]["path"]}, indent=1))
        if ts.num_windows:
            sp, _, _ = load_tokenizer(m["tokenizer"]["path"])
            print(repr(sp.decode(ts.window_at(0).tolist())[: args.decode]))
        return 0

    specs = [parse_source(r) for r in args.runs]
    tokenizer = args.tokenizer
    if args.train_tokenizer:
        tokenizer = train_tokenizer(
            [s.path for s in specs],
            storage.join(args.out, "tokenizer", "spm"),
            vocab_size=args.vocab_size,
            sample_docs=args.tokenizer_sample_docs,
            seed=args.seed,
            allow_smaller_vocab=not args.strict_vocab,
        )
    config = TokenStreamConfig(
        seq_len=args.seq_len,
        seed=args.seed,
        total_tokens=parse_count(args.total_tokens) if args.total_tokens else None,
        shuffle=not args.no_shuffle,
        remainder=args.remainder,
        dtype=None if args.dtype == "auto" else args.dtype,
        eos_id=args.eos_id,
        num_shards=args.num_shards,
        max_shard_bytes=int(args.max_shard_mb * (1 << 20)),
        text_column=args.text_column,
        overwrite=args.overwrite,
        keep_work=args.keep_work,
        on_error=args.on_error,
        resume=not args.no_resume,
        rehydrate=args.rehydrate,
    )
    manifest = build_token_stream(specs, args.out, tokenizer, config, executor=args.executor,
                                  num_workers=args.workers, address=args.address)
    print(
        json.dumps(
            {
                "out": args.out,
                "windows": manifest["num_windows"],
                "tokens": manifest["num_tokens"],
                "files": len(manifest["files"]),
                "tokens_per_source": manifest["tokens_per_source"],
                "skipped_shards": manifest["skipped_shards"],
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
