#!/usr/bin/env python
"""Deduplication: MinHash speed against rensa, datasketch and datatrove, and our fuzzy dedup end to end.

    python bench/dedup.py --quick          # about a minute: 2,000 demo documents
    python bench/dedup.py --signatures-only  # the signature rows only, merged into dedup.json (~1-2 min)
    python bench/dedup.py                  # full: signatures on 10,000, end to end at 2,000 and 20,000 documents

Documents are the demo pool's (``demopool.make_doc``: clean prose with 6% exact and
5% near duplicates, plus boilerplate/spam/etc.), written as DOC_SCHEMA parquet shards.

Questions and targets (issues 4 and 12):
1. MinHash signatures (word 5-grams, 112 = 14 x 8 hash functions), one process, one
   thread, in-process CPU seconds, equal repetitions on both sides (min and median kept),
   batches of 4,096 documents:
   a. text in, signatures out, vs rensa (target >= 1.0): both sides normalise with our
      ``normalize_fuzzy``; rensa then gets each document's 5-grams as Python strings
      (``RMinHash.digest_matrix_from_token_sets``), as a user would feed it. The row keeps
      each side's CPU seconds per stage (measured again stage by stage);
   b. the signature step alone from the same uint64 shingle hashes, vs rensa's
      ``digest_matrix_from_flat_token_hashes`` (target >= 1.0, issue 20; rensa's R-MinHash
      is a different, cheaper sketch, see the row's note): row a's lead over rensa is our
      Arrow shingling against Python's, this row is the sketch alone;
   c. text in, signatures out, vs datasketch fed the same normalised 5-grams (target >= 10)
      and vs datatrove's ``MinhashDedupSignature`` with its own normalisation (target >= 2),
      on fewer documents (they run per document in Python);
2. the whole fuzzy dedup (read parquet, signatures, buckets, clusters, filter, write parquet),
   2 workers, wall time, ours through the runner as a user runs it (its default executor:
   in-process under 16 MiB of input, else an embedded Ray whose start-up is counted) vs
   datatrove's four-stage MinHash pipeline, at the quick size of 2,000 documents (target >= 2, as
   first set; issue 20) and at 20,000 documents (target >= 3, issue 12); and the largest process of each side (USS,
   bench/_procmem.py; Ray's own servers reported apart), target >= 1.
Scale (memory and time at N and 10 N documents) is bench/scale.py's question.

Exact-substring dedup (``--substring``, issue 21; results in bench/results/dedup_substring[.quick].json;
no peer runs here: google-research/deduplicate-text-datasets and datatrove's wrapper of it are a Rust
binary built from source). Targets fixed before measuring (:data:`SUBSTRING_TARGETS`):
3. throughput, MB of text per CPU second, of the whole stage (fit as passes, then applied to every shard,
   in this process) against one suffix array over the whole corpus in one process (``reference_dedup``,
   the same rule, output checked identical), on demo-pool documents and on real samples from
   ../shared/data (Gutenberg books, Wikipedia, web text): target >= 0.5 (distribution may cost at most
   half the single-array speed);
4. the largest process through the runner on Ray (2 workers, --memory-per-worker 384M, min_partitions 1) at
   N and 10 N demo documents (ratio N / 10 N, target >= 0.8; flat once N fills the budget's partitions and
   verify items: the full run's N = 20,000 does, the quick run's 1,000, run in-process, does not), and at
   10 N against the single suffix array's process (target >= 1);
5. the demo pool through the baseline recipe (heuristics, exact, MinHash, BFF, substring): recall on the
   planted passages' later occurrences (target >= 0.99); the fraction of bytes removed is in the rows.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
from _common import RESULTS, Timing, bench_parser, compare, save  # noqa: E402
from _common import measure as timed  # noqa: E402  (``measure`` below runs a function in a fresh process)

CACHE = Path(os.environ.get("DEDUP_BENCH_CACHE", "/tmp/dedup_bench_cache"))
NGRAM, BANDS, ROWS = 5, 14, 8
# 2,000 documents: >= 2x, the target set before the first measurement (issue 12 lowered it to 1x after a miss;
# issue 20 restores it); 20,000 documents: >= 3x (issue 12)
E2E_QUICK_TARGET, E2E_TARGET = 2.0, 3.0
SKETCH_TARGET = 1.0  # issue 20: the signature step from the same shingle hashes >= rensa's


# --------------------------------------------------------------------------- data


def _write_shard(args: tuple[int, int, int, int, str]) -> str:
    from curation.schema import DOC_SCHEMA
    from curation.storage import write_parquet_atomic
    from demopool import make_doc

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
    """The first ``n_docs`` documents of the demo pool as parquet shards (cached on disk, per generator version)."""
    from demopool import GENERATOR_VERSION

    folder = CACHE / f"demo_v{GENERATOR_VERSION}_{n_docs}_{seed}_{docs_per_shard}"
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

def _child(fn_name: str, kwargs: dict[str, Any], conn) -> None:
    try:
        res = globals()[fn_name](**kwargs)
        conn.send(("ok", res))
    except BaseException as e:  # noqa: BLE001
        import traceback

        conn.send(("error", f"{e!r}\n{traceback.format_exc()}"))


def measure(fn_name: str, **kwargs: Any) -> dict[str, Any]:
    """Run ``fn_name(**kwargs)`` in a fresh process; return its result, wall time and the memory of its
    process tree (bench/_procmem.py: USS per process, the largest driver/task process, Ray's servers apart)."""
    from _procmem import TreeSampler

    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_child, args=(fn_name, kwargs, send))
    t0 = time.perf_counter()
    p.start()
    with TreeSampler(p.pid, 0.1) as sampler:
        status, res = recv.recv()
        wall = time.perf_counter() - t0
        p.join()
    if status != "ok":
        raise RuntimeError(f"{fn_name} failed: {res}")
    return {"result": res, "wall_s": wall, **sampler.summary()}


