#!/usr/bin/env python
"""Token-stream build throughput per core vs raw sentencepiece encoding, and HF tokenizers for reference.

    python bench/tokens.py            # full: ~48 MB of curated text
    python bench/tokens.py --quick    # < 60 s

Question (issue 6): how fast is the whole build (read curated parquet, tokenise,
pack, scatter, shuffle, write Arrow streams) per core, compared with encoding
the same texts with sentencepiece alone in one process (the floor cost of
tokenising)? Target: ours >= 0.8x raw sentencepiece, tokens/s per core.
HF ``tokenizers`` ``encode_batch`` (a BPE of the same size trained on the same
sample, one Rayon thread) is measured for reference, in bytes/s since the two
tokenizers split text differently.

Input: the real text samples in ../shared/data (C4, Pile, RedPajama incl. arXiv and
StackExchange, PG-19, OpenWebText, Shakespeare), repeated in a seeded order up to
the target size and written as curated parquet shards (DOC_SCHEMA). Ray's start-up
and worker spawn are excluded (a warm-up build runs first).
"""

from __future__ import annotations

import argparse
import glob
import gzip
import io
import json
import multiprocessing
import os
import random
import sys
import tempfile
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # HF tokenizers: one thread, a per-core number
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import sentencepiece as spm  # noqa: E402
from _common import commit, machine, save  # noqa: E402

from curation.schema import docs_table  # noqa: E402
from curation.storage import write_json_atomic, write_parquet_atomic  # noqa: E402
from curation.tokens import build_token_stream, train_tokenizer  # noqa: E402
from curation.tokens.tokenizer import parquet_files  # noqa: E402

DATA = os.path.join(ROOT, "..", "shared", "data", "corpora")




def real_texts() -> list[str]:
    """Documents from the shared real samples (jsonl 'text' fields, plain-text files cut at blank lines)."""
    import zstandard

    texts: list[str] = []

    def jsonl(f) -> None:
        for line in f:
            if line.strip():
                t = json.loads(line).get("text")
                if isinstance(t, str) and t:
                    texts.append(t)

    for p in sorted(glob.glob(os.path.join(DATA, "c4", "*.json.gz"))):
        with gzip.open(p, "rt", encoding="utf-8") as f:
            jsonl(f)
    for p in sorted(glob.glob(os.path.join(DATA, "redpajama", "*.jsonl"))):
        with open(p, encoding="utf-8") as f:
            jsonl(f)
    for p in sorted(glob.glob(os.path.join(DATA, "pile", "*.jsonl.zst"))):
        with open(p, "rb") as fh, zstandard.ZstdDecompressor().stream_reader(fh) as r:
            jsonl(io.TextIOWrapper(r, encoding="utf-8"))
    for p in sorted(glob.glob(os.path.join(DATA, "text", "**", "*.txt"), recursive=True)):
        raw = open(p, encoding="utf-8", errors="replace").read()
        block: list[str] = []
        for para in raw.split("\n\n"):
            block.append(para)
            if sum(map(len, block)) > 3000:
                texts.append("\n\n".join(block))
                block = []
        if block:
            texts.append("\n\n".join(block))
    return texts


def write_corpus(root: str, target_mb: float, docs_per_shard: int, seed: int = 0) -> tuple[int, int]:
    pool = real_texts()
    if not pool:
        raise SystemExit(f"no real text found under {DATA}")
    rng = random.Random(seed)
    docs, size = [], 0
    while size < target_mb * 1e6:
        order = list(range(len(pool)))
        rng.shuffle(order)
        for i in order:
            docs.append(pool[i])
            size += len(pool[i].encode("utf-8"))
            if size >= target_mb * 1e6:
                break
    for s in range(0, len(docs), docs_per_shard):
        chunk = docs[s : s + docs_per_shard]
        t = docs_table([f"bench/{s + i}" for i in range(len(chunk))], chunk, "bench")
        write_parquet_atomic(os.path.join(root, "data", f"{s // docs_per_shard:05d}.parquet"), t)
    write_json_atomic(os.path.join(root, "run.json"), {"recipe_hash": "bench"})
    return len(docs), size


def all_texts(run: str) -> list[str]:
    import pyarrow.parquet as pq

    out: list[str] = []
    for f in parquet_files([run]):
        out.extend(pq.read_table(f, columns=["text"]).column("text").to_pylist())
    return out


def raw_sentencepiece(model: str, texts: list[str], batch: int = 1024) -> tuple[float, float, int]:
    """(wall s, CPU s, tokens) of encoding ``texts`` in batches with one thread."""
    sp = spm.SentencePieceProcessor(model_file=model)
    t0, c0 = time.perf_counter(), time.process_time()
    n = 0
    for i in range(0, len(texts), batch):
        n += sum(len(x) for x in sp.encode(texts[i : i + batch], num_threads=1))
    return time.perf_counter() - t0, time.process_time() - c0, n


