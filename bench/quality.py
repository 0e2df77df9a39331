"""Does the quality-scoring stage cost anything over plain fastText? Documents/s per core.

Ours: ``filters.quality.QualityScorer.process`` on Arrow batches of 2,048 documents (the
runner's batch size): preprocessing, one batched ``predict`` (fastText's
``multilinePredict``), the float32 column appended.
Reference: a plain Python loop of ``model.predict(text)`` per document, with DCLM's own
normalisation (``" ".join(text.strip().splitlines())``, k=1, ``1 - p`` when the top label
is not the high-quality one), as DCLM's enricher scores a page.

Same model (the offline default: dim 100, word bigrams, 100k buckets), same documents
(the real samples of ../shared/data/corpora, repeated to the requested count; generated
text when they are absent), one process on one core, ``--reps`` interleaved runs a side
(alternating which goes first; ratio of the medians, minimums kept), timed in CPU seconds of the process
(``time.process_time``: documents per core, and unaffected by other jobs on a shared machine; fastText's
predict is single-threaded).
Also checks that both give the same scores and reports the worker memory.

    python bench/quality.py            # full: 20,000 documents, 5 repeats
    python bench/quality.py --quick    # < 60 s
"""

from __future__ import annotations

import glob
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import Timing, bench_parser, compare, save  # noqa: E402

from curation.schema import docs_table  # noqa: E402
from filters.quality import QualityScorer, default_model, rss_bytes  # noqa: E402
from filters.quality.data import load_texts  # noqa: E402
from filters.quality.synthetic import clean_prose, crawl_junk  # noqa: E402

CORPORA = ROOT / ".." / "shared" / "data" / "corpora"
BATCH = 2048


def documents(n: int) -> tuple[list[str], str]:
    files = sorted(
        glob.glob(str(CORPORA / "c4" / "*.json.gz"))
        + glob.glob(str(CORPORA / "dolma" / "cc_en_head-*.jsonl.gz"))
        + glob.glob(str(CORPORA / "redpajama" / "*.jsonl"))
    )
    if files:
        base = load_texts(files).texts
        what = f"{len(base)} real documents (c4, dolma cc, redpajama samples) repeated"
    else:
        base = clean_prose(200, 0) + crawl_junk(200, 0)
        what = "400 generated documents repeated"
    docs = [base[i % len(base)] for i in range(n)]
    mb = sum(len(d.encode()) for d in docs) / 1e6
    return docs, f"{n} documents, {mb:.1f} MB: {what}"


# CPU seconds of this process: "per core" and robust to other jobs sharing the machine
clock = time.process_time


def run_ours(scorer: QualityScorer, tables: list[pa.Table]) -> tuple[float, np.ndarray]:
    t0 = clock()
    out = [scorer.process(t).kept.column("quality_score") for t in tables]
    dt = clock() - t0
    return dt, np.concatenate([c.to_numpy() for c in out])


def run_reference(model, texts: list[str], label: str) -> tuple[float, np.ndarray]:
    scores = np.empty(len(texts), dtype=np.float32)
    t0 = clock()
    for i, text in enumerate(texts):
        labels, probs = model.predict(" ".join(text.strip().splitlines()))
        p = float(probs[0])
        scores[i] = p if labels[0] == label else 1.0 - p
    dt = clock() - t0
    return dt, scores




def main(argv: list[str] | None = None) -> int:
    ap = bench_parser(__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=None, help="documents to score (default 20000, quick 1500)")
    ap.add_argument("--model", default=None, help="a fastText .bin to use instead of the offline default")
    ap.add_argument("--label", default="__label__hq", help="the high-quality label (default %(default)s)")
    ap.add_argument("--cache-dir", default=None, help="where the default model is built (default: a temp dir)")
    args = ap.parse_args(argv)
    n = args.docs or (1500 if args.quick else 20000)
    repeats = args.reps or (2 if args.quick else 5)

    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        model_path = args.model or default_model(args.cache_dir or tmp, n_docs=600 if args.quick else 2000)
        texts, input_desc = documents(n)
        tables = [
            docs_table([f"d{i}" for i in range(s, min(s + BATCH, n))], texts[s : s + BATCH], "bench")
            for s in range(0, n, BATCH)
        ]
        rss0 = rss_bytes()
        scorer = QualityScorer(model_path, label=args.label)
        scorer.setup()
        mem = scorer.memory_report()
        import fasttext

        ref_model = fasttext.load_model(model_path)  # the reference's own copy, outside our cache
        ours_t, ref_t = [], []
        ours_scores = ref_scores = None
        run_ours(scorer, tables[:1])  # warm both paths once (first-touch of the weights)
        run_reference(ref_model, texts[:BATCH], args.label)
        for r in range(repeats):
            # alternate which side goes first, so neither always inherits a warm or cold cache
            for side in ("ours", "ref") if r % 2 == 0 else ("ref", "ours"):
                if side == "ours":
                    dt, ours_scores = run_ours(scorer, tables)
                    ours_t.append(dt)
                else:
                    dt, ref_scores = run_reference(ref_model, texts, args.label)
                    ref_t.append(dt)
        max_diff = float(np.max(np.abs(ours_scores - ref_scores)))

    row = compare(
        "quality_scoring_throughput", "CPU seconds for the documents (ratio = documents/s per core, ours / reference)",
        Timing(ours_t), Timing(ref_t),
        "plain fasttext predict() loop with DCLM's line-joining, one document at a time", 0.9, input_desc,
        kind="time", max_abs_score_difference=max_diff, model_file_bytes=mem["model_file_bytes"],
        worker_rss_bytes_after_load=mem["rss_bytes"],
        model_rss_delta_bytes=mem["rss_after_load_bytes"] - mem["rss_before_load_bytes"],
        process_rss_before_bytes=rss0)
    print(f"input: {input_desc}; model {os.path.basename(model_path)} ({mem['model_file_bytes'] / 1e6:.1f} MB); "
          f"ours {n / row['ours']:,.0f} docs/s/core, reference {n / row['reference']:,.0f}; max |score difference| "
          f"{max_diff:.2e}; worker RSS after loading the model {mem['rss_bytes'] / 2**20:.0f} MiB")
    save([row], "quality", args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