# --------------------------------------------------------------------------- 1. signatures
#
# In-process CPU seconds (bench/_common.measure), equal repetitions after one untimed warm-up run
# on each side, batches of BATCH documents as MinHashDedup's map tasks use. Every side starts from
# the same Arrow text column and ends with one 112-value signature per document; the peers get
# the same normalised word 5-grams from our normalize_fuzzy (pyarrow) and Python, as a user
# feeding them would, except datatrove, which normalises and shingles its own way.

BATCH = 4096


def _batches(texts: list[str]) -> list[pa.Array]:
    arr = pa.array(texts, pa.large_string())
    return [arr.slice(s, BATCH) for s in range(0, len(arr), BATCH)]


def python_shingles(norm: list[str]) -> list[list[str]]:
    """Word 5-grams of normalised texts as strings (what rensa and datasketch take), as a user makes them."""
    out = []
    for t in norm:
        w = t.split()
        if len(w) >= NGRAM:
            out.append([" ".join(w[i : i + NGRAM]) for i in range(len(w) - NGRAM + 1)])
        else:
            out.append([" ".join(w)] if w else [])
    return out


def _ours_stages(batch: pa.Array, times: dict[str, float]) -> np.ndarray:
    """minhash_signatures, one stage at a time, adding each stage's CPU seconds to ``times``."""
    from filters.dedup.hashing import hash_tokens, ngram_hashes, normalize_fuzzy, split_spaces
    from filters.dedup.minhash import hash_params, signatures_from_hashes

    tick = time.process_time
    t0 = tick()
    norm = normalize_fuzzy(batch)
    t1 = tick()
    offsets, words = split_spaces(norm)
    t2 = tick()
    wh = hash_tokens(words)
    t3 = tick()
    sh_off, h = ngram_hashes(wh, offsets, NGRAM)
    t4 = tick()
    sig = signatures_from_hashes(sh_off, h, *hash_params(BANDS * ROWS, 1))
    t5 = tick()
    for k, dt in zip(
        ("normalise", "split words", "hash words", "hash 5-grams", "signatures"),
        (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4),
    ):
        times[k] = times.get(k, 0.0) + dt
    return sig


def _rensa_stages(batch: pa.Array, times: dict[str, float]) -> Any:
    from rensa import RMinHash

    from filters.dedup.hashing import normalize_fuzzy

    tick = time.process_time
    t0 = tick()
    norm = normalize_fuzzy(batch).to_pylist()
    t1 = tick()
    tokens = python_shingles(norm)
    t2 = tick()
    m = RMinHash.digest_matrix_from_token_sets(tokens, BANDS * ROWS, 1)
    t3 = tick()
    for k, dt in zip(("normalise", "Python 5-gram strings", "rensa hash + sketch"), (t1 - t0, t2 - t1, t3 - t2)):
        times[k] = times.get(k, 0.0) + dt
    return m


def _per_rep(times: dict[str, float], reps: int) -> dict[str, float]:
    return {k: round(v / reps, 5) for k, v in times.items()}


