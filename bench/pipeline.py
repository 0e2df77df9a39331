#!/usr/bin/env python
"""The whole baseline recipe end to end against datatrove's nearest pipeline, on the same pool.

    python bench/pipeline.py            # full: 200,000 demo documents (about 20 minutes on 2 cores)
    python bench/pipeline.py --quick    # 4,000 documents (about a minute)

Ours: pipelines/recipes.py's heuristics (DCLM's RefinedWeb reproduction with fastText language ID),
exact dedup (text and URL), MinHash dedup and fastText quality scoring with the offline default
classifier, through the runner on Ray (start-up included: it is part of a run).
datatrove: its filters with the same thresholds (URL, LanguageFilter on the same lid.176.ftz file,
Gopher repetition and quality, C4 lines, FineWeb; bench/heuristics.py's chain), its 4-stage MinHash
(signatures, buckets, clusters, filter; 5-grams, 14 x 8) and FastTextClassifierFilter with the same
quality model, on LocalPipelineExecutor. Both read the same parquet shards (id, text, url) and write
parquet (datatrove's last stage writes uncompressed JSON lines: its ParquetWriter rejects the score
metadata of its own classifier filter). Each side runs in its own process (tree sampled for memory,
bench/_procmem.py).

Row (target fixed in issue 12 before measuring): ``pipeline_vs_datatrove``, datatrove's time / ours,
>= 5, with MB/s per core (text MB / wall seconds / workers) and core-hours per TB for both sides.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from _common import bench_parser, compare, save  # noqa: E402
from _procmem import child_main  # noqa: E402
from _procmem import run_child as _run_child  # noqa: E402

TARGET = 5.0
CACHE = Path(os.environ.get("PIPELINE_BENCH_CACHE", "/tmp/pipeline_bench_cache"))


# --------------------------------------------------------------------------- the pool


def _write_shard(args: tuple[int, int, int, int, str]) -> tuple[str, int]:
    import pyarrow as pa

    from curation.storage import write_parquet_atomic
    from demopool import make_doc, page_meta

    seed, n_docs, start, stop, path = args
    ids, texts, urls = [], [], []
    for i in range(start, stop):
        d = make_doc(seed, i, n_docs)
        ids.append(f"demo/{i:08d}")
        texts.append(d.text)
        urls.append(page_meta(seed, d)[0])
    t = pa.table({"id": ids, "text": pa.array(texts, pa.large_string()), "url": urls})
    write_parquet_atomic(path, t)
    return path, sum(len(x.encode()) for x in texts)


def pool(n_docs: int, per_shard: int, seed: int = 0) -> tuple[list[str], float]:
    """The first ``n_docs`` demo documents with their URLs as parquet shards (cached); (paths, text MB)."""
    import multiprocessing as mp

    folder = CACHE / f"pool_{n_docs}_{per_shard}_{seed}"
    done = folder / "DONE.json"
    if done.exists():
        info = json.loads(done.read_text())
        return info["paths"], info["mb"]
    folder.mkdir(parents=True, exist_ok=True)
    bounds = list(range(0, n_docs, per_shard)) + [n_docs]
    jobs = [(seed, n_docs, a, b, str(folder / f"shard-{k:05d}.parquet"))
            for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))]
    with mp.get_context("spawn").Pool(2) as p:
        out = p.map(_write_shard, jobs)
    info = {"paths": [o[0] for o in out], "mb": sum(o[1] for o in out) / 1e6}
    done.write_text(json.dumps(info))
    return info["paths"], info["mb"]


# --------------------------------------------------------------------------- the two sides (child processes)


def child_ours(paths: list[str], out: str, workers: int, model: str) -> dict[str, Any]:
    import logging

    logging.basicConfig(level=logging.WARNING)
    from curation.runner import InputSpec, RunConfig, Runner
    from filters.quality import QualityScorer
    from pipelines.recipes import dedup_stages, heuristics_stages

    stages = heuristics_stages() + dedup_stages(("exact", "minhash")) + [QualityScorer(model)]
    t0 = time.perf_counter()
    cfg = RunConfig(output_dir=out, num_workers=workers, progress=False, report=False, executor="ray")
    res = Runner(stages, [InputSpec(p, "parquet", "demo") for p in paths], cfg).run()
    secs = time.perf_counter() - t0
    timings = json.loads(Path(out, "timings.json").read_text())
    last = res.stats["stages"][-1]["name"]
    return {"seconds": secs, "ok": res.ok, "kept": res.stats["totals"][last]["kept"],
            "stage_seconds": timings["stage_seconds"]}


def child_datatrove(paths: list[str], out: str, workers: int, model: str) -> dict[str, Any]:
    from datatrove.pipeline.filters import FastTextClassifierFilter
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import JsonlWriter, ParquetWriter
    from dedup import datatrove_minhash
    from heuristics import datatrove_chain

    t0 = time.perf_counter()
    w = Path(out)
    folder = os.path.dirname(paths[0])

    def reader(path: str, pattern: str) -> ParquetReader:
        return ParquetReader(path, glob_pattern=pattern, text_key="text", id_key="id")

    # stage 1: filters (the filtered documents written) + signatures; stage 4: dedup filter + quality scores
    # (every document scored, all kept: ours scores without a cut here). JSON lines, uncompressed: datatrove's
    # ParquetWriter rejects its own score metadata, whose keys come in prediction order (a cheaper output than
    # our zstd parquet: the comparison leans datatrove's way)
    datatrove_minhash(
        w, workers, len(paths),
        first=[reader(folder, "shard-*.parquet"), *datatrove_chain(langid=True), ParquetWriter(str(w / "filtered"))],
        reread=lambda: reader(str(w / "filtered"), "*.parquet"),
        last=[FastTextClassifierFilter(model, keep_labels=[("hq", 0.0)], newline_replacement=" "),
              JsonlWriter(str(w / "out"), compression=None)])
    kept = sum(sum(1 for _ in open(p)) for p in (w / "out").glob("*.jsonl"))
    return {"seconds": time.perf_counter() - t0, "ok": True, "kept": kept}


def run_child(kind: str, **spec: Any) -> dict[str, Any]:
    return _run_child(os.path.abspath(__file__), kind, spec, ROOT)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        return child_main(argv[1:], {"ours": child_ours, "datatrove": child_datatrove})
    p = bench_parser(__doc__.split("\n\n")[0])
    p.add_argument("--docs", type=int, default=None, help="pool size (default 200000; 4000 with --quick)")
    p.add_argument("--workers", type=int, default=2, help="processes per side (default %(default)s)")
    args = p.parse_args(argv)
    reps = args.reps or 1
    n = args.docs or (4000 if args.quick else 200_000)
    paths, mb = pool(n, per_shard=max(500, n // 16))
    from filters.quality import default_model

    model = default_model(str(CACHE / "quality_model"))
    ours_t, dt_t, ours_runs, dt_runs = [], [], [], []
    for _ in range(reps):  # alternate the sides, equal repetitions
        tmp = tempfile.mkdtemp(prefix="pipeline_bench_")
        try:
            o = run_child("ours", paths=paths, out=os.path.join(tmp, "ours"), workers=args.workers, model=model)
            d = run_child("datatrove", paths=paths, out=os.path.join(tmp, "dt"), workers=args.workers, model=model)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        ours_t.append(o["seconds"])
        dt_t.append(d["seconds"])
        ours_runs.append(o)
        dt_runs.append(d)
        print(f"ours {o['seconds']:.1f} s (kept {o['kept']}), datatrove {d['seconds']:.1f} s (kept {d['kept']})",
              flush=True)
    from _common import Timing

    to, td = Timing(ours_t, "wall"), Timing(dt_t, "wall")

    def per_core(seconds: float) -> float:
        return mb / seconds / args.workers

    stage = ours_runs[-1]["stage_seconds"]
    total_stage = sum(stage.values()) or 1.0
    row = compare(
        "pipeline_vs_datatrove", "seconds (wall, end to end)", to, td,
        "datatrove: its filters + LanguageFilter (same lid.176.ftz) + 4-stage MinHash + FastTextClassifierFilter",
        TARGET,
        f"{n:,} demo documents ({mb:.0f} MB of text) in {len(paths)} parquet shards; {args.workers} workers a side; "
        "ours: heuristics with language ID, exact (text, url) + MinHash dedup, fastText scoring, on Ray",
        kind="time",
        mb_per_s_per_core_ours=per_core(to.median), mb_per_s_per_core_datatrove=per_core(td.median),
        core_hours_per_tb_ours=1e6 / per_core(to.median) / 3600,
        core_hours_per_tb_datatrove=1e6 / per_core(td.median) / 3600,
        text_mb=mb, kept_ours=ours_runs[-1]["kept"], kept_datatrove=dt_runs[-1]["kept"],
        stage_share_ours={k: round(v / total_stage, 3) for k, v in sorted(stage.items())},
        largest_process_mib_ours=ours_runs[-1]["largest_ours_mib"],
        largest_process_mib_datatrove=dt_runs[-1]["largest_ours_mib"],
        ray_fixed_mib_ours=ours_runs[-1]["ray_fixed_peak_mib"],
    )
    save([row], "pipeline", args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
