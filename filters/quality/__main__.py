"""``python -m filters.quality {train,default,score}``: train, build the offline model, score files."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from filters.quality.train import DEFAULT_BUCKET, TrainConfig


def _train_parser(sub: argparse._SubParsersAction) -> None:
    d = TrainConfig()
    p = sub.add_parser(
        "train",
        help="train a fastText quality classifier (DCLM recipe)",
        description="Train a supervised fastText classifier: positives vs negatives. Writes OUT and OUT.json "
        "(config, data sha256s, held-out precision/recall/AUC). Deterministic with --thread 1.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--positives",
        nargs="+",
        required=True,
        help="high-quality text: jsonl[.gz|.zst], parquet, txt files or directories (our run outputs)",
    )
    p.add_argument("--negatives", nargs="+", required=True, help="low-quality / raw pool text, same formats")
    p.add_argument("--out", required=True, help="model path (.bin); metadata goes to OUT.json")
    p.add_argument("--text-field", default=d.text_field, help="field/column holding the document text")
    p.add_argument("--pos-label", default=d.pos_label, help="fastText label of the positives")
    p.add_argument("--neg-label", default=d.neg_label, help="fastText label of the negatives")
    p.add_argument("--lr", type=float, default=d.lr, help="learning rate (DCLM: 0.1)")
    p.add_argument("--dim", type=int, default=d.dim, help="embedding dimension (DCLM: 100)")
    p.add_argument("--epoch", type=int, default=d.epoch, help="epochs (DCLM: 5)")
    p.add_argument("--word-ngrams", type=int, default=d.word_ngrams, help="max word n-gram length (DCLM: 2)")
    p.add_argument("--min-count", type=int, default=d.min_count, help="minimum word count (DCLM: 1)")
    p.add_argument(
        "--bucket",
        type=int,
        default=DEFAULT_BUCKET,
        help="hashed n-gram rows; model size ~ (vocab + bucket) * dim * 4 bytes",
    )
    p.add_argument("--loss", default=d.loss, choices=["softmax", "hs", "ns", "ova"], help="fastText loss")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of fastText and of our shuffle/split")
    p.add_argument(
        "--thread",
        type=int,
        default=d.thread,
        help="fastText threads; only 1 is deterministic (Hogwild updates race otherwise)",
    )
    p.add_argument(
        "--holdout-fraction",
        type=float,
        default=d.holdout_fraction,
        help="fraction of each class held out for precision/recall/AUC",
    )
    p.add_argument("--max-docs-per-class", type=int, default=None, help="seeded sample of at most this many")
    p.add_argument(
        "--chunk-words",
        type=int,
        default=None,
        help="split training documents into examples of at most N words (helps with few, long docs)",
    )
    p.add_argument("--balance", action="store_true", help="downsample the larger class to the smaller's size")
    p.add_argument("--lowercase", action="store_true", help="lowercase text in training and scoring")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m filters.quality", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="cmd", required=True)
    _train_parser(sub)
    p = sub.add_parser(
        "default",
        help="build the offline default model (synthetic prose vs synthetic junk)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--cache-dir", required=True, help="directory for the model and its metadata")
    p.add_argument("--n-docs", type=int, default=2000, help="generated documents per class")
    p.add_argument("--seed", type=int, default=0, help="generator and training seed")
    p.add_argument("--extra-positives", nargs="+", default=None, help="your own reference text, added as positives")
    p.add_argument("--extra-negatives", nargs="+", default=None, help="your raw pool documents, added as negatives")
    p = sub.add_parser(
        "score",
        help="score documents with a model and print summary statistics",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", required=True, help="fastText .bin")
    p.add_argument("--label", default="__label__hq", help="label whose probability is the score")
    p.add_argument("--text-field", default="text", help="field/column holding the document text")
    p.add_argument("inputs", nargs="+", help="jsonl / parquet / txt files or directories")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")

    if args.cmd == "train":
        from filters.quality.train import train_classifier

        meta = train_classifier(
            args.positives,
            args.negatives,
            args.out,
            text_field=args.text_field,
            pos_label=args.pos_label,
            neg_label=args.neg_label,
            lr=args.lr,
            dim=args.dim,
            epoch=args.epoch,
            word_ngrams=args.word_ngrams,
            min_count=args.min_count,
            bucket=args.bucket,
            loss=args.loss,
            seed=args.seed,
            thread=args.thread,
            holdout_fraction=args.holdout_fraction,
            max_docs_per_class=args.max_docs_per_class,
            balance=args.balance,
            chunk_words=args.chunk_words,
            lowercase=args.lowercase,
        )
        print(
            json.dumps(
                {"model": args.out, "sha256": meta["model_sha256"], "holdout": meta["metrics"]["holdout"]}, indent=1
            )
        )
    elif args.cmd == "default":
        from filters.quality.default import default_model

        print(
            default_model(
                args.cache_dir,
                n_docs=args.n_docs,
                seed=args.seed,
                extra_positives=args.extra_positives,
                extra_negatives=args.extra_negatives,
            )
        )
    else:
        import numpy as np

        from filters.quality.data import load_texts
        from filters.quality.score import QualityScorer

        scorer = QualityScorer(args.model, label=args.label)
        scores = scorer.score_texts(load_texts(args.inputs, args.text_field).texts).to_numpy()
        q = np.quantile(scores, [0.1, 0.5, 0.9]).tolist() if len(scores) else []
        print(
            json.dumps(
                {
                    "n": int(len(scores)),
                    "mean": float(scores.mean()) if len(scores) else None,
                    "quantiles_10_50_90": q,
                    "memory": scorer.memory_report(),
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
