#!/usr/bin/env python
"""Deduplication: MinHash speed against datasketch and datatrove, and our dedup stages at scale.

    python bench/dedup.py --quick          # < 60 s: 2,000 demo documents
    python bench/dedup.py                  # full: 20,000-document comparisons + scale at 10k / 100k / 1M
    python bench/dedup.py --scale 10000,100000   # choose the scale points

Documents are the demo pool's (``curation.demo.make_doc``: clean prose with 6% exact and
5% near duplicates, plus boilerplate/spam/etc.), written as DOC_SCHEMA parquet shards.

Questions and targets (issue 4):
1. MinHash signatures (word 5-grams, 112 = 14 x 8 hash functions, from raw text), one
   process: documents/s, ours vs datasketch (target ratio >= 5) and vs datatrove's
   ``MinhashDedupSignature`` (target >= 2);
2. the whole fuzzy dedup (signatures, buckets, clusters, filter + write), 2 workers:
   wall time, ours (Ray) vs datatrove's four-stage MinHash pipeline (target >= 2), and
   peak memory of the process tree (ours must be lower);
3. scale: exact + MinHash dedup of 10k, 100k and 1M documents: wall time and peak
   memory; cost should grow about linearly (time per document roughly constant).

Peak memory is the largest sum of RSS over the measured process and all its
descendants (Ray's raylet, GCS and workers included), sampled every 0.1 s.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pyarrow as pa  # noqa: E402
from _common import machine  # noqa: E402

CACHE = Path(os.environ.get("DEDUP_BENCH_CACHE", "/tmp/dedup_bench_cache"))
NGRAM, BANDS, ROWS = 5, 14, 8




# --------------------------------------------------------------------------- data


def _write_shard(args: tuple[int, int, int, int, str]) -> str:
    from curation.demo import make_doc
    from curation.io import write_parquet_atomic
    from curation.schema import DOC_SCHEMA

    seed, n_docs, start, stop, path = args
    ids, texts, meta = [], [], []
    for i in range(start, stop):
        d = make_doc(seed, i, n_docs)
        ids.append(f"demo/{i:08d}")
        texts.append(d.text)
        meta.append(json.dumps({"category": d.category, "dup_of": d.dup_of}))
    n = len(ids)
    t = pa.table(
        {
            "id": ids,
            "text": pa.array(texts, pa.large_string()),
            "source": ["demo"] * n,
            "url": pa.array([None] * n, pa.string()),
            "metadata": meta,
        },
        schema=DOC_SCHEMA,
    )
    write_parquet_atomic(path, t)
    return path


def demo_shards(n_docs: int, seed: int = 0, docs_per_shard: int = 25_000, procs: int = 2) -> list[str]:
    """The first ``n_docs`` documents of the demo pool as parquet shards (cached on disk)."""
    folder = CACHE / f"demo_{n_docs}_{seed}_{docs_per_shard}"
    done = folder / "DONE"
    bounds = list(range(0, n_docs, docs_per_shard)) + [n_docs]
    paths = [str(folder / f"shard-{k:05d}.parquet") for k in range(len(bounds) - 1)]
    if done.exists():
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(seed, n_docs, a, b, p) for a, b, p in zip(bounds[:-1], bounds[1:], paths)]
    t0 = time.time()
    with mp.get_context("spawn").Pool(procs) as pool:
        list(pool.imap(_write_shard, jobs))
    done.write_text("ok")
    print(f"  generated {n_docs} demo documents in {time.time() - t0:.0f} s -> {folder}", flush=True)
    return paths


def load_texts(paths: list[str], limit: int) -> list[str]:
    import pyarrow.parquet as pq

    out: list[str] = []
    for p in paths:
        out += pq.read_table(p, columns=["text"]).column("text").to_pylist()
        if len(out) >= limit:
            break
    return out[:limit]


# --------------------------------------------------------------------------- peak memory of a child process tree

_PAGE = os.sysconf("SC_PAGE_SIZE")


def tree_rss(root: int) -> int:
    """Sum of RSS over ``root`` and its descendants, from /proc (Linux)."""
    parent: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    parent[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    kids: dict[int, list[int]] = {}
    for pid, pp in parent.items():
        kids.setdefault(pp, []).append(pid)
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        stack.extend(kids.get(pid, []))
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            pass
    return total


def _child(fn_name: str, kwargs: dict[str, Any], conn) -> None:
    try:
        res = globals()[fn_name](**kwargs)
        conn.send(("ok", res))
    except BaseException as e:  # noqa: BLE001
        import traceback

        conn.send(("error", f"{e!r}\n{traceback.format_exc()}"))


def measure(fn_name: str, **kwargs: Any) -> dict[str, Any]:
    """Run ``fn_name(**kwargs)`` in a fresh process; return its result, wall time and peak tree RSS."""
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_child, args=(fn_name, kwargs, send))
    t0 = time.perf_counter()
    p.start()
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, tree_rss(p.pid))
            stop.wait(0.1)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    status, res = recv.recv()
    wall = time.perf_counter() - t0
    p.join()
    stop.set()
    th.join()
    if status != "ok":
        raise RuntimeError(f"{fn_name} failed: {res}")
    return {"result": res, "wall_s": wall, "peak_rss_mib": peak / 2**20}


# --------------------------------------------------------------------------- 1. signatures


def sig_ours(paths: list[str], limit: int) -> dict[str, Any]:
    from filters.dedup.minhash import minhash_signatures

    texts = load_texts(paths, limit)
    arr = pa.array(texts, pa.large_string())
    t0 = time.perf_counter()
    for s in range(0, len(arr), 4096):
        minhash_signatures(arr.slice(s, 4096), NGRAM, BANDS * ROWS, 1)
    return {"docs": len(texts), "seconds": time.perf_counter() - t0}


def _split_tokenizer():
    """datatrove's English tokenizer needs spaCy (not installed); a str.split tokenizer is faster than
    spaCy's, so datatrove's numbers here are, if anything, optimistic."""
    from datatrove.utils.word_tokenizers import WordTokenizer

    class SplitTokenizer(WordTokenizer):
        def word_tokenize(self, text: str) -> list[str]:
            return text.split()

        def sent_tokenize(self, text: str) -> list[str]:
            return [text]

        def span_tokenize(self, text: str) -> list[tuple[int, int]]:
            return [(0, len(text))]

    return SplitTokenizer()


def sig_datatrove(paths: list[str], limit: int) -> dict[str, Any]:
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature

    texts = load_texts(paths, limit)
    step = MinhashDedupSignature(
        tempfile.mkdtemp(),
        config=MinhashConfig(n_grams=NGRAM, num_buckets=BANDS, hashes_per_bucket=ROWS),
        language=_split_tokenizer(),
    )
    # datatrove's default hash is xxhash64 of the str; the installed xxhash 4 only takes bytes
    import xxhash

    step._hash_func = lambda s: xxhash.xxh64_intdigest(s.encode())
    t0 = time.perf_counter()
    for t in texts:
        sh = step.get_shingles(t)
        if sh.size:
            step.get_signature(sh)
    return {"docs": len(texts), "seconds": time.perf_counter() - t0}


def sig_datasketch(paths: list[str], limit: int) -> dict[str, Any]:
    from datasketch import MinHash

    texts = load_texts(paths, limit)
    t0 = time.perf_counter()
    for t in texts:
        w = t.lower().split()
        m = MinHash(num_perm=BANDS * ROWS, seed=1)
        m.update_batch([" ".join(w[i : i + NGRAM]).encode() for i in range(max(1, len(w) - NGRAM + 1))])
    return {"docs": len(texts), "seconds": time.perf_counter() - t0}


# --------------------------------------------------------------------------- 2. end to end


def _apply_shard(shard: Any, stages: list[Any], out: str) -> int:
    """Apply fitted dedup stages to one shard and write the kept documents (one pass item)."""
    from curation.io import read_parquet, write_parquet_atomic
    from curation.stage import ShardContext

    t = read_parquet(shard.path)
    for st in stages:
        t = st.process(t, ShardContext(shard.shard_id, shard.input_path)).kept
    write_parquet_atomic(out, t)
    return t.num_rows


def e2e_ours(paths: list[str], workdir: str, workers: int, exact: bool = False, bff: bool = False) -> dict[str, Any]:
    import logging

    logging.basicConfig(level=logging.WARNING)
    from curation.passes import ExecConfig, Executor, Item
    from curation.stage import GlobalContext, PhaseShard
    from filters.dedup import BloomDedup, ExactDedup, MinHashDedup

    t0 = time.perf_counter()
    executor = Executor(ExecConfig(mode="ray", num_workers=workers, progress=False))
    executor.ensure_ray()
    t_ray = time.perf_counter() - t0
    shards = [PhaseShard(f"s{k:05d}", p, p) for k, p in enumerate(paths)]
    stages = ([ExactDedup()] if exact else []) + [MinHashDedup(measure_curve=False)] + ([BloomDedup()] if bff else [])
    summaries = {}
    for st in stages:
        first = len(executor.log)
        ctx = GlobalContext(shards=shards, workdir=os.path.join(workdir, st.name), num_workers=workers,
                            executor=executor, fit_key=st.name)
        state = st.fit(ctx)
        st.load_state(state)
        summaries[st.name] = {k: state.summary.get(k) for k in ("documents_removed", "clusters")}
        summaries[st.name]["seconds"] = {p["pass"]: p["seconds"] for p in executor.log[first:]}

    items = [Item(s.shard_id, (s, stages, os.path.join(workdir, "out", f"{s.shard_id}.parquet"))) for s in shards]
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # a script's functions: ship them by value
    kept = sum(executor.run("apply", _apply_shard, items, marker_dir=os.path.join(workdir, "_apply")).results)
    import ray

    ray.shutdown()
    return {"kept": kept, "summaries": summaries, "seconds": time.perf_counter() - t0, "ray_start_s": t_ray}


def e2e_datatrove(paths: list[str], workdir: str, workers: int) -> dict[str, Any]:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import ParquetWriter

    t0 = time.perf_counter()
    from datatrove.utils.hashing import HashConfig

    # datatrove's default xxhash path breaks with the installed xxhash 4 (str input); its sha1 option works
    cfg = MinhashConfig(
        n_grams=NGRAM, num_buckets=BANDS, hashes_per_bucket=ROWS, hash_config=HashConfig(hash_fc="sha1")
    )
    folder = os.path.dirname(paths[0])
    n = len(paths)
    w = Path(workdir)

    def reader() -> ParquetReader:
        return ParquetReader(folder, glob_pattern="shard-*.parquet", text_key="text", id_key="id", read_metadata=False)

    sig_step = MinhashDedupSignature(str(w / "sigs"), config=cfg, language=_split_tokenizer())
    LocalPipelineExecutor(pipeline=[reader(), sig_step], tasks=n, workers=workers, logging_dir=str(w / "logs1")).run()
    LocalPipelineExecutor(
        pipeline=[MinhashDedupBuckets(str(w / "sigs"), str(w / "buckets"), config=cfg)],
        tasks=cfg.num_buckets,
        workers=workers,
        logging_dir=str(w / "logs2"),
    ).run()
    LocalPipelineExecutor(
        pipeline=[MinhashDedupCluster(str(w / "buckets"), str(w / "remove"), config=cfg)],
        tasks=1,
        workers=1,
        logging_dir=str(w / "logs3"),
    ).run()
    LocalPipelineExecutor(
        pipeline=[reader(), MinhashDedupFilter(str(w / "remove")), ParquetWriter(str(w / "out"))],
        tasks=n,
        workers=workers,
        logging_dir=str(w / "logs4"),
    ).run()
    import pyarrow.parquet as pq

    kept = sum(pq.read_metadata(str(p)).num_rows for p in (w / "out").glob("*.parquet"))
    return {"kept": kept, "seconds": time.perf_counter() - t0}


# --------------------------------------------------------------------------- main


def entry(
    name: str,
    metric: str,
    ours: float,
    ref: float | None,
    ref_name: str,
    ratio: float | None,
    target: float | None,
    inp: str,
    cmd: str,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "name": name,
        "metric": metric,
        "ours": ours,
        "reference": ref,
        "reference_name": ref_name,
        "ratio": ratio,
        "target": target,
        "input": inp,
        "machine": machine(),
        "command": cmd,
        **extra,
    }


def _write(path: str, results: list[dict[str, Any]]) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f, indent=1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="bench/results/dedup.json")
    ap.add_argument("--docs", type=int, default=None, help="documents for the comparisons")
    ap.add_argument("--scale", default=None, help="comma-separated scale points (full mode: 10000,100000,1000000)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--bff", action="store_true", help="include global BFF dedup in the scale runs")
    args = ap.parse_args(argv)
    cmd = "python bench/dedup.py " + " ".join(argv if argv is not None else sys.argv[1:])
    n_cmp = args.docs or (2000 if args.quick else 20000)
    scale = (
        []
        if args.quick and args.scale is None
        else [int(x) for x in (args.scale or "10000,100000,1000000").split(",") if x]
    )
    results: list[dict[str, Any]] = []
    tmp = Path(tempfile.mkdtemp(prefix="dedup_bench_"))
    try:
        paths = demo_shards(n_cmp, docs_per_shard=max(500, n_cmp // 8))
        inp = f"{n_cmp} demo-pool documents (curation.demo), {len(paths)} parquet shards"

        # 1. signatures
        n_sig = min(n_cmp, 2000 if args.quick else 10000)
        ours = measure("sig_ours", paths=paths, limit=n_sig)["result"]
        dt = measure("sig_datatrove", paths=paths, limit=n_sig)["result"]
        ds = measure("sig_datasketch", paths=paths, limit=n_sig)["result"]
        r_ours, r_dt, r_ds = (x["docs"] / x["seconds"] for x in (ours, dt, ds))
        print(
            f"signatures ({n_sig} docs, 5-grams, 112 hashes, one process): ours {r_ours:,.0f} docs/s, "
            f"datatrove {r_dt:,.0f} ({r_ours / r_dt:.1f}x), datasketch {r_ds:,.0f} ({r_ours / r_ds:.1f}x)"
        )
        sig_inp = f"{n_sig} demo-pool documents, word 5-grams, 14x8 = 112 hash functions, one process"
        results.append(
            entry(
                "minhash_signatures_vs_datasketch",
                "docs/s",
                r_ours,
                r_ds,
                "datasketch MinHash",
                r_ours / r_ds,
                5.0,
                sig_inp,
                cmd,
            )
        )
        results.append(
            entry(
                "minhash_signatures_vs_datatrove",
                "docs/s",
                r_ours,
                r_dt,
                "datatrove MinhashDedupSignature",
                r_ours / r_dt,
                2.0,
                sig_inp,
                cmd,
            )
        )

        # 2. end to end
        mo = measure("e2e_ours", paths=paths, workdir=str(tmp / "ours"), workers=args.workers)
        md = measure("e2e_datatrove", paths=paths, workdir=str(tmp / "dt"), workers=args.workers)
        print(
            f"fuzzy dedup end to end ({n_cmp} docs, {args.workers} workers): ours {mo['wall_s']:.1f} s "
            f"(peak {mo['peak_rss_mib']:.0f} MiB, kept {mo['result']['kept']}), datatrove {md['wall_s']:.1f} s "
            f"(peak {md['peak_rss_mib']:.0f} MiB, kept {md['result']['kept']}): "
            f"{md['wall_s'] / mo['wall_s']:.2f}x"
        )
        e2e_inp = f"{inp}; {args.workers} workers; read, signatures, buckets, clusters, filter, write parquet"
        results.append(
            entry(
                "minhash_end_to_end_time",
                "seconds",
                mo["wall_s"],
                md["wall_s"],
                "datatrove 4-stage MinHash (LocalPipelineExecutor)",
                md["wall_s"] / mo["wall_s"],
                2.0,
                e2e_inp,
                cmd,
                kept_ours=mo["result"]["kept"],
                kept_reference=md["result"]["kept"],
                ray_start_s=mo["result"]["ray_start_s"],
            )
        )
        results.append(
            entry(
                "minhash_end_to_end_peak_memory",
                "MiB (peak RSS of the process tree)",
                mo["peak_rss_mib"],
                md["peak_rss_mib"],
                "datatrove 4-stage MinHash",
                md["peak_rss_mib"] / mo["peak_rss_mib"],
                1.0,
                e2e_inp,
                cmd,
            )
        )

        # 3. scale
        rows = []
        for n in scale:
            sp = demo_shards(n)
            m = measure(
                "e2e_ours", paths=sp, workdir=str(tmp / f"scale{n}"), workers=args.workers, exact=True, bff=args.bff
            )
            rows.append(
                {
                    "docs": n,
                    "wall_s": round(m["wall_s"], 2),
                    "peak_rss_mib": round(m["peak_rss_mib"], 1),
                    "us_per_doc": round(m["wall_s"] / n * 1e6, 1),
                    "kept": m["result"]["kept"],
                    "stages": m["result"]["summaries"],
                }
            )
            print(
                f"scale {n:>9,} docs: {m['wall_s']:8.1f} s, peak {m['peak_rss_mib']:7.0f} MiB, "
                f"{m['wall_s'] / n * 1e6:7.1f} us/doc, kept {m['result']['kept']}",
                flush=True,
            )
            shutil.rmtree(tmp / f"scale{n}", ignore_errors=True)
            _write(
                args.out,
                results
                + [
                    entry(
                        "dedup_scale_points_so_far",
                        "seconds",
                        rows[-1]["wall_s"],
                        None,
                        "",
                        None,
                        None,
                        "partial scale results",
                        cmd,
                        points=rows,
                    )
                ],
            )
        if len(rows) >= 2:
            first, last = rows[-2], rows[-1]  # the two largest points: fixed costs (Ray start) amortised
            growth = (last["wall_s"] / first["wall_s"]) / (last["docs"] / first["docs"])
            results.append(
                entry(
                    "dedup_scale_linearity",
                    "time growth / size growth (1 = linear)",
                    growth,
                    1.0,
                    "linear scaling",
                    1.0 / growth,
                    0.5,
                    f"exact + MinHash{' + BFF' if args.bff else ''} dedup of the demo pool at "
                    f"{[r['docs'] for r in rows]} documents",
                    cmd,
                    points=rows,
                )
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _write(args.out, results)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
