#!/usr/bin/env python
"""Reader throughput per format vs the raw library read, runner overhead, and 1 -> 2 worker scaling.

    python bench/runner.py            # full: 200,000 demo documents (about 3-4 minutes on 2 cores)
    python bench/runner.py --quick    # 20,000 documents (under a minute)

Questions and targets (fixed before measuring; a missed target stays in the JSON as missed):
1. each native reader (refinedweb parquet, pile jsonl.zst, redpajama jsonl, dolma jsonl.gz)
   vs the raw library read of the same files: pyarrow.parquet ``iter_batches`` for parquet;
   zstandard / gzip / open with one ``orjson.loads`` per line for JSON lines. CPU seconds of
   this process, both sides alternating, equal repetitions; ratio = raw time / our time,
   target >= 0.8 for each format (issue 12);
2. runner overhead: a no-op recipe through the Ray runner (1 worker; read, account, write
   parquet) vs reading alone in one process; target: time(reading) / time(runner) >= 0.9;
   and vs reading plus the same parquet writes in one process (target 0.9);
3. scaling: the same recipe with 2 workers vs 1 worker; target >= 1.7x on 2 cores.
The runner rows are wall seconds (the work runs in Ray workers); Ray's start-up is excluded
(it is paid once per run, not per document).
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import orjson  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import zstandard  # noqa: E402
from _common import CLOCKS, Timing, bench_parser, compare, measure, save  # noqa: E402

from curation.readers import get_reader  # noqa: E402

READER_TARGET = 0.8  # issue 12: every native reader >= 0.8x the raw library read
RUNNER_TARGET = 0.9  # issue 2: reading alone / runner no-op
SCALING_TARGET = 1.7


def raw_read(path: str) -> int:
    """The plain library read: rows decoded, nothing else."""
    if path.endswith(".parquet"):
        n = 0
        for b in pq.ParquetFile(path).iter_batches(batch_size=2048):
            n += b.num_rows
        return n
    if path.endswith(".zst"):
        with open(path, "rb") as f, zstandard.ZstdDecompressor().stream_reader(f) as r:
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


def measure_alternating(a: Callable[[], object], b: Callable[[], object], reps: int,
                        clock: str = "cpu") -> tuple[Timing, Timing]:
    """Time ``a`` and ``b`` ``reps`` times each, alternating (one untimed warm-up each), so that a
    change in the machine's load falls on both sides alike."""
    tick = CLOCKS[clock]
    ta, tb = Timing(clock=clock), Timing(clock=clock)
    a(), b()
    for _ in range(reps):
        for fn, t in ((a, ta), (b, tb)):
            t0 = tick()
            fn()
            t.values.append(tick() - t0)
    return ta, tb


def main() -> None:
    ap = bench_parser(__doc__)
    for action in ap._actions:  # --reps counts the reader rows here; the runner rows have their own
        if action.dest == "reps":
            action.help = "repetitions of the reader rows, equal on both sides (default 15; 9 with --quick)"
    ap.add_argument("--docs", type=int, default=None, help="demo pool size (default 200,000; 20,000 with --quick)")
    ap.add_argument("--runner-reps", type=int, default=None,
                    help="repetitions of the runner rows, equal on both sides (default 3; 1 with --quick)")
    args = ap.parse_args()
    n_docs = args.docs or (20_000 if args.quick else 200_000)
    reps = args.reps or (9 if args.quick else 15)
    runner_reps = args.runner_reps or (1 if args.quick else 3)

    from demopool import generate_pool

    work = tempfile.mkdtemp(prefix="bench_runner_")
    rows = []
    try:
        pool = os.path.join(work, "pool")
        t0 = time.perf_counter()
        manifest = generate_pool(pool, n_docs=n_docs, seed=0)
        # the four native JSON-lines / parquet formats (the demo's WARC shard is bench/extract.py's question)
        files = sorted(os.path.join(pool, f) for name, fmt in manifest["formats"].items() if name != "warc"
                       for f in fmt["files"])
        by_fmt: dict[str, list[str]] = {}
        for f in files:
            by_fmt.setdefault(get_reader(f).format, []).append(f)
        mb = sum(os.path.getsize(f) for f in files) / 1e6
        print(f"pool: {n_docs:,} docs in {len(files)} files, {mb:.1f} MB ({time.perf_counter() - t0:.1f} s)")
        for fmt, fs in sorted(by_fmt.items()):
            n = sum(raw_read(f) for f in fs)
            assert n == sum(our_read(f) for f in fs), f"{fmt}: records read differ"
            t_raw, t_ours = measure_alternating(lambda fs=fs: [raw_read(f) for f in fs],
                                                lambda fs=fs: [our_read(f) for f in fs], reps)
            ref = ("pyarrow.parquet iter_batches" if fs[0].endswith(".parquet") else
                   "zstandard stream_reader + io.BufferedReader lines + orjson.loads" if fs[0].endswith(".zst") else
                   "gzip.open lines + orjson.loads" if fs[0].endswith(".gz") else "open lines + orjson.loads")
            rows.append(compare(f"reader_{fmt}", "CPU seconds to read the files (one process)", t_ours, t_raw, ref,
                                target=READER_TARGET, input=f"{len(fs)} demo-pool files, {n:,} records",
                                kind="time", records=n))
            print(f"{fmt:<12} ours {t_ours.median * 1e3:8.1f} ms  raw {t_raw.median * 1e3:8.1f} ms  "
                  f"ratio {rows[-1]['ratio']:.2f}")

        t_read = measure(lambda: [our_read(f) for f in files], runner_reps, clock="wall", warmup=1)
        rw = os.path.join(work, "rw.parquet")
        t_read_write = measure(lambda: [our_read_write(f, rw) for f in files], runner_reps, clock="wall", warmup=1)
        from curation.ray_utils import init_ray
        from curation.runner import InputSpec, RunConfig, Runner

        init_ray(num_workers=2)
        specs = [InputSpec(f) for f in files]

        def run(workers: int) -> None:
            out = os.path.join(work, f"run{workers}")
            shutil.rmtree(out, ignore_errors=True)
            cfg = RunConfig(output_dir=out, num_workers=workers, progress=False, report=False, resume=False)
            Runner([], specs, cfg).run()

        run(2)  # start both worker processes before timing either side
        t1 = measure(lambda: run(1), runner_reps, clock="wall")
        t2 = measure(lambda: run(2), runner_reps, clock="wall")
        inp = f"demo pool, {n_docs:,} docs, {len(files)} shards (4 formats)"
        rows.append(compare("runner_overhead", "wall seconds, no-op recipe (read + account + write parquet), 1 worker",
                            t1, t_read, "readers alone, one process", target=RUNNER_TARGET, input=inp))
        rows.append(compare("runner_overhead_vs_read_write",
                            "wall seconds, no-op recipe vs the same reads and parquet writes in one process",
                            t1, t_read_write, "readers + pyarrow ParquetWriter", target=RUNNER_TARGET, input=inp))
        rows.append(compare("runner_scaling", "wall seconds, no-op recipe", t2, t1, "same run with 1 worker",
                            target=SCALING_TARGET, input=inp))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    save(rows, "runner", args)


if __name__ == "__main__":
    main()
