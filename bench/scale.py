#!/usr/bin/env python
"""Memory and time as the corpus grows: the baseline's dedup block and a top-fraction selection at
N and 10·N documents, and our fuzzy dedup against datatrove's 4-stage MinHash (issue 11).

    python bench/scale.py            # full: N = 100,000 and 1,000,000 documents (about an hour on 2 cores)
    python bench/scale.py --quick    # N = 1,000 and 10,000 (about a minute)

Every run is a separate process whose whole tree (driver, Ray workers, Ray's servers; datatrove's
pool workers) is sampled for its unique set size (bench/_procmem.py): the "largest process" is the
largest driver or task process; Ray's servers are reported apart, as Ray's fixed cost. Times exclude
Ray's start-up (measured and reported), which a run pays once.

Rows (ratios higher is better; targets fixed in issue 11 before measuring):

| row | ratio | target |
| scale_memory_per_process | largest process at N / largest process at 10·N | >= 0.8 |
| scale_time | 10 / (time at 10·N / time at N) | >= 0.9 |
| dedup_memory_vs_datatrove | datatrove 4-stage MinHash's largest process / ours, same docs | >= 1.0 |
| dedup_time_vs_datatrove | datatrove's time / ours, same docs | >= 3.0 |

The recipe at both sizes: exact (text, URL), MinHash-LSH, global BFF, fastText scoring with the
offline default model and the exact top-10% selection, with the same --memory-per-worker; the
comparison with datatrove runs MinHash alone on both sides (read parquet, signatures, buckets,
clusters, filter, write parquet).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from _common import bench_parser, compare, save  # noqa: E402
from _procmem import child_main  # noqa: E402
from _procmem import run_child as _run_child  # noqa: E402

TARGETS = {"scale_memory_per_process": 0.8, "scale_time": 0.9, "dedup_memory_vs_datatrove": 1.0,
           "dedup_time_vs_datatrove": 3.0}
MEMORY_PER_WORKER = "1G"


# --------------------------------------------------------------------------- child processes


def child_ours(paths: list[str], out: str, workers: int, recipe: str) -> dict[str, Any]:
    """Our recipe through the runner on Ray; returns the wall time without Ray's start-up."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    from curation.passes import ExecConfig, Executor
    from curation.runner import InputSpec, RunConfig, Runner
    from filters.dedup import BloomDedup, ExactDedup, MinHashDedup

    if recipe == "minhash":
        stages = [MinHashDedup(measure_curve=False)]
    else:
        from filters.quality import QualityScorer, TopFractionSelect, default_model

        model = default_model(os.path.join(tempfile.gettempdir(), "scale_bench_quality"))
        stages = [ExactDedup(key="text"), ExactDedup(key="url"), MinHashDedup(measure_curve=False), BloomDedup(),
                  QualityScorer(model), TopFractionSelect(0.1, plot=False)]
    from curation.cli import parse_size

    budget = parse_size(MEMORY_PER_WORKER)
    ex = Executor(ExecConfig(mode="ray", num_workers=workers, memory_per_worker=budget, progress=False))
    t0 = time.perf_counter()
    ex.ensure_ray()
    ray_s = time.perf_counter() - t0
    cfg = RunConfig(output_dir=out, num_workers=workers, progress=False, report=False, executor="ray",
                    memory_per_worker=budget)
    t1 = time.perf_counter()
    res = Runner(stages, [InputSpec(p, "parquet", "demo") for p in paths], cfg, executor=ex).run()
    secs = time.perf_counter() - t1
    kept = res.stats["totals"][res.stats["stages"][-1]["name"]]["kept"]
    timings = json.loads(open(os.path.join(out, "timings.json")).read())
    fits = {name: t["fit_seconds"] for name, t in timings["global"].items()}
    text_bytes = res.stats["totals"]["read"]["in_bytes"]
    return {"seconds": secs, "ray_start_s": ray_s, "kept": kept, "ok": res.ok, "passes": len(ex.log),
            "fit_seconds": fits, "stage_cpu_seconds": timings["stage_seconds"], "docs": len_docs(res),
            "text_bytes": text_bytes}


def len_docs(res: Any) -> int:
    return int(res.stats["totals"]["read"]["in"])


def child_datatrove(paths: list[str], out: str, workers: int) -> dict[str, Any]:
    from dedup import e2e_datatrove

    r = e2e_datatrove(paths, out, workers)
    return {"seconds": r["seconds"], "kept": r["kept"], "ok": True}


