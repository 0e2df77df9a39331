#!/usr/bin/env python
"""Memory and time as the corpus grows: the baseline's dedup block and a top-fraction selection at
N and 10·N documents, and our fuzzy dedup against datatrove's 4-stage MinHash (issue 11).

    python bench/scale.py            # full: N = 100,000 and 1,000,000 documents (about an hour on 2 cores)
    python bench/scale.py --quick    # N = 1,000 and 10,000 (about a minute)
    python bench/scale.py --part storage   # only the object and request rows (issue 19), kept beside the others

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
| objects_per_1k_shards | objects a run keeps per 1,000 shards at N / the same at 10·N shards | >= 0.8 |
| rerun_requests_per_1k_items | store requests of a finished pass's rerun per 1,000 items at N / at 10·N | >= 0.8 |

The last two (targets fixed in issue 19 before measuring) ask whether storage grows with the work, not
with shards x partitions: objects at rest in the run folder after the same recipe over N and 10·N
shards of the same size and the same flags, counted by listing the folder, with the objects written and
the requests made through ``curation.storage`` per stage (from passes.json); and the requests a rerun of
a finished pass of N and 10·N items (each with an input and an output) makes to an S3-compatible server
(moto's, on 127.0.0.1, counted by the server: tests/s3server.py).

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
           "dedup_time_vs_datatrove": 3.0, "objects_per_1k_shards": 0.8, "rerun_requests_per_1k_items": 0.8}
STORAGE_ROWS = ("objects_per_1k_shards", "rerun_requests_per_1k_items")
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


# --------------------------------------------------------------------------- objects and requests (issue 19)


def block_recipe() -> list:
    """The recipe of the scale rows: exact (text, URL), MinHash, global BFF, fastText score, top 10%."""
    from filters.dedup import BloomDedup, ExactDedup, MinHashDedup
    from filters.quality import QualityScorer, TopFractionSelect, default_model

    model = default_model(os.path.join(tempfile.gettempdir(), "scale_bench_quality"))
    return [ExactDedup(key="text"), ExactDedup(key="url"), MinHashDedup(measure_curve=False), BloomDedup(),
            QualityScorer(model), TopFractionSelect(0.1, plot=False)]


def _area(rel: str) -> str:
    """Where an object of a run lives: the top folder, a global stage's folder, or the run's summary files."""
    parts = rel.split("/")
    if parts[0] == "global" and len(parts) > 2:
        return "/".join(parts[:2])
    return parts[0] if len(parts) > 1 else "summary files"


def per_stage(passes: list[dict[str, Any]], phases: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Objects written and requests (items' and driver's, through curation.storage) per stage: a global
    stage's fit passes come before the phase pass that applies it; ``p<k>`` applies phase k."""
    first_stage = {f"p{ph['index']}": ph["stages"][0] if ph["stages"] else "read" for ph in phases}
    out: dict[str, dict[str, Any]] = {}
    pending: list[dict[str, Any]] = []
    for p in passes:
        if p["pass"] in first_stage:
            stage = first_stage[p["pass"]]
            for q in pending:
                _add(out.setdefault(f"{stage} (fit)", {}), q)
            pending = []
            _add(out.setdefault(f"apply phase {p['pass']}", {}), p)
        else:
            pending.append(p)
    return out


def _add(acc: dict[str, Any], p: dict[str, Any]) -> None:
    acc["items"] = acc.get("items", 0) + p["items"]
    acc["objects_written"] = acc.get("objects_written", 0) + p.get("objects_written", 0)
    for side in ("driver_requests", "item_requests"):
        for k, v in p.get(side, {}).items():
            acc.setdefault(side, {})[k] = acc.setdefault(side, {}).get(k, 0) + v


def objects_of_run(paths: list[str], out: str) -> dict[str, Any]:
    """The block recipe in this process over ``paths``; the objects the run keeps and what each stage wrote."""
    from curation import storage
    from curation.runner import InputSpec, RunConfig, Runner

    cfg = RunConfig(output_dir=out, num_workers=1, progress=False, report=False, executor="local",
                    memory_per_worker=1 << 30)
    t0 = time.perf_counter()
    res = Runner(block_recipe(), [InputSpec(p, "parquet", "demo") for p in paths], cfg).run()
    secs = time.perf_counter() - t0
    objects = storage.list_dir(out, recursive=True)
    areas: dict[str, int] = {}
    for path in objects:
        a = _area(path[len(out.rstrip("/")) + 1:])
        areas[a] = areas.get(a, 0) + 1
    passes = json.load(open(os.path.join(out, "passes.json")))
    run = json.load(open(os.path.join(out, "run.json")))
    partitions = {g["name"]: g["summary"].get("partitions") for g in res.stats["global"]}
    return {"shards": len(paths), "objects": len(objects), "by_area": dict(sorted(areas.items())),
            "objects_written": passes["objects_written"], "per_stage": per_stage(passes["passes"], run["phases"]),
            "partitions": partitions, "seconds": secs, "ok": res.ok}