def signature_rows(texts: list[str], peer_texts: list[str], reps: int) -> list[dict[str, Any]]:
    """The signature comparisons: ours vs rensa (from text, and from the same shingle hashes), datasketch, datatrove."""
    os.environ.setdefault("RAYON_NUM_THREADS", "1")  # rensa's batch calls may use a thread pool: one thread
    try:
        import rensa
    except ImportError as e:
        raise SystemExit("rensa (the peer of the signature rows) is not installed: pip install rensa==0.5.0") from e
    from datasketch import MinHash

    from filters.dedup.hashing import normalize_fuzzy
    from filters.dedup.minhash import hash_params, minhash_signatures, shingle_hashes, signatures_from_hashes

    rows = []
    batches = _batches(texts)
    n = len(texts)
    desc = f"{n} demo-pool documents ({sum(map(len, texts)) / 1e6:.1f} MB), word 5-grams, 112 = 14 x 8 functions"

    # the same shingles on both sides: per document, rensa's distinct 5-gram strings and our distinct hashes
    sh_off, h = shingle_hashes(batches[0], NGRAM)
    toks = python_shingles(normalize_fuzzy(batches[0]).to_pylist())
    same = all(len(set(t)) == len(np.unique(h[sh_off[i] : sh_off[i + 1]])) for i, t in enumerate(toks))
    if not same:
        raise RuntimeError("rensa's 5-gram strings and our shingle hashes differ in number per document")

    # 1a. text in, signatures out: ours vs rensa fed the same normalised 5-grams from Python
    def ours_text() -> None:
        for x in batches:
            minhash_signatures(x, NGRAM, BANDS * ROWS, 1)

    def rensa_text() -> None:
        for x in batches:
            tokens = python_shingles(normalize_fuzzy(x).to_pylist())
            rensa.RMinHash.digest_matrix_from_token_sets(tokens, BANDS * ROWS, 1)

    t_ours = timed(ours_text, reps, warmup=1)
    t_ref = timed(rensa_text, reps, warmup=1)
    # where the time goes: the same work again, one stage at a time (CPU seconds per repetition)
    ours_stage: dict[str, float] = {}
    ref_stage: dict[str, float] = {}
    for _ in range(reps):
        for x in batches:
            _ours_stages(x, ours_stage)
            _rensa_stages(x, ref_stage)
    rows.append(
        compare(
            "minhash_signatures_vs_rensa",
            "CPU seconds",
            t_ours,
            t_ref,
            "rensa 0.5 RMinHash.digest_matrix_from_token_sets fed Python 5-gram strings",
            1.0,
            f"{desc}; text in, signatures out; both sides normalise with normalize_fuzzy (pyarrow)",
            kind="time",
            docs_per_cpu_s_ours=n / t_ours.median,
            docs_per_cpu_s_reference=n / t_ref.median,
            stages_ours=_per_rep(ours_stage, reps),
            stages_reference=_per_rep(ref_stage, reps),
        )
    )

    # 1b. only the signature step, from the same 64-bit shingle hashes on both sides
    pre = [shingle_hashes(b, NGRAM) for b in batches]
    a, b = hash_params(BANDS * ROWS, 1)
    t_ours = timed(lambda: [signatures_from_hashes(o, x, a, b) for o, x in pre], reps, warmup=1)
    t_ref = timed(
        lambda: [
            rensa.RMinHash.digest_matrix_from_flat_token_hashes(x, o.astype(np.uint64), BANDS * ROWS, 1) for o, x in pre
        ],
        reps,
        warmup=1,
    )
    rows.append(
        compare(
            "minhash_signatures_from_shingle_hashes_vs_rensa",
            "CPU seconds",
            t_ours,
            t_ref,
            "rensa RMinHash.digest_matrix_from_flat_token_hashes (same uint64 shingle hashes)",
            SKETCH_TARGET,
            f"{desc}; {sum(len(x) for _, x in pre):,} shingles already hashed; signature step only",
            kind="time",
            ns_per_shingle_ours=t_ours.median / max(1, sum(len(x) for _, x in pre)) * 1e9,
            ns_per_shingle_reference=t_ref.median / max(1, sum(len(x) for _, x in pre)) * 1e9,
            note="not the same sketch: ours is the classic estimator (112 independent functions, a multiply, "
            "an add and a minimum per shingle and function, 8 shingles per pass of a numba kernel over 32-bit "
            "SIMD lanes); rensa 0.5's R-MinHash fills slots by Fast Similarity Sketching (each shingle picks a "
            "slot and rank in a few bucket rounds, per-slot hashes only for slots left empty), about "
            "O(shingles + K log K) per document",
        )
    )

    # 2. text in, signatures out vs datasketch and datatrove (slow: fewer documents)
    pb = _batches(peer_texts)
    pdesc = f"{len(peer_texts)} demo-pool documents, word 5-grams, 112 = 14 x 8 functions; text in, signatures out"

    def datasketch_sigs() -> None:
        for batch in pb:
            for toks in python_shingles(normalize_fuzzy(batch).to_pylist()):
                m = MinHash(num_perm=BANDS * ROWS, seed=1)
                m.update_batch([t.encode() for t in toks])

    t_ours = timed(lambda: [minhash_signatures(x, NGRAM, BANDS * ROWS, 1) for x in pb], reps, warmup=1)
    t_ref = timed(datasketch_sigs, reps, warmup=1)
    rows.append(
        compare(
            "minhash_signatures_vs_datasketch",
            "CPU seconds",
            t_ours,
            t_ref,
            "datasketch MinHash.update_batch fed the same normalised 5-grams from Python",
            10.0,
            pdesc,
            kind="time",
            docs_per_cpu_s_ours=len(peer_texts) / t_ours.median,
            docs_per_cpu_s_reference=len(peer_texts) / t_ref.median,
        )
    )
    step = _datatrove_step()
    t_ours = timed(lambda: [minhash_signatures(x, NGRAM, BANDS * ROWS, 1) for x in pb], reps, warmup=1)
    t_ref = timed(lambda: [_datatrove_sig(step, t) for t in peer_texts], reps, warmup=1)
    rows.append(
        compare(
            "minhash_signatures_vs_datatrove",
            "CPU seconds",
            t_ours,
            t_ref,
            "datatrove MinhashDedupSignature (its own normalisation and shingles, str.split words, xxhash64)",
            2.0,
            pdesc,
            kind="time",
            docs_per_cpu_s_ours=len(peer_texts) / t_ours.median,
            docs_per_cpu_s_reference=len(peer_texts) / t_ref.median,
        )
    )
    return rows


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