def run_child(kind: str, **spec: Any) -> dict[str, Any]:
    return _run_child(os.path.abspath(__file__), kind, spec, ROOT)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        return child_main(argv[1:], {"ours": child_ours, "datatrove": child_datatrove})
    p = bench_parser(__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=None, help="the smaller size N (default 100000; 1000 with --quick)")
    p.add_argument("--workers", type=int, default=2, help="tasks in flight (default %(default)s)")
    p.add_argument("--keep", action="store_true", help="keep the run directories")
    args = p.parse_args(argv)
    from dedup import demo_shards

    n = args.n or (1000 if args.quick else 100_000)
    per_shard = max(500, n // 4)
    small, large = demo_shards(n, docs_per_shard=per_shard), demo_shards(10 * n, docs_per_shard=per_shard)
    tmp = tempfile.mkdtemp(prefix="scale_bench_")
    rows: list[dict[str, Any]] = []
    try:
        a = run_child("ours", paths=small, out=os.path.join(tmp, "n"), workers=args.workers, recipe="block")
        b = run_child("ours", paths=large, out=os.path.join(tmp, "n10"), workers=args.workers, recipe="block")
        for name, r in (("N", a), ("10N", b)):
            print(f"ours {name}: {r['seconds']:.1f} s (+ Ray start {r['ray_start_s']:.1f} s), largest process "
                  f"{r['largest_ours_mib']:.0f} MiB ({r['largest_ours_process']}), Ray servers "
                  f"{r['ray_fixed_peak_mib']:.0f} MiB, tree {r['tree_peak_mib']:.0f} MiB", flush=True)
        inp = (f"demo pool, {n:,} and {10 * n:,} documents in parquet shards of {per_shard:,}; exact (text, url) + "
               f"MinHash + global BFF + fastText score + top 10%; {args.workers} workers, --memory-per-worker "
               f"{MEMORY_PER_WORKER}")
        detail = {"n": {k: a[k] for k in a if k != "passes"}, "n10": {k: b[k] for k in b if k != "passes"}}
        # memory: ratio = largest at N / largest at 10N (a "time"-kind row: ours = 10N, reference = N)
        rows.append(compare("scale_memory_per_process", "MiB (largest driver/task process, USS)",
                            b["largest_ours_mib"], a["largest_ours_mib"], f"the same recipe at N = {n:,}",
                            TARGETS["scale_memory_per_process"], inp, kind="time",
                            ray_fixed_mib={"N": a["ray_fixed_peak_mib"], "10N": b["ray_fixed_peak_mib"]}, **detail))
        rows.append(compare("scale_time", "seconds (without Ray start-up)", b["seconds"] / 10, a["seconds"],
                            f"the same recipe at N = {n:,}, time / 10", TARGETS["scale_time"], inp, kind="time",
                            note="ours = time at 10N / 10; ratio = 10 / (t(10N) / t(N))"))

        o = run_child("ours", paths=small, out=os.path.join(tmp, "mh"), workers=args.workers, recipe="minhash")
        d = run_child("datatrove", paths=small, out=os.path.join(tmp, "dt"), workers=args.workers)
        print(f"MinHash {n:,} docs: ours {o['seconds']:.1f} s, largest {o['largest_ours_mib']:.0f} MiB, kept "
              f"{o['kept']}; datatrove {d['seconds']:.1f} s, largest {d['largest_ours_mib']:.0f} MiB, kept "
              f"{d['kept']}", flush=True)
        inp2 = (f"demo pool, {n:,} documents, {len(small)} parquet shards; MinHash dedup (5-grams, 14x8) read -> "
                f"write parquet, {args.workers} workers; ours on Ray (start-up excluded: "
                f"{o['ray_start_s']:.1f} s), datatrove LocalPipelineExecutor")
        rows.append(compare("dedup_memory_vs_datatrove", "MiB (largest driver/task process, USS)",
                            o["largest_ours_mib"], d["largest_ours_mib"], "datatrove 4-stage MinHash",
                            TARGETS["dedup_memory_vs_datatrove"], inp2, kind="time",
                            ours_ray_fixed_mib=o["ray_fixed_peak_mib"], kept_ours=o["kept"], kept_datatrove=d["kept"]))
        rows.append(compare("dedup_time_vs_datatrove", "seconds", o["seconds"], d["seconds"],
                            "datatrove 4-stage MinHash", TARGETS["dedup_time_vs_datatrove"], inp2, kind="time",
                            ray_start_s=o["ray_start_s"]))
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    save(rows, "scale", args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