def hf_tokenizers(texts: list[str], sample: list[str], vocab: int, batch: int = 1024) -> tuple[float, int, str]:
    """(CPU s, tokens, version) of encode_batch over ``texts`` with a BPE trained on ``sample``."""
    import tokenizers
    from tokenizers import SentencePieceBPETokenizer

    tok = SentencePieceBPETokenizer()
    tok.train_from_iterator(sample, vocab_size=vocab, show_progress=False)
    c0 = time.process_time()
    n = 0
    for i in range(0, len(texts), batch):
        n += sum(len(e.ids) for e in tok.encode_batch(texts[i : i + batch]))
    return time.process_time() - c0, n, tokenizers.__version__


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small input, < 60 s")
    ap.add_argument("--mb", type=float, default=None, help="MB of text (default 48, quick 3)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to time (1 2)")
    ap.add_argument("--vocab-size", type=int, default=32000, help="tokenizer vocabulary (32000)")
    ap.add_argument("--seq-len", type=int, default=2048, help="window length - 1 (2048)")
    ap.add_argument("--out", default=None,
                    help="result JSON (default bench/results/tokens.json, or tokens.quick.json with --quick)")
    args = ap.parse_args()
    mb = args.mb or (3.0 if args.quick else 48.0)
    cmd = "python bench/tokens.py" + (" --quick" if args.quick else "")
    tmp = tempfile.mkdtemp(prefix="bench-tokens-")
    run = os.path.join(tmp, "run")
    ndocs, nbytes = write_corpus(run, mb, docs_per_shard=300 if args.quick else 1000)
    shards = len(parquet_files([run]))
    print(f"corpus: {ndocs} docs, {nbytes / 1e6:.1f} MB, {shards} shards in {run}")

    t0 = time.perf_counter()
    sample_docs = 1000 if args.quick else 8000
    model = train_tokenizer([run], os.path.join(tmp, "tok", "spm"), vocab_size=args.vocab_size, sample_docs=sample_docs)
    vocab = spm.SentencePieceProcessor(model_file=model).vocab_size()
    print(f"tokenizer: {vocab} pieces (requested {args.vocab_size}) in {time.perf_counter() - t0:.1f}s")

    from curation.ray_utils import init_ray

    init_ray(num_workers=max(args.workers))
    warm = os.path.join(tmp, "warm")
    # warm-up: every worker process imports the modules and runs each pass once before the timed builds
    warm_files = parquet_files([run])[: max(args.workers)]
    build_token_stream(warm_files, warm, model, seq_len=args.seq_len, num_workers=max(args.workers), num_shards=2,
                       executor="ray")

    texts = all_texts(run)

    def raw(procs: int = 1) -> tuple[float, float, int]:
        """Raw sentencepiece in ``procs`` processes at once (texts split between them), one thread each:
        (tokens per CPU-s, tokens per wall-s per process, tokens); printed."""
        if procs == 1:
            wall_s, cpu_s, n = raw_sentencepiece(model, texts)
        else:
            parts = [texts[i::procs] for i in range(procs)]
            t0 = time.perf_counter()
            pool = multiprocessing.get_context("fork").Pool(procs)
            res = pool.starmap(raw_sentencepiece, [(model, p) for p in parts])
            pool.close()  # close + join, not terminate: no SIGTERM to the workers
            pool.join()
            wall_s = (time.perf_counter() - t0) * procs
            cpu_s, n = sum(r[1] for r in res), sum(r[2] for r in res)
        print(
            f"  raw sentencepiece encode ({procs} process(es), 1 thread each): {n / cpu_s / 1e6:.3f} M tokens per "
            f"CPU-s, {n / wall_s / 1e6:.3f} M tokens/s wall per process ({nbytes / cpu_s / 1e6:.2f} MB per CPU-s)"
        )
        return n / cpu_s, n / wall_s, n

    # The machine is shared: the reference runs right before and after each build, at the build's
    # parallelism (w processes for w workers), and the two are averaged.
    raw_tokens = 0
    ref_name = f"sentencepiece {spm.__version__} encode, 1 thread per process, texts already in memory"
    inp = f"{ndocs} real docs ({nbytes / 1e6:.1f} MB, {shards} parquet shards), vocab {vocab}, seq_len {args.seq_len}"
    common = {"input": inp, "machine": machine(), "command": cmd, "commit": commit()}
    results = []
    ours_cpu_tps = None
    for w in args.workers:
        out = os.path.join(tmp, f"out{w}")
        load = os.getloadavg()[0]

        before = raw(w)
        raw_tokens = before[2]
        t0 = time.perf_counter()
        m = build_token_stream([run], out, model, seq_len=args.seq_len, seed=0, num_workers=w, executor="ray")
        wall = time.perf_counter() - t0
        doc_tokens = m["mix"]["sources"][0]["doc_tokens"]
        assert doc_tokens == raw_tokens + ndocs, (doc_tokens, raw_tokens, ndocs)  # the same tokens, plus one EOS each
        build = json.load(open(os.path.join(out, "build.json")))
        cpu_s = sum(build["task_cpu_s"].values()) + build["driver_cpu_s"]
        cpu_tps, wall_tps = doc_tokens / cpu_s, doc_tokens / wall / w
        after = raw(w)
        raw_cpu_tps, raw_wall_tps = (before[0] + after[0]) / 2, (before[1] + after[1]) / 2
        passes = {k: round(v, 2) for k, v in build["timings"].items()}
        task_cpu = {k: round(v, 2) for k, v in build["task_cpu_s"].items()}
        print(
            f"ours, {w} worker(s): {cpu_tps / 1e6:.3f} M tokens per CPU-s (ratio {cpu_tps / raw_cpu_tps:.2f}); "
            f"wall {wall:.2f}s = {wall_tps / 1e6:.3f} M tokens/s per core (ratio {wall_tps / raw_wall_tps:.2f}); "
            f"load avg {load:.1f}; wall by pass {passes}; task CPU s {task_cpu}, driver {build['driver_cpu_s']:.2f}"
        )
        ours_cpu_tps = ours_cpu_tps or cpu_tps
        results.append(
            {
                "name": f"tokens_build_per_cpu_second_vs_raw_sentencepiece_{w}w",
                "metric": "tokens per CPU-second",
                "ours": round(cpu_tps),
                "reference": round(raw_cpu_tps),
                "reference_name": ref_name,
                "ratio": round(cpu_tps / raw_cpu_tps, 3),
                "target": 0.8,
                **common,
                "note": f"end to end (parquet read, tokenise, pack, scatter, shuffle, Arrow write) with {w} Ray "
                f"worker(s): CPU of all tasks (whole worker processes, Ray's threads in them included) plus "
                f"the driver; Ray's daemons excluded; task CPU s {task_cpu}; reference = mean of runs right "
                f"before and after the build, in {w} process(es) at once",
            }
        )
        results.append(
            {
                "name": f"tokens_build_wall_per_core_vs_raw_sentencepiece_{w}w",
                "metric": "tokens/s per core (wall)",
                "ours": round(wall_tps),
                "reference": round(raw_wall_tps),
                "reference_name": ref_name,
                "ratio": round(wall_tps / raw_wall_tps, 3),
                "target": 0.8,
                **common,
                "note": f"{w} Ray worker(s), wall {wall:.2f}s, by pass {passes}; shared machine, load average "
                f"{load:.1f} at the start (wall numbers move with other users' load; the CPU-second ratio does not)",
            }
        )

    try:
        sample = texts[:: max(1, len(texts) // sample_docs)]
        hf_cpu, hf_tokens, hf_ver = hf_tokenizers(texts, sample, vocab)
        hf_bps = nbytes / hf_cpu
        assert ours_cpu_tps is not None
        ours_bps = ours_cpu_tps * nbytes / (raw_tokens + ndocs)
        print(f"HF tokenizers encode_batch (1 thread): {hf_tokens / hf_cpu / 1e6:.3f} M tokens per CPU-s "
              f"({hf_bps / 1e6:.2f} MB per CPU-s; ours {ours_bps / 1e6:.2f})")  # fmt: skip
        results.append(
            {
                "name": "tokens_build_per_cpu_second_vs_hf_tokenizers",
                "metric": "bytes of text per CPU-second",
                "ours": round(ours_bps),
                "reference": round(hf_bps),
                "reference_name": f"HF tokenizers {hf_ver} SentencePieceBPETokenizer.encode_batch, RAYON_NUM_THREADS=1",
                "ratio": round(ours_bps / hf_bps, 3),
                "target": None,
                **common,
                "note": f"reference only: a different BPE of the same size ({hf_tokens} vs {raw_tokens} tokens), "
                "so compared in bytes of text; ours = the end-to-end build above",
            }
        )
    except ImportError:
        print("HF tokenizers not installed: skipped")

    for r in results:
        r["met"] = None if r["target"] is None else bool(r["ratio"] >= r["target"])
    save(results, "tokens", args)
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