def _datatrove_step() -> Any:
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature

    step = MinhashDedupSignature(
        tempfile.mkdtemp(),
        config=MinhashConfig(n_grams=NGRAM, num_buckets=BANDS, hashes_per_bucket=ROWS),
        language=_split_tokenizer(),
    )
    # datatrove's default hash is xxhash64 of the str; the installed xxhash 4 only takes bytes
    import xxhash

    step._hash_func = lambda s: xxhash.xxh64_intdigest(s.encode())
    return step


def _datatrove_sig(step: Any, text: str) -> None:
    sh = step.get_shingles(text)
    if sh.size:
        step.get_signature(sh)


# --------------------------------------------------------------------------- 2. end to end


def e2e_ours(paths: list[str], workdir: str, workers: int, exact: bool = False, bff: bool = False) -> dict[str, Any]:
    """Our fuzzy dedup as a user runs it: the runner over the parquet shards (read, fit, apply, write
    parquet), with its default executor choice (in-process under 16 MiB of input, else an embedded Ray,
    whose start-up is counted: a run pays it)."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    from curation.runner import InputSpec, RunConfig, Runner
    from filters.dedup import BloomDedup, ExactDedup, MinHashDedup

    t0 = time.perf_counter()
    stages = ([ExactDedup()] if exact else []) + [MinHashDedup(measure_curve=False)] + ([BloomDedup()] if bff else [])
    cfg = RunConfig(output_dir=workdir, num_workers=workers, progress=False, report=False)
    runner = Runner(stages, [InputSpec(p, "parquet", "demo") for p in paths], cfg)
    res = runner.run()
    last = res.stats["stages"][-1]["name"]
    summaries = {g["name"]: {k: g["summary"].get(k) for k in ("documents_removed", "clusters")}
                 for g in res.stats["global"]}
    return {"kept": res.stats["totals"][last]["kept"], "summaries": summaries, "seconds": time.perf_counter() - t0,
            "executor": runner.executor.cfg.mode, "ray_start_s": runner.executor.ray_start_s}


def xxh64_str(text: str) -> int:
    """datatrove's default MinHash hash (xxhash64 of the shingle string) as datatrove calls it: the installed
    xxhash 4 takes bytes only, so the string is encoded first (UTF-8, what xxhash 3 did itself)."""
    import xxhash

    return xxhash.xxh64_intdigest(text.encode())


def datatrove_minhash(w: Path, workers: int, n: int, first: list, reread: Callable[[], Any], last: list,
                      hash_fc: str = "sha1") -> None:
    """datatrove's 4-stage MinHash (5-grams, 14 x 8) in folder ``w``, ``n`` tasks: stage 1 runs ``first`` (a
    reader, possibly more steps) and then the signatures; stages 2-3 find buckets and clusters; stage 4 runs
    ``reread()``, the dedup filter and then ``last`` (a writer, possibly more steps). ``hash_fc``: datatrove's
    ``sha1`` option, or ``xxhash`` (its default, 64-bit; through :func:`xxh64_str`)."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.utils.hashing import HashConfig

    cfg = MinhashConfig(
        n_grams=NGRAM, num_buckets=BANDS, hashes_per_bucket=ROWS, hash_config=HashConfig(hash_fc=hash_fc)
    )
    sig_step = MinhashDedupSignature(str(w / "sigs"), config=cfg, language=_split_tokenizer())
    if hash_fc == "xxhash":
        sig_step._hash_func = xxh64_str
    LocalPipelineExecutor(pipeline=[*first, sig_step], tasks=n, workers=workers, logging_dir=str(w / "logs1")).run()
    LocalPipelineExecutor(pipeline=[MinhashDedupBuckets(str(w / "sigs"), str(w / "buckets"), config=cfg)],
                          tasks=cfg.num_buckets, workers=workers, logging_dir=str(w / "logs2")).run()
    LocalPipelineExecutor(pipeline=[MinhashDedupCluster(str(w / "buckets"), str(w / "remove"), config=cfg)],
                          tasks=1, workers=1, logging_dir=str(w / "logs3")).run()
    LocalPipelineExecutor(pipeline=[reread(), MinhashDedupFilter(str(w / "remove")), *last], tasks=n,
                          workers=workers, logging_dir=str(w / "logs4")).run()