def rerun_requests(n_items: int, server: Any, tmp: str) -> dict[str, Any]:
    """A pass of ``n_items`` (each reads one of 10 input objects and writes one output object) on the S3
    server, then its rerun: the requests the rerun makes, counted by the server."""
    from curation import storage
    from curation.passes import ExecConfig, Executor, Item

    root = f"s3://bench/p{n_items}"
    storage.fs_path(root)[0].pipe({f"bench/p{n_items}/in/{j:02d}": b"x" for j in range(10)})
    items = [Item(f"k{i:06d}", (i, f"{root}/out/{i:06d}.json"), inputs=(f"{root}/in/{i % 10:02d}",),
                  outputs=(f"{root}/out/{i:06d}.json",)) for i in range(n_items)]
    ex = Executor(ExecConfig(mode="local", progress=False))
    t0 = time.perf_counter()
    first = ex.run("rerun", write_square, items, marker_dir=f"{root}/_passes/rerun")
    first_s = time.perf_counter() - t0
    server.reset()
    t0 = time.perf_counter()
    again = ex.run("rerun", write_square, items, marker_dir=f"{root}/_passes/rerun")
    secs = time.perf_counter() - t0
    counts = dict(server.counts())
    assert again.ran == [] and len(again.skipped) == n_items and len(first.ran) == n_items
    return {"items": n_items, "requests": sum(counts.values()), "by_operation": counts, "rerun_seconds": secs,
            "first_run_seconds": first_s}


def write_square(i: int, out: str) -> int:
    from curation import storage

    storage.write_bytes_atomic(out, json.dumps({"y": i * i}).encode())
    return i * i


def storage_rows(args: Any, tmp: str) -> list[dict[str, Any]]:
    from dedup import demo_shards

    # objects: the same shard size and flags at N and 10N shards
    n_shards = 4 if args.quick else 20
    docs = 25 if args.quick else 100
    small = demo_shards(n_shards * docs, docs_per_shard=docs)
    large = demo_shards(10 * n_shards * docs, docs_per_shard=docs)
    a = objects_of_run(small, os.path.join(tmp, "objects_n"))
    b = objects_of_run(large, os.path.join(tmp, "objects_n10"))
    for name, r in (("N", a), ("10N", b)):
        print(f"objects {name}: {r['shards']} shards -> {r['objects']} objects at rest "
              f"({1000 * r['objects'] / r['shards']:,.0f} per 1k shards), {r['objects_written']} written; "
              f"partitions {r['partitions']}", flush=True)
    inp = (f"demo pool in parquet shards of {docs} documents, {n_shards} and {10 * n_shards} shards; exact (text, "
           "url) + MinHash + global BFF + fastText score + top 10%, in-process, --memory-per-worker 1G; objects "
           "at rest in the run folder (listed)")
    rows = [compare("objects_per_1k_shards", "objects at rest per 1,000 shards", 1000 * b["objects"] / b["shards"],
                    1000 * a["objects"] / a["shards"], f"the same recipe over {n_shards} shards",
                    TARGETS["objects_per_1k_shards"], inp, kind="time", n={k: a[k] for k in a if k != "ok"},
                    n10={k: b[k] for k in b if k != "ok"},
                    note="ratio = objects per 1k shards at N / at 10N (not growing: >= 0.8)")]
    # requests of a rerun, on an S3-compatible server
    sys.path.insert(0, ROOT)
    from tests.s3server import S3Server

    n_items = 100 if args.quick else 1000
    with S3Server() as server:
        os.environ.update(server.env)
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()
        s3fs.S3FileSystem().mkdir("bench")
        x = rerun_requests(n_items, server, tmp)
        y = rerun_requests(10 * n_items, server, tmp)
    for r in (x, y):
        print(f"rerun of a finished {r['items']:,}-item pass: {r['requests']} requests {r['by_operation']} "
              f"({1000 * r['requests'] / r['items']:.1f} per 1k items) in {r['rerun_seconds']:.2f} s", flush=True)
    inp2 = (f"a pass of {n_items:,} and {10 * n_items:,} items on moto's S3 server (127.0.0.1), each reading one of "
            "10 input objects and writing one output object; the rerun's requests counted by the server")
    rows.append(compare("rerun_requests_per_1k_items", "requests per 1,000 items", 1000 * y["requests"] / y["items"],
                        1000 * x["requests"] / x["items"], f"the same pass at {n_items:,} items",
                        TARGETS["rerun_requests_per_1k_items"], inp2, kind="time", n=x, n10=y,
                        note="ratio = requests per 1k items at N / at 10N (O(1) + O(items / 1000): >= 0.8)"))
    return rows


def merge_rows(new: list[dict[str, Any]], args: Any) -> list[dict[str, Any]]:
    """The rows of the existing results file this run did not measure, then the new ones (each row keeps the
    commit that measured it)."""
    out = args.out or os.path.join(ROOT, "bench", "results", f"scale{'.quick' if args.quick else ''}.json")
    names = {r["name"] for r in new}
    try:
        old = [r for r in json.load(open(out)) if r["name"] not in names]
    except (FileNotFoundError, ValueError):
        old = []
    order = [*TARGETS]
    return sorted(old + new, key=lambda r: order.index(r["name"]) if r["name"] in order else len(order))


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        return child_main(argv[1:], {"ours": child_ours, "datatrove": child_datatrove})
    p = bench_parser(__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=None, help="the smaller size N (default 100000; 1000 with --quick)")
    p.add_argument("--workers", type=int, default=2, help="tasks in flight (default %(default)s)")
    p.add_argument("--keep", action="store_true", help="keep the run directories")
    p.add_argument("--part", choices=("all", "scale", "storage"), default="all",
                   help="scale: the memory and time rows; storage: the object and request rows; all: both "
                   "(default). A part run replaces its own rows in the results file and keeps the others")
    args = p.parse_args(argv)
    from dedup import demo_shards

    if args.part == "storage":
        tmp = tempfile.mkdtemp(prefix="scale_bench_")
        try:
            rows = storage_rows(args, tmp)
        finally:
            if not args.keep:
                shutil.rmtree(tmp, ignore_errors=True)
        save(merge_rows(rows, args), "scale", args)
        return 0

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
        if args.part == "all":
            rows += storage_rows(args, tmp)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    save(merge_rows(rows, args), "scale", args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
