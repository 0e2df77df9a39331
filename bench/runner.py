#!/usr/bin/env python
"""Reader throughput per format vs the raw library read, runner overhead, and 1 -> 2 worker scaling.

    python bench/runner.py            # full: ~200k demo documents
    python bench/runner.py --quick    # < 60 s

Questions and targets (issue 2):
1. each reader vs the plain library read of the same files (pyarrow.parquet for parquet;
   zstandard / gzip + orjson for jsonl): throughput ratio, reported (no target);
2. runner overhead: a no-op recipe through the Ray runner (1 worker; read, account, write
   parquet) vs reading alone in one process; target: time(reading) / time(runner) >= 0.9;
3. scaling: the same recipe with 2 workers vs 1 worker; target >= 1.7x on 2 cores.
Ray's start-up is excluded (it is paid once per run, not per document).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import orjson  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import zstandard  # noqa: E402
from _common import commit, machine  # noqa: E402

from curation.readers import get_reader  # noqa: E402


def raw_read(path: str) -> int:
    """The plain library read: rows decoded, nothing else."""
    if path.endswith(".parquet"):
        n = 0
        for b in pq.ParquetFile(path).iter_batches(batch_size=2048):
            n += b.num_rows
        return n
    if path.endswith(".zst"):
        with open(path, "rb") as f, zstandard.ZstdDecompressor().stream_reader(f) as r:
            import io

            return sum(1 for line in io.BufferedReader(r) if line.strip() and orjson.loads(line) is not None)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        return sum(1 for line in f if line.strip() and orjson.loads(line) is not None)


def our_read(path: str) -> int:
    n = 0
    for docs, q in get_reader(path).read(path):
        n += docs.num_rows + q.num_rows
    return n


def our_read_write(path: str, out: str) -> int:
    """Reading plus writing the documents to zstd parquet: the least a no-op recipe must do."""
    writer, n = None, 0
    for docs, q in get_reader(path).read(path):
        if writer is None:
            writer = pq.ParquetWriter(out, docs.schema, compression="zstd", use_dictionary=["source"])
        writer.write_table(docs)
        n += docs.num_rows + q.num_rows
    if writer is not None:
        writer.close()
    return n


def best_of(fn, repeat: int, clock=time.perf_counter) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = clock()
        fn()
        best = min(best, clock() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small pool, one repeat (< 60 s)")
    ap.add_argument("--docs", type=int, default=None, help="demo pool size (default 200,000; 20,000 with --quick)")
    ap.add_argument("--repeat", type=int, default=None, help="timing repeats, best kept (default 3; 1 with --quick)")
    ap.add_argument("--out", default="bench/results/runner.json", help="where to write the JSON results")
    args = ap.parse_args()
    n_docs = args.docs or (20_000 if args.quick else 200_000)
    repeat = args.repeat or (1 if args.quick else 3)

    from curation.demo import generate_pool
    from curation.runner import InputSpec, RunConfig, Runner

    work = tempfile.mkdtemp(prefix="bench_runner_")
    try:
        pool = os.path.join(work, "pool")
        manifest = generate_pool(pool, n_docs=n_docs, seed=0)
        files = sorted(os.path.join(pool, f) for fmt in manifest["formats"].values() for f in fmt["files"])
        results = []
        by_fmt: dict[str, list[str]] = {}
        for f in files:
            by_fmt.setdefault(get_reader(f).format, []).append(f)
        print(f"pool: {n_docs:,} docs in {len(files)} files, {sum(os.path.getsize(f) for f in files) / 1e6:.1f} MB")
        print(f"{'format':<12}{'ours docs/cpu-s':>16}{'raw docs/cpu-s':>16}{'ratio':>8}")
        for fmt, fs in sorted(by_fmt.items()):
            n = sum(raw_read(f) for f in fs)
            # in-process reads are timed in CPU seconds: other jobs share this machine
            t_raw = best_of(lambda fs=fs: [raw_read(f) for f in fs], repeat, time.process_time)
            t_ours = best_of(lambda fs=fs: [our_read(f) for f in fs], repeat, time.process_time)
            print(f"{fmt:<12}{n / t_ours:>16,.0f}{n / t_raw:>16,.0f}{t_raw / t_ours:>8.2f}")
            ref = "pyarrow.parquet iter_batches" if fs[0].endswith(".parquet") else (
                "zstandard stream + orjson" if fs[0].endswith(".zst") else "gzip/open + orjson")
            results.append({"name": f"reader_{fmt}", "metric": "docs per CPU-second (one process)", "ours": n / t_ours,
                            "reference": n / t_raw, "reference_name": ref, "ratio": t_raw / t_ours, "target": None,
                            "input": f"{len(fs)} demo-pool files, {n:,} records"})

        t_read = best_of(lambda: [our_read(f) for f in files], repeat)
        rw = os.path.join(work, "rw.parquet")
        t_read_write = best_of(lambda: [our_read_write(f, rw) for f in files], repeat)
        from curation.ray_utils import init_ray

        init_ray(num_workers=2)
        specs = [InputSpec(f) for f in files]

        def run(workers: int) -> float:
            out = os.path.join(work, f"run{workers}")
            shutil.rmtree(out, ignore_errors=True)
            cfg = RunConfig(output_dir=out, num_workers=workers, progress=False, report=False, resume=False)
            t0 = time.perf_counter()
            Runner([], specs, cfg).run()
            return time.perf_counter() - t0

        run(2)  # warm the worker processes
        t1 = min(run(1) for _ in range(repeat))
        t2 = min(run(2) for _ in range(repeat))
        print(f"reading alone (1 process): {t_read:.2f}s; reading + writing parquet: {t_read_write:.2f}s; "
              f"runner no-op, 1 worker: {t1:.2f}s; 2 workers: {t2:.2f}s")
        inp = f"demo pool, {n_docs:,} docs, {len(files)} shards (4 formats)"
        results.append({"name": "runner_overhead", "metric": "seconds, no-op recipe (read + account + write parquet)",
                        "ours": t1, "reference": t_read, "reference_name": "readers alone, one process",
                        "ratio": t_read / t1, "target": 0.9, "input": inp})
        results.append({"name": "runner_overhead_vs_read_write",
                        "metric": "seconds, no-op recipe vs the same reads and parquet writes in one process",
                        "ours": t1, "reference": t_read_write, "reference_name": "readers + pyarrow ParquetWriter",
                        "ratio": t_read_write / t1, "target": 0.9, "input": inp})
        results.append({"name": "runner_scaling", "metric": "seconds, no-op recipe", "ours": t2, "reference": t1,
                        "reference_name": "same run with 1 worker", "ratio": t1 / t2, "target": 1.7, "input": inp})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    cmd = "python bench/runner.py" + (" --quick" if args.quick else "")
    for r in results:
        r.update(machine=machine(), command=cmd, commit=commit())
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