def e2e_datatrove(paths: list[str], workdir: str, workers: int) -> dict[str, Any]:
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import ParquetWriter

    t0 = time.perf_counter()
    folder = os.path.dirname(paths[0])
    w = Path(workdir)

    def reader() -> ParquetReader:
        return ParquetReader(folder, glob_pattern="shard-*.parquet", text_key="text", id_key="id", read_metadata=False)

    datatrove_minhash(w, workers, len(paths), [reader()], reader, [ParquetWriter(str(w / "out"))])
    import pyarrow.parquet as pq

    kept = sum(pq.read_metadata(str(p)).num_rows for p in (w / "out").glob("*.parquet"))
    return {"kept": kept, "seconds": time.perf_counter() - t0}


# --------------------------------------------------------------------------- 3-5. exact-substring dedup

SUBSTRING_TARGETS = {"substring_vs_one_suffix_array": 0.5, "substring_memory_n_vs_10n": 0.8,
                     "substring_memory_vs_one_suffix_array": 1.0, "substring_demo_pool_planted_recall": 0.99}
#: the budget of the memory rows: small, and min_partitions=1, so that partitions and verify items are full
#: (sized by the budget, not by the corpus) at both sizes of the full run; below that size memory grows with
#: the data up to the budget
SUBSTRING_MEMORY = "384M"


def _outcome_digest(rows: list[tuple[str, str | None, bytes]]) -> str:
    import hashlib

    h = hashlib.sha256()
    for doc_id, reason, data in rows:
        h.update(f"{doc_id}\0{reason}\0".encode() + data + b"\1")
    return h.hexdigest()


def substring_ours(paths: list[str], workdir: str, min_len: int = 50, unit: str = "word") -> dict[str, Any]:
    """SubstringDedup's fit (passes, in this process) and its application to every shard; the outcome's digest."""
    import pyarrow.parquet as pq

    from curation.passes import ExecConfig, Executor
    from curation.stage import GlobalContext, PhaseShard, ShardContext
    from filters.dedup import SubstringDedup

    shutil.rmtree(workdir, ignore_errors=True)
    shards = [PhaseShard(f"s{i:05d}", p, p) for i, p in enumerate(paths)]
    ex = Executor(ExecConfig(mode="local", num_workers=1, progress=False))
    ctx = GlobalContext(shards=shards, workdir=workdir, executor=ex, memory_per_worker=2 << 30)
    stage = SubstringDedup(min_len=min_len, unit=unit)
    stage.load_state(stage.fit(ctx))
    out: list[tuple[str, str | None, bytes]] = []
    for sh in shards:
        for batch in pq.ParquetFile(sh.path).iter_batches(batch_size=4096):
            res = stage.process(pa.Table.from_batches([batch]), ShardContext(sh.shard_id, sh.path))
            got = dict(zip(res.kept.column("id").to_pylist(), res.kept.column("text").to_pylist()))
            why = dict(zip(res.dropped.column("id").to_pylist(), res.dropped.column("reason").to_pylist()))
            for i in batch.column(0).to_pylist():
                out.append((i, why.get(i), b"" if i in why else got[i].encode()))
    return {"digest": _outcome_digest(out), "summary": stage.state.summary}


def substring_reference(paths: list[str], min_len: int = 50, unit: str = "word") -> dict[str, Any]:
    """One suffix array over every document (the same rule, one process): read the shards, decide, digest."""
    import pyarrow.parquet as pq

    from filters.dedup.substring_core import reference_dedup

    ids, texts = [], []
    for p in paths:
        t = pq.read_table(p, columns=["id", "text"])
        ids += t.column("id").to_pylist()
        texts += t.column("text").to_pylist()
    res = reference_dedup(texts, min_len, unit, "first", 50)
    return {"digest": _outcome_digest([(i, r, b"" if r else data) for i, (r, data) in zip(ids, res)]),
            "bytes_removed": sum(len(t.encode()) - (0 if r else len(d)) for t, (r, d) in zip(texts, res))}


