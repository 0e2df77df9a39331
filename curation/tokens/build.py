"""build_token_stream: curated parquet -> tokenised, packed, globally shuffled, mixed Arrow token streams.

Three Ray passes, one task per unit of data (never per document), capped in flight:

1. tokenise + pack, one task per curated shard (pack.py);
2. scatter, one task per packed shard: choose the mix's window copies and key
   them into K buckets (shuffle.py);
3. shuffle, one task per bucket: order by key, write one Arrow stream file.

Every choice (which windows, how many copies, their keys, K) is a function of
the inputs, the tokenizer, ``seq_len`` and ``seed`` only, so the output files and
``manifest.json`` are byte-identical across reruns and worker counts. Timings and
the worker count go to ``build.json`` instead.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import ray

from curation import io as cio
from curation.ray_utils import init_ray
from curation.tokens.mix import (
    SourceSpec,
    as_specs,
    extra_windows,
    resolve_source,
    source_names,
    target_windows,
)
from curation.tokens.pack import pack_tails, tokenize_shard
from curation.tokens.shuffle import scatter_shard, shuffle_bucket, write_stream
from curation.tokens.tokenizer import load_tokenizer

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = "curation.tokens/1"


def _timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """Run ``fn(*args)``; return its result and the CPU seconds it used (all threads of the worker)."""
    c0 = time.process_time()
    out = fn(*args)
    return out, time.process_time() - c0


def _run_tasks(
    fn: Callable[..., Any], args: list[tuple], cap: int, what: str, cpu: dict[str, float] | None = None
) -> list[Any]:
    """Run ``fn(*a)`` for every ``a`` as Ray tasks, at most ``cap`` in flight; results in input order.

    ``cpu[what]`` accumulates the tasks' CPU seconds (for build.json).
    """
    remote = ray.remote(num_cpus=1, max_retries=3)(_timed)
    results: list[Any] = [None] * len(args)
    pending: dict[Any, int] = {}
    nxt = 0
    while nxt < len(args) or pending:
        while nxt < len(args) and len(pending) < cap:
            pending[remote.remote(fn, *args[nxt])] = nxt
            nxt += 1
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            i = pending.pop(ref)
            try:
                results[i], cpu_s = ray.get(ref)
            except Exception as e:
                for other in pending:
                    ray.cancel(other)
                raise RuntimeError(f"{what} task {i} failed: {e}") from e
            if cpu is not None:
                cpu[what] = cpu.get(what, 0.0) + cpu_s
    return results


def _rm(path: str) -> None:
    if cio.exists(path):
        fs, p = cio.fs_path(path)
        fs.rm(p, recursive=True)


def _unshuffled_shard(packed: str, out: str, n: int, seq_len: int, dtype: str, full_reps: int, extra: Any) -> dict:
    """Shuffle off: the shard's windows in order, ``full_reps`` times, then the extra copies."""
    from curation.tokens.shuffle import _read_range

    dt = np.dtype(dtype)
    w = np.frombuffer(_read_range(packed, 0, n * (seq_len + 1) * dt.itemsize), dt).reshape(n, seq_len + 1)
    rows = write_stream(out, [*([w] * full_reps), w[np.asarray(extra, dtype=np.int64)]], seq_len, dt)
    return {"file": out, "windows": rows}