def substring_runner(paths: list[str], workdir: str, workers: int, executor: str = "ray") -> dict[str, Any]:
    """SubstringDedup alone through the runner on Ray (``executor="local"``: in this process, the quick mode);
    the largest process is what the parent samples."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    from curation.cli import parse_size
    from curation.runner import InputSpec, RunConfig, Runner
    from filters.dedup import SubstringDedup

    cfg = RunConfig(output_dir=workdir, num_workers=workers, progress=False, report=False, executor=executor,
                    memory_per_worker=parse_size(SUBSTRING_MEMORY))
    t0 = time.perf_counter()
    res = Runner([SubstringDedup(min_partitions=1)], [InputSpec(p, "parquet", "demo") for p in paths], cfg).run()
    summary = next(g["summary"] for g in res.stats["global"] if g["name"] == "substring_dedup")
    return {"seconds": time.perf_counter() - t0, "ok": res.ok, "text_bytes": summary["text_bytes"],
            "fraction_bytes_removed": summary["fraction_bytes_removed"], "partitions": summary["partitions"],
            "verify_items": summary["verify_items"]}


def real_sample_shards(folder: Path, per_shard: int = 2000) -> list[str]:
    """Real text from ../shared/data as parquet shards: Gutenberg books, 8 Wikipedia files, web jsonl (cached)."""
    import gzip

    from curation.schema import docs_table
    from curation.storage import write_parquet_atomic

    data = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "corpora"
    if not data.is_dir():
        raise SystemExit("../shared/data is absent: the real-sample rows need it")
    done = folder / "DONE"
    if done.exists():
        return sorted(str(p) for p in folder.glob("real-*.parquet"))
    folder.mkdir(parents=True, exist_ok=True)
    docs: list[tuple[str, str, str]] = []  # (id, text, source)
    for p in sorted((data / "text" / "gutenberg").glob("*.txt")):
        docs.append((f"gutenberg/{p.name}", p.read_text(encoding="utf-8", errors="replace"), "gutenberg"))
    import re

    for p in sorted((data / "text" / "wikipedia_enwiki_2018").glob("wiki_*"))[:8]:
        raw = p.read_text(encoding="utf-8", errors="replace")
        for k, m in enumerate(re.finditer(r"<doc [^>]*>(.*?)</doc>", raw, re.S)):
            if m.group(1).strip():
                docs.append((f"wikipedia/{p.name}/{k}", m.group(1).strip(), "wikipedia"))
    for pattern in ("c4/*.json.gz", "redpajama/*.jsonl", "dolma/cc_en_head-*.jsonl.gz"):
        for p in sorted(data.glob(pattern)):
            opener = gzip.open if p.suffix == ".gz" else open
            with opener(p, "rt", encoding="utf-8") as f:
                for k, line in enumerate(f):
                    text = json.loads(line).get("text") if line.strip() else None
                    if isinstance(text, str) and text.strip():
                        docs.append((f"web/{p.name}/{k}", text, "web"))
    paths = []
    for k in range(0, len(docs), per_shard):
        part = docs[k : k + per_shard]
        path = str(folder / f"real-{k // per_shard:05d}.parquet")
        write_parquet_atomic(path, docs_table([d[0] for d in part], [d[1] for d in part], "real"))
        paths.append(path)
    done.write_text(json.dumps({"docs": len(docs), "sources": sorted({d[2] for d in docs})}))
    return paths


def substring_rows(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    reps = args.reps or 3
    n = args.docs or (2000 if args.quick else 20000)
    per = max(500, n // 8)
    sets = [("demo", demo_shards(n, docs_per_shard=per), f"{n:,} demo-pool documents")]
    if not args.quick or args.real:
        sets.append(("real", real_sample_shards(CACHE / "real_samples"), "real text from ../shared/data (74 "
                     "Gutenberg books with their licence boilerplate, 8 files of English Wikipedia, C4 / RedPajama "
                     "/ Dolma web samples)"))
    for tag, paths, what in sets:
        mb = sum(len(t.encode()) for p in paths
                 for t in pq.read_table(p, columns=["text"]).column("text").to_pylist()) / 1e6
        last: dict[str, Any] = {}

        def ours(paths: list[str] = paths, tag: str = tag, last: dict = last) -> None:
            last["ours"] = substring_ours(paths, str(tmp / f"sub_{tag}"))

        def ref(paths: list[str] = paths, last: dict = last) -> None:
            last["ref"] = substring_reference(paths)

        t_o = timed(ours, reps)
        t_r = timed(ref, reps)
        same = last["ours"]["digest"] == last["ref"]["digest"]
        s = last["ours"]["summary"]
        print(f"  substring {tag}: ours {mb / t_o.median:.2f} MB/CPU s, one suffix array {mb / t_r.median:.2f}, "
              f"identical {same}, {100 * s['fraction_bytes_removed']:.2f}% of bytes removed", flush=True)
        rows.append(compare(
            f"substring_vs_one_suffix_array_{tag}", "MB of text per CPU second",
            Timing([mb / v for v in t_o.values], "cpu"), Timing([mb / v for v in t_r.values], "cpu"),
            "one suffix array over the whole corpus in one process (reference_dedup: same rule, same output)",
            SUBSTRING_TARGETS["substring_vs_one_suffix_array"],
            f"{what}, {mb:.1f} MB, {len(paths)} parquet shards; 50 words, keep first; ours: fit as passes in this "
            "process + applied to every shard", kind="rate", identical_output=same, text_mb=mb,
            fraction_bytes_removed=s["fraction_bytes_removed"], documents_cut=s["documents_cut"],
            documents_removed=s["documents_removed"], anchor_density=s["anchor_density"], tokens=s["tokens"],
            anchors=s["anchors"], repeated_anchors=s["repeated_anchors"], context_bytes=s["context_bytes"],
            verify_items=s["verify_items"]))

    # memory: N and 10 N through the runner on Ray; the single suffix array at 10 N
    n_small = args.docs or (1000 if args.quick else 20000)
    small = demo_shards(n_small, docs_per_shard=max(500, n_small // 8))
    large = demo_shards(10 * n_small, docs_per_shard=max(500, n_small // 8))
    mode = "local" if args.quick else "ray"  # --quick: in-process (no Ray start), to stay near a minute
    a = measure("substring_runner", paths=small, workdir=str(tmp / "run_n"), workers=args.workers, executor=mode)
    b = measure("substring_runner", paths=large, workdir=str(tmp / "run_10n"), workers=args.workers, executor=mode)
    c = measure("substring_reference", paths=large)
    for name, r in (("N", a), ("10N", b), ("one suffix array, 10N", c)):
        print(f"  substring memory {name}: largest process {r['largest_ours_mib']:.0f} MiB "
              f"({r['largest_ours_process']}), {r['wall_s']:.1f} s", flush=True)
    inp = (f"demo pool, {n_small:,} and {10 * n_small:,} documents in parquet shards of {max(500, n_small // 8):,}; "
           f"SubstringDedup (50 words, min_partitions 1) alone through the runner "
           f"{'in-process (--quick)' if args.quick else f'on Ray, {args.workers} workers'}, --memory-per-worker "
           f"{SUBSTRING_MEMORY}")
    mbps = b["result"]["text_bytes"] / 1e6 / (b["result"]["seconds"] * args.workers)
    rows.append(compare("substring_memory_n_vs_10n", "MiB (largest driver/task process, USS)",
                        b["largest_ours_mib"], a["largest_ours_mib"], f"the same stage at N = {n_small:,}",
                        SUBSTRING_TARGETS["substring_memory_n_vs_10n"], inp, kind="time",
                        ray_fixed_mib={"N": a["ray_fixed_peak_mib"], "10N": b["ray_fixed_peak_mib"]},
                        seconds={"N": a["result"]["seconds"], "10N": b["result"]["seconds"]},
                        largest_process={"N": a["largest_ours_process"], "10N": b["largest_ours_process"]},
                        wall_mb_per_s_per_core_10n=mbps, partitions={"N": a["result"]["partitions"],
                                                                     "10N": b["result"]["partitions"]},
                        verify_items={"N": a["result"]["verify_items"], "10N": b["result"]["verify_items"]},
                        note="wall_mb_per_s_per_core_10n counts Ray's start and per-task latency at these small "
                        "shards; the work per core is the throughput rows' MB per CPU second"))
    rows.append(compare("substring_memory_vs_one_suffix_array", "MiB (largest process, USS)",
                        b["largest_ours_mib"], c["largest_ours_mib"],
                        f"one suffix array over the {10 * n_small:,} documents in one process",
                        SUBSTRING_TARGETS["substring_memory_vs_one_suffix_array"], inp, kind="time",
                        same_bytes_removed=round(c["result"]["bytes_removed"] / b["result"]["text_bytes"], 6)
                        == b["result"]["fraction_bytes_removed"]))

    # the demo pool through the baseline recipe: the planted passages
    from demopool.passages import planted_passage_report
    from pipelines import baseline

    run, pool = tmp / "baseline", tmp / "demo_pool"
    t0 = time.perf_counter()
    rc = baseline.main(["-o", str(run), "--demo-dir", str(pool), "--blocks", "heuristics,dedup", "--dedup",
                        "exact,minhash,bff,substring", "--no-tokens", "--executor", "local", "--log-level", "WARNING"])
    if rc:
        raise RuntimeError("the baseline run on the demo pool failed")
    rep = planted_passage_report(str(run), str(pool))
    s = rep["summary"]
    print(f"  demo pool: {rep['removed']}/{rep['later_occurrences']} later planted occurrences removed, "
          f"{100 * s['fraction_bytes_removed']:.2f}% of bytes, outside passages {rep['outside_bytes']}", flush=True)
    rows.append(compare(
        "substring_demo_pool_planted_recall", "recall on later occurrences of planted passages",
        rep["recall"], 1.0, "the planted truth (passages.jsonl)",
        SUBSTRING_TARGETS["substring_demo_pool_planted_recall"],
        "demo pool (2,000 documents, seed 0) through pipelines/baseline.py --blocks heuristics,dedup --dedup "
        "exact,minhash,bff,substring (in-process)", kind="rate", later_occurrences=rep["later_occurrences"],
        removed=rep["removed"], bytes_removed_outside_passages=rep["outside_bytes"],
        fraction_bytes_removed=s["fraction_bytes_removed"], documents_cut=s["documents_cut"],
        seconds=time.perf_counter() - t0))
    return rows


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = bench_parser(__doc__)
    ap.add_argument(
        "--docs",
        type=int,
        default=None,
        help="documents for the end-to-end comparison and ours-vs-rensa signatures "
        "(default 2,000 with --quick, else 20,000; signatures use at most 10,000)",
    )
    ap.add_argument(
        "--peer-docs",
        type=int,
        default=None,
        help="documents for the signature comparisons with datasketch and datatrove, which run per "
        "document in Python (default 300 with --quick, else 2,000)",
    )
    ap.add_argument("--workers", type=int, default=2,
                    help="workers of each side in the end-to-end runs (default %(default)s)")
    ap.add_argument(
        "--signatures-only",
        action="store_true",
        help="run only the signature comparisons (seconds), not the end-to-end runs; their rows replace the "
        "rows of the same name in bench/results/dedup[.quick].json (or --out), the others are kept as they were, "
        "each with the commit it measured",
    )
    ap.add_argument("--substring", action="store_true",
                    help="run only the exact-substring rows (3-5 above); results go to "
                    "bench/results/dedup_substring[.quick].json unless --out is given")
    ap.add_argument("--real", action="store_true", help="with --substring --quick: also the real-sample row")
    args = ap.parse_args(argv)
    if args.substring:
        tmp = Path(tempfile.mkdtemp(prefix="substring_bench_"))
        try:
            rows = substring_rows(args, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        save(rows, "dedup_substring", argparse.Namespace(quick=args.quick, out=args.out))
        return 0
    out = args.out or os.path.join(RESULTS, f"dedup{'.quick' if args.quick else ''}.json")
    reps = args.reps or (3 if args.quick else 5)
    reps_e2e_small = args.reps or 3
    n_cmp = args.docs or (2000 if args.quick else 20000)
    results: list[dict[str, Any]] = []
    tmp = Path(tempfile.mkdtemp(prefix="dedup_bench_"))
    try:
        paths = demo_shards(n_cmp, docs_per_shard=max(500, n_cmp // 8))

        # 1. signatures
        n_sig = min(n_cmp, 2000 if args.quick else 10000)
        n_peer = args.peer_docs or (300 if args.quick else 2000)
        texts = load_texts(paths, n_sig)
        results += signature_rows(texts, texts[:n_peer], reps)
        for r in results:
            print(
                f"  {r['name']}: ours {r['ours']:.3f} s, {r['reference_name'][:40]} {r['reference']:.3f} s, "
                f"{r['ratio']:.2f}x (target {r['target']})",
                flush=True,
            )
        if args.signatures_only:  # the other rows stay as measured, each with its own commit
            kept = []
            if os.path.exists(out):
                with open(out) as f:
                    names = {r["name"] for r in results}
                    kept = [r for r in json.load(f) if r.get("name") not in names]
            save(results, "dedup", argparse.Namespace(quick=args.quick, out=out))
            with open(out) as f:
                fresh = json.load(f)
            with open(out, "w") as f:
                json.dump(fresh + kept, f, indent=1, default=float)
                f.write("\n")
            return 0

        # 2. end to end, at the quick size (both modes) and at 20k documents (full runs); equal repetitions
        points = [(2000, E2E_QUICK_TARGET, reps_e2e_small)] + ([] if args.quick else [(n_cmp, E2E_TARGET, 1)])
        for n, target, k in points:
            ps = demo_shards(n, docs_per_shard=max(500, n // 8))
            runs_o, runs_d = [], []
            for _ in range(k):  # alternate the sides
                runs_o.append(measure("e2e_ours", paths=ps, workdir=str(tmp / f"ours{n}"), workers=args.workers))
                shutil.rmtree(tmp / f"ours{n}", ignore_errors=True)
                runs_d.append(measure("e2e_datatrove", paths=ps, workdir=str(tmp / f"dt{n}"), workers=args.workers))
                shutil.rmtree(tmp / f"dt{n}", ignore_errors=True)
            mo, md = runs_o[-1], runs_d[-1]
            print(
                f"fuzzy dedup end to end ({n} docs, {args.workers} workers, ours {mo['result']['executor']}): ours "
                f"{min(r['wall_s'] for r in runs_o):.1f} s (largest process {mo['largest_ours_mib']:.0f} MiB, kept "
                f"{mo['result']['kept']}), datatrove {min(r['wall_s'] for r in runs_d):.1f} s (largest "
                f"{md['largest_ours_mib']:.0f} MiB, kept {md['result']['kept']})", flush=True)
            e2e_inp = (f"{n} demo-pool documents (demopool), {len(ps)} parquet shards; {args.workers} workers; "
                       "read, signatures, buckets, clusters, filter, write parquet; ours through the runner with its "
                       "default executor (in-process under 16 MiB of input, else Ray, start-up counted)")
            results.append(compare(
                f"minhash_end_to_end_{n}", "seconds (wall)", Timing([r["wall_s"] for r in runs_o], "wall"),
                Timing([r["wall_s"] for r in runs_d], "wall"), "datatrove 4-stage MinHash (LocalPipelineExecutor)",
                target, e2e_inp, kind="time", kept_ours=mo["result"]["kept"], kept_reference=md["result"]["kept"],
                executor=mo["result"]["executor"], ray_start_s=mo["result"]["ray_start_s"]))
            if n == points[-1][0]:
                results.append(compare(
                    "minhash_end_to_end_largest_process", "MiB (largest driver/task process, USS)",
                    mo["largest_ours_mib"], md["largest_ours_mib"], "datatrove 4-stage MinHash", 1.0, e2e_inp,
                    kind="time", tree_peak_mib_ours=mo["tree_peak_mib"], tree_peak_mib_datatrove=md["tree_peak_mib"],
                    ray_fixed_mib_ours=mo["ray_fixed_peak_mib"]))
        # scale (memory and time at N and 10 N): bench/scale.py
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    save(results, "dedup", argparse.Namespace(quick=args.quick, out=out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