def _merge_by_source(parts: list[dict[str, dict[str, int]]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for part in parts:
        for src, c in part.items():
            acc = out.setdefault(src, {"docs": 0, "doc_tokens": 0})
            acc["docs"] += c["docs"]
            acc["doc_tokens"] += c["doc_tokens"]
    return dict(sorted(out.items()))


def _stream_tokens_by_corpus_source(per_source: list[dict[str, Any]]) -> dict[str, int]:
    """Tokens in the stream per corpus source (the documents' ``source`` column), an estimate.

    Windows cross document boundaries, so a mix source's stream tokens are split
    over its corpus sources in proportion to their document tokens.
    """
    out: dict[str, float] = {}
    for s in per_source:
        total = sum(c["doc_tokens"] for c in s["by_corpus_source"].values())
        for src, c in s["by_corpus_source"].items():
            out[src] = out.get(src, 0.0) + (s["tokens"] * c["doc_tokens"] / total if total else 0.0)
    return {k: round(v) for k, v in sorted(out.items())}


def _pack_key(path: str, tokenizer_sha: str, seq_len: int, eos_id: int, dtype: str, text_column: str) -> dict:
    """What a packed shard depends on: the input file (path, size, mtime) and the packing settings."""
    fs, p = cio.fs_path(path)
    info = fs.info(p)
    mtime = info.get("mtime") or info.get("LastModified") or info.get("updated")
    return {
        "file": path,
        "size": info.get("size"),
        "mtime": str(mtime),
        "tokenizer_sha256": tokenizer_sha,
        "seq_len": seq_len,
        "eos_id": eos_id,
        "dtype": dtype,
        "text_column": text_column,
    }


def _load_done(packed_path: str, key: dict) -> dict[str, Any] | None:
    """The task result saved beside a packed shard, if it was made from the same key and is complete."""
    marker = packed_path + ".done.json"
    if not (cio.exists(marker) and cio.exists(packed_path)):
        return None
    try:
        done = cio.read_json(marker)
    except Exception:  # a damaged marker: pack again
        return None
    if done.get("key") != key:
        return None
    res = done["result"]
    res["tail"] = np.asarray(res["tail"], dtype=np.dtype(key["dtype"]))
    return res


def _save_done(packed_path: str, key: dict, result: dict[str, Any]) -> None:
    res = {k: v for k, v in result.items() if k not in ("tail", "seconds")}
    res["tail"] = np.asarray(result["tail"]).tolist()
    cio.write_json_atomic(packed_path + ".done.json", {"key": key, "result": res})


def _tokenize_or_skip(on_error: str, key: dict, path: str, model: bytes, out: str, *args: Any) -> dict[str, Any]:
    """tokenize_shard (plus its completion marker, for resume), or (``on_error="skip"``) why it failed."""
    try:
        result = tokenize_shard(path, model, out, *args)
        _save_done(out, key, result)
        return result
    except Exception as e:
        if on_error != "skip":
            raise ValueError(f"{path}: {type(e).__name__}: {e}") from e
        return {"file": path, "error": f"{type(e).__name__}: {e}"[:2000]}


def build_token_stream(
    sources: list[tuple[str, float]] | list[str] | list[SourceSpec] | dict[str, float] | str,
    out_dir: str,
    tokenizer_model: str,
    seq_len: int = 2048,
    seed: int = 0,
    num_workers: int | None = None,
    *,
    total_tokens: int | None = None,
    shuffle: bool = True,
    remainder: str = "pack",
    dtype: str | None = None,
    eos_id: int | None = None,
    num_shards: int | None = None,
    max_shard_bytes: int = 256 << 20,
    text_column: str = "text",
    batch_size: int = 1024,
    address: str | None = None,
    overwrite: bool = False,
    keep_work: bool = False,
    copy_tokenizer: bool = True,
    on_error: str = "skip",
    resume: bool = True,
) -> dict[str, Any]:
    """Tokenise, pack, mix and globally shuffle curated runs into Arrow token streams; return the manifest.

    Args:
        sources: curation run directories (``<run>/data/*.parquet``), parquet folders or globs, with weights
            (``[(dir, w), ...]`` / ``{dir: w}``) or token budgets (``SourceSpec(dir, tokens=N)``); see mix.py.
        out_dir: output folder: ``tokens-KKKKK-of-NNNNN.arrow`` files, ``manifest.json``, ``build.json``,
            and a copy of the tokenizer (``tokenizer.model``) unless ``copy_tokenizer=False``.
        tokenizer_model: a SentencePiece ``.model`` (train one with ``train_tokenizer``).
        seq_len: tokens a model sees per sample; windows hold ``seq_len + 1`` (DCLM/OpenLM use 2048).
        seed: decides the mix's subsample/upsample choices and the shuffle.
        num_workers: Ray CPUs to start locally (and tasks in flight); None = all cores / the cluster's CPUs.
        total_tokens: with weights, the stream's size (sources repeat when needed); else see mix.py.
        shuffle: False writes windows in source/shard/document order (for inspection and tests).
        remainder: ``"pack"`` packs the shards' tails into extra windows per source; ``"drop"`` drops them.
        dtype: ``"uint16"``/``"uint32"`` to override the automatic choice (uint16 while the vocabulary fits).
        eos_id: override the tokenizer's EOS id.
        num_shards: number of output files (= shuffle buckets); default keeps each under ``max_shard_bytes``,
            which also bounds a shuffle task's memory (about twice a bucket).
        overwrite: replace an existing stream in ``out_dir`` (otherwise FileExistsError).
        keep_work: keep the intermediate files in ``out_dir/_work`` (they are removed after a successful build).
        resume: reuse the packed shards that an interrupted build left in ``out_dir/_work`` when their input file
            (path, size, mtime), tokenizer, seq_len, EOS, dtype and text column are unchanged (the output is the
            same as a clean build's); False packs everything again.
        on_error: a curated shard that cannot be read or tokenised (corrupt parquet, no text column, non-string
            text) is skipped, logged and listed under ``skipped_shards`` of its source in the manifest (``"skip"``,
            the default: one bad shard does not stop a build), or stops the build (``"raise"``).
    """
    t_start, c_start = time.perf_counter(), time.process_time()
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    if on_error not in ("skip", "raise"):
        raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
    if remainder not in ("pack", "drop"):
        raise ValueError(f"remainder must be 'pack' or 'drop', got {remainder!r}")
    specs = as_specs(sources)
    resolved = [resolve_source(s) for s in specs]
    names = source_names(specs)

    if cio.is_local(out_dir):
        out_dir = os.path.abspath(out_dir)  # Ray workers may not share the driver's working directory
    manifest_path = cio.join(out_dir, MANIFEST)
    if cio.exists(manifest_path):
        if not overwrite:
            raise FileExistsError(f"{out_dir} already holds a token stream; pass overwrite=True")
        old = cio.read_json(manifest_path)
        for f in old.get("files", []):
            _rm(cio.join(out_dir, f["name"]))
        _rm(manifest_path)
    cio.makedirs(out_dir)
    # stream files without a manifest are the leftovers of an interrupted build: ours by name, remove them
    fs, root = cio.fs_path(out_dir)
    for stale in fs.glob(root.rstrip("/") + "/tokens-*.arrow*"):
        fs.rm(stale)

    sp, tok, model = load_tokenizer(tokenizer_model, eos_id=eos_id)
    del sp
    dt = np.dtype(dtype) if dtype else np.dtype(tok.dtype)
    if dt not in (np.dtype(np.uint16), np.dtype(np.uint32)):
        raise ValueError(f"dtype must be uint16 or uint32, got {dtype}")
    if dt == np.uint16 and tok.vocab_size > 65536:
        raise ValueError(f"vocabulary of {tok.vocab_size} does not fit uint16")
    tok_json = tok.to_json()
    if copy_tokenizer:
        local_copy = cio.join(out_dir, "tokenizer.model")
        cio.write_bytes_atomic(local_copy, model)
        tok_json["source_path"] = tok.path
        tok_json["path"] = os.path.abspath(local_copy) if cio.is_local(local_copy) else local_copy
    window = seq_len + 1
    wbytes = window * dt.itemsize

    init_ray(address=address, num_workers=num_workers)
    cap = num_workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    model_ref = ray.put(model)
    work = cio.join(out_dir, "_work")
    if not resume:
        _rm(work)
    _rm(cio.join(work, "scatter"))
    cio.makedirs(work)
    timings: dict[str, float] = {}
    cpu: dict[str, float] = {}

    # 1. tokenise + pack, one task per curated shard
    t0 = time.perf_counter()
    jobs, where = [], []
    for i, r in enumerate(resolved):
        for j, f in enumerate(r["files"]):
            out = cio.join(work, "packed", f"{i:03d}", f"{j:06d}.bin")
            jobs.append((f, model_ref, out, seq_len, tok.eos_id, dt.name, text_column, batch_size))
            where.append((i, j, out))
    # resume: a shard packed by an interrupted build with the same inputs and settings is reused
    keys = [_pack_key(j[0], tok.sha256, seq_len, tok.eos_id, dt.name, text_column) for j in jobs]
    packed: list[Any] = [_load_done(w[2], k) if resume else None for w, k in zip(where, keys)]
    todo = [i for i, p in enumerate(packed) if p is None]
    fresh = _run_tasks(_tokenize_or_skip, [(on_error, keys[i], *jobs[i]) for i in todo], cap, "tokenize", cpu)
    for i, p in zip(todo, fresh):
        packed[i] = p
    reused = len(jobs) - len(todo)
    if reused:
        logger.info("token stream: reused %d packed shards of an interrupted build", reused)
    skipped = [{**p, "source": si} for (si, _, _), p in zip(where, packed) if "error" in p]
    for p in skipped:
        logger.warning("token stream: skipped shard %s: %s", p["file"], p["error"])
    timings["tokenize_pack_s"] = time.perf_counter() - t0

    # per source: packed shards (path, windows) + the tails' shard
    per_source: list[dict[str, Any]] = []
    for i, (spec, r) in enumerate(zip(specs, resolved)):
        res = [p for (si, _, _), p in zip(where, packed) if si == i and "error" not in p]
        outs = [o for (si, _, o), p in zip(where, packed) if si == i and "error" not in p]
        shards = [(o, p["windows"]) for o, p in zip(outs, res)]
        tails = [p["tail"] for p in res]
        tail_windows = 0
        if remainder == "pack":
            tw, lost = pack_tails(tails, seq_len, dt)
            if len(tw):
                tpath = cio.join(work, "packed", f"{i:03d}", "tails.bin")
                cio.write_bytes_atomic(tpath, tw.tobytes())
                shards.append((tpath, len(tw)))
                tail_windows = len(tw)
        else:
            lost = int(sum(t.size for t in tails))
        per_source.append(
            {
                "name": names[i],
                "path": spec.path,
                "recipe_hash": r["recipe_hash"],
                "docs": sum(p["docs"] for p in res),
                "null_docs": sum(p["null_docs"] for p in res),
                "empty_docs": sum(p["empty_docs"] for p in res),
                "doc_tokens": sum(p["doc_tokens"] for p in res),
                "tail_windows": tail_windows,
                "remainder_tokens_dropped": lost,
                "windows_available": sum(n for _, n in shards),
                "skipped_shards": [{"file": p["file"], "error": p["error"]} for p in skipped if p["source"] == i],
                "by_corpus_source": _merge_by_source([p["by_source"] for p in res]),
                "input_shards": [
                    {
                        "file": p["file"],
                        "docs": p["docs"],
                        "doc_tokens": p["doc_tokens"],
                        "windows": p["windows"],
                        "by_corpus_source": p["by_source"],
                    }
                    for p in res
                ],
                "_packed": shards,
            }
        )

    # 2. the mix plan
    available = [s["windows_available"] for s in per_source]
    targets, shares = target_windows(specs, available, seq_len, total_tokens)
    plan = []  # (source, shard, path, n, full_reps, extra)
    for i, s in enumerate(per_source):
        w, t = available[i], int(targets[i])
        if t > 0 and w == 0:
            raise ValueError(f"source {s['name']!r} holds no full window but the mix asks for {t}")
        full_reps, rem = (t // w, t % w) if w else (0, 0)
        extra = extra_windows(seed, i, w, rem)
        start = 0
        for j, (path, n) in enumerate(s["_packed"]):
            lo, hi = np.searchsorted(extra, [start, start + n])
            plan.append((i, j, path, n, full_reps, extra[lo:hi] - start))
            start += n
        total_w = sum(targets)
        s.update(
            {
                "weight": None if shares is None else float(shares[i]),
                "requested_tokens": specs[i].tokens,
                "windows": t,
                "tokens": t * window,
                "share": float(t / total_w) if total_w else 0.0,
                "full_copies": full_reps,
                "repetitions": max(0, t - w),
                "subsampled_out": max(0, w - t),
            }
        )

    # 3. scatter + shuffle (or write in order)
    total_windows = int(sum(targets))
    t0 = time.perf_counter()
    files: list[dict[str, Any]] = []
    if shuffle:
        k = num_shards or max(1, math.ceil(total_windows * wbytes / max_shard_bytes))
        k = max(1, min(k, max(1, total_windows)))
        jobs = [
            (path, cio.join(work, "scatter", f"{i:03d}-{j:06d}.bin"), n, seq_len, dt.name, seed, i, j, fr, ex, k)
            for (i, j, path, n, fr, ex) in plan
        ]
        jobs = [jb for jb, p in zip(jobs, plan) if p[3] and (p[4] or len(p[5]))]
        scattered = _run_tasks(scatter_shard, jobs, cap, "scatter", cpu)
        timings["scatter_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        bjobs = []
        for b in range(k):
            parts = [(jb[1], sc["items"], sc["offsets"][b], sc["offsets"][b + 1]) for jb, sc in zip(jobs, scattered)]
            bjobs.append((b, parts, cio.join(out_dir, f"tokens-{b:05d}-of-{k:05d}.arrow"), seq_len, dt.name))
        written = _run_tasks(shuffle_bucket, bjobs, cap, "shuffle", cpu)
        timings["shuffle_write_s"] = time.perf_counter() - t0
        files = [{"name": f"tokens-{w['bucket']:05d}-of-{k:05d}.arrow", "windows": w["windows"]} for w in written]
    else:
        k = 0
        jobs, fnames = [], []
        for i, j, path, n, fr, ex in plan:
            if n and (fr or len(ex)):
                fnames.append(f"tokens-{i:03d}-{j:06d}.arrow")
                jobs.append((path, cio.join(out_dir, fnames[-1]), n, seq_len, dt.name, fr, ex))
        written = _run_tasks(_unshuffled_shard, jobs, cap, "write", cpu)
        timings["write_s"] = time.perf_counter() - t0
        files = [{"name": fn, "windows": w["windows"]} for fn, w in zip(fnames, written)]
    assert sum(f["windows"] for f in files) == total_windows, "window count mismatch"

    for s in per_source:
        s.pop("_packed")
    mode = "tokens" if specs[0].tokens is not None else "weights" if specs[0].weight is not None else "all"
    manifest = {
        "format": FORMAT,
        "files": files,
        "num_windows": total_windows,
        "num_tokens": total_windows * window,
        "seq_len": seq_len,
        "window": window,
        "dtype": dt.name,
        "eos_id": tok.eos_id,
        "vocab_size": tok.vocab_size,
        "tokenizer": tok_json,
        "seed": seed,
        "shuffle": shuffle,
        "num_buckets": k,
        "remainder": remainder,
        "mix": {"mode": mode, "total_tokens": total_tokens, "sources": per_source},
        "tokens_per_source": {s["name"]: s["tokens"] for s in per_source},
        "doc_tokens_by_corpus_source": _merge_by_source([s["by_corpus_source"] for s in per_source]),
        "stream_tokens_by_corpus_source_est": _stream_tokens_by_corpus_source(per_source),
        "recipe_hashes": [s["recipe_hash"] for s in per_source],
        "skipped_shards": sum(len(s["skipped_shards"]) for s in per_source),
    }
    cio.write_json_atomic(manifest_path, manifest)
    if not keep_work:
        _rm(work)
    timings["total_s"] = time.perf_counter() - t_start
    doc_tokens = sum(s["doc_tokens"] for s in per_source)
    cio.write_json_atomic(
        cio.join(out_dir, "build.json"),
        {
            "workers": cap,
            "reused_packed_shards": reused,
            "timings": timings,
            "task_cpu_s": cpu,
            "driver_cpu_s": time.process_time() - c_start,
            "doc_tokens": doc_tokens,
            "tokens_per_s": doc_tokens / timings["total_s"] if timings["total_s"] else None,
        },
    )
    logger.info(
        "token stream: %d windows (%d tokens) from %d sources into %d files in %.1fs -> %s",
        total_windows,
        total_windows * window,
        len(per_source),
        len(files),
        timings["total_s"],
        out_dir,
    )
    return manifest
