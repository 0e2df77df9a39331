"""build_token_stream: curated parquet -> tokenised, packed, globally shuffled, mixed Arrow token streams.

A short composition of passes (:mod:`curation.passes`), one item per unit of data,
never per document:

1. ``tokenize``, one item per curated shard: tokenise + pack (pack.py) into ``_work/packed``;
2. the driver packs the shards' tails and plans the mix (mix.py): which windows, how many copies;
3. ``scatter``, one item per packed shard: key the selected window copies into K buckets (shuffle.py);
4. ``shuffle``, one item per bucket: order by key, write one Arrow stream file
   (with ``shuffle=False``, ``write`` instead: one file per packed shard, in order).

Every choice (which windows, how many copies, their keys, K) is a function of the
inputs, the tokenizer, the :class:`TokenStreamConfig` and its seed only, never of
the executor or the number of workers, so the output files and ``manifest.json``
are byte-identical across reruns, worker counts and local vs Ray. Timings and the
passes' summaries go to ``build.json`` instead.

Resume: each pass keeps its markers in ``<out>/_work/_passes/<pass>``; the executor
owns completeness (:mod:`curation.passes`): an item is complete for the same input
fingerprint (a curated shard's size and ETag or mtime), the same arguments and
settings, the same upstream pass (``Item.after``), and while its declared outputs
exist, so a build whose driver was killed resumes at the item: the rerun redoes only
the unfinished shards or buckets. ``_work`` is removed after a successful build unless
``keep_work``. Works the same on an object store (every file is one complete object).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from curation import storage
from curation.passes import Executor, Item, PassResult, digest
from curation.tokens.manifest import make_manifest, source_summary
from curation.tokens.mix import (
    SourceSpec,
    as_specs,
    extra_windows,
    rehydration_table,
    resolve_source,
    source_names,
    target_windows,
)
from curation.tokens.pack import pack_tails, tokenize_shard
from curation.tokens.shuffle import _read_range, scatter_shard, shuffle_bucket, write_stream
from curation.tokens.tokenizer import load_tokenizer

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
#: a shuffle task holds its bucket about three times (read, concatenated, reordered batch)
BUCKET_MEMORY_FACTOR = 3


@dataclass(frozen=True, kw_only=True)
class TokenStreamConfig:
    """How a token stream is built. All fields but the last three define the output.

    seq_len: tokens a model sees per sample; windows hold ``seq_len + 1`` (DCLM/OpenLM use 2048).
    seed: decides the mix's subsample/upsample choices and the shuffle.
    total_tokens: with weights, the stream's size (sources repeat when needed); else see mix.py.
    shuffle: False writes windows in source/shard/document order (for inspection and tests).
    remainder: ``"pack"`` packs the shards' tails into extra windows per source; ``"drop"`` drops them.
    dtype: ``"uint16"``/``"uint32"`` to override the automatic choice (uint16 while the vocabulary fits).
    eos_id: override the tokenizer's EOS id.
    num_shards: number of output files (= shuffle buckets); default keeps each under ``max_shard_bytes``,
        which also bounds a shuffle task's memory (about three times a bucket).
    text_column: the column holding the document text; ``batch_size``: rows read per batch.
    copy_tokenizer: write a copy of the tokenizer (``tokenizer.model``) beside the stream.
    on_error: a curated shard that cannot be read or tokenised (corrupt parquet, no text column, non-string
        text) is skipped, logged and listed under ``skipped_shards`` of its source in the manifest (``"skip"``:
        one bad shard does not stop a build), or stops the build (``"raise"``).
    overwrite: replace an existing stream of other inputs or settings in the output folder (otherwise
        FileExistsError). A finished stream of the same inputs, tokenizer and settings is returned as it is,
        without work, whatever ``overwrite`` says (``resume=False`` rebuilds it).
    keep_work: keep the intermediate files and pass markers in ``<out>/_work``.
    resume: reuse a finished build, or the items an interrupted build completed (same inputs and settings, so
        the output is the same as a clean build's); False recomputes everything.
    rehydrate: pack each document as many times as its duplicate cluster's size gives (the curated runs'
        ``dup_cluster_size``, written by exact and MinHash dedup) by a step table: ``"fineweb2"`` (FineWeb-2's
        published weights), ``"1:1,2:2,5:4"`` (cluster size from : copies) or pairs; None (default) packs
        each document once. See mix.py; the table and the copies made are in the manifest.
    """

    seq_len: int = 2048
    seed: int = 0
    total_tokens: int | None = None
    shuffle: bool = True
    remainder: str = "pack"
    dtype: str | None = None
    eos_id: int | None = None
    num_shards: int | None = None
    max_shard_bytes: int = 256 << 20
    text_column: str = "text"
    batch_size: int = 1024
    copy_tokenizer: bool = True
    on_error: str = "skip"
    overwrite: bool = False
    keep_work: bool = False
    resume: bool = True
    rehydrate: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "rehydrate", rehydration_table(self.rehydrate))
        if self.seq_len < 1:
            raise ValueError(f"seq_len must be >= 1, got {self.seq_len}")
        if self.on_error not in ("skip", "raise"):
            raise ValueError(f"on_error must be 'skip' or 'raise', got {self.on_error!r}")
        if self.remainder not in ("pack", "drop"):
            raise ValueError(f"remainder must be 'pack' or 'drop', got {self.remainder!r}")
        if self.dtype not in (None, "uint16", "uint32"):
            raise ValueError(f"dtype must be uint16 or uint32, got {self.dtype}")
        if self.num_shards is not None and self.num_shards < 1:
            raise ValueError(f"num_shards must be >= 1, got {self.num_shards}")
        if self.max_shard_bytes < 1 or self.batch_size < 1:
            raise ValueError("max_shard_bytes and batch_size must be >= 1")


def make_executor(executor: Executor | str | None, num_workers: int | None, address: str | None,
                  input_bytes: int, **options: Any) -> Executor:
    """Kept for callers of the earlier API: :func:`curation.passes.make_executor`, the one builder."""
    from curation.passes import make_executor as build

    return build(executor, input_bytes=input_bytes, num_workers=num_workers, address=address, **options)


def build_token_stream(
    sources: list[tuple[str, float]] | list[str] | list[SourceSpec] | dict[str, float] | str,
    out_dir: str,
    tokenizer_model: str,
    config: TokenStreamConfig | None = None,
    *,
    executor: Executor | str | None = None,
    num_workers: int | None = None,
    address: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Tokenise, pack, mix and globally shuffle curated runs into Arrow token streams; return the manifest.

    Args:
        sources: curation run directories (``<run>/data/*.parquet``), parquet folders or globs, with weights
            (``[(dir, w), ...]`` / ``{dir: w}``) or token budgets (``SourceSpec(dir, tokens=N)``); see mix.py.
        out_dir: output folder: ``tokens-KKKKK-of-NNNNN.arrow`` files, ``manifest.json``, ``build.json``,
            and a copy of the tokenizer (``tokenizer.model``) unless ``copy_tokenizer=False``.
        tokenizer_model: a SentencePiece ``.model`` (train one with ``train_tokenizer``).
        config: a :class:`TokenStreamConfig`; ``**options`` are its fields, given one by one (they override
            ``config``'s), e.g. ``build_token_stream(runs, out, tok, seq_len=2048, seed=1)``.
        executor: an :class:`~curation.passes.Executor` to run the passes on (shared with a larger job), or
            ``"ray"``/``"local"``/``"auto"`` (default: in-process for inputs under 16 MiB, else Ray);
            ``num_workers`` (tasks in flight, and the CPUs of an embedded Ray) and ``address`` (a Ray
            cluster to join) configure a new one.
    """
    try:
        cfg = dataclasses.replace(config or TokenStreamConfig(), **options)
    except TypeError as e:
        names = ", ".join(f.name for f in dataclasses.fields(TokenStreamConfig))
        raise TypeError(f"build_token_stream: {e}; the options are {names}") from None
    t_start, c_start = time.perf_counter(), time.process_time()
    specs = as_specs(sources)
    resolved = [resolve_source(s) for s in specs]
    infos = storage.stat_many(f for r in resolved for f in r["files"])  # one listing per folder
    sizes = [[int((infos.get(f) or {}).get("size") or 0) for f in r["files"]] for r in resolved]
    sp, tok, model = load_tokenizer(tokenizer_model, eos_id=cfg.eos_id)
    del sp
    if storage.is_local(out_dir):
        out_dir = os.path.abspath(out_dir)  # Ray workers may not share the driver's working directory
    # everything the stream is a function of: a finished build of the same key is the stream asked for
    build_key = digest({"sources": [dataclasses.asdict(s) for s in specs], "tokenizer": tok.sha256,
                        "files": [[f, storage.fingerprint_of(infos[f]) if infos.get(f) else None]
                                  for r in resolved for f in r["files"]],
                        "config": {k: v for k, v in dataclasses.asdict(cfg).items()
                                   if k not in ("overwrite", "keep_work", "resume")}})
    if cfg.resume:
        done = _finished_build(out_dir, build_key)
        if done is not None:
            logger.info("token stream in %s is complete for the same inputs and settings: nothing to do", out_dir)
            return done
    ex = make_executor(executor, num_workers, address, sum(map(sum, sizes)))
    if cfg.num_shards is None:
        _check_bucket_memory(cfg.max_shard_bytes, ex, "lower max_shard_bytes (--max-shard-mb)")
    out_dir = _prepare_out_dir(out_dir, cfg)
    dt = np.dtype(cfg.dtype or tok.dtype)
    if dt == np.uint16 and tok.vocab_size > 65536:
        raise ValueError(f"vocabulary of {tok.vocab_size} does not fit uint16")
    tok_json = tok.to_json()
    if cfg.copy_tokenizer:
        local_copy = storage.join(out_dir, "tokenizer.model")
        storage.write_bytes_atomic(local_copy, model)
        tok_json["source_path"] = tok.path
        tok_json["path"] = os.path.abspath(local_copy) if storage.is_local(local_copy) else local_copy
    work = storage.join(out_dir, "_work")
    if not cfg.resume:
        _rm(work)
    b = _Build(cfg, ex, work, dt, tok.eos_id)

    packed = b.tokenize(resolved, sizes, model, tok.sha256)
    per_source, upstream = b.sources(specs, resolved, packed)
    plan, targets = b.plan(specs, per_source)
    total_windows = int(sum(targets))
    if cfg.shuffle:
        files, k = b.shuffle(plan, total_windows, upstream, out_dir)
    else:
        files, k = b.write_in_order(plan, upstream, out_dir), 0
    assert sum(f["windows"] for f in files) == total_windows, "window count mismatch"

    for src in per_source:
        src.pop("_packed")
    manifest = make_manifest(cfg, specs, per_source, files, total_windows, k, dt, tok, tok_json)
    storage.write_json_atomic(storage.join(out_dir, MANIFEST), manifest)
    _remove_stale_streams(out_dir, {f["name"] for f in files})
    task_cpu = {r.name: b.task_cpu(r) for r in b.passes}
    if not cfg.keep_work:
        _rm(work)
    total_s = time.perf_counter() - t_start
    driver_cpu = time.process_time() - c_start - (sum(task_cpu.values()) if not ex.uses_ray else 0.0)
    doc_tokens = sum(s["doc_tokens"] for s in per_source)
    storage.write_json_atomic(storage.join(out_dir, "build.json"), {
        "build_key": build_key,
        "executor": ex.cfg.mode,
        "workers": ex.cfg.num_workers,
        "passes": [r.summary() for r in b.passes],
        "reused_packed_shards": len(b.passes[0].skipped),
        "timings": {f"{r.name}_s": r.seconds for r in b.passes} | {"total_s": total_s},
        "task_cpu_s": task_cpu,
        "driver_cpu_s": driver_cpu,
        "doc_tokens": doc_tokens,
        "tokens_per_s": doc_tokens / total_s if total_s else None,
    })  # fmt: skip
    logger.info("token stream: %d windows (%d tokens) from %d sources into %d files in %.1fs -> %s", total_windows,
                total_windows * (cfg.seq_len + 1), len(per_source), len(files), total_s, out_dir)
    return manifest


# --------------------------------------------------------------------------------------------- the passes


@dataclass
class _Build:
    cfg: TokenStreamConfig
    ex: Executor
    work: str
    dt: np.dtype
    eos_id: int
    passes: list[PassResult] = field(default_factory=list)

    def run(self, name: str, fn: Any, items: list[Item], config: Any, **kw: Any) -> PassResult:
        """One pass with its markers in ``_work/_passes/<name>`` (the items declare their outputs: one whose
        output is gone runs again)."""
        res = self.ex.run(name, fn, items, marker_dir=storage.join(self.work, "_passes", name), config=config,
                          resume=None if self.cfg.resume else False, **kw)
        self.passes.append(res)
        return res

    def task_cpu(self, res: PassResult) -> float:
        """CPU seconds of the items this build ran (from their markers)."""
        return float(sum(res.cpu_s.values()))

    def tokenize(self, resolved: list[dict], sizes: list[list[int]], model: bytes, tok_sha: str) -> list[list[dict]]:
        """Pass 1: per source, per curated shard, the packing result (``{"error"}`` for a skipped shard)."""
        cfg = self.cfg
        items = []
        for i, r in enumerate(resolved):
            for j, (f, size) in enumerate(zip(r["files"], sizes[i])):
                out = storage.join(self.work, "packed", f"{i:03d}", f"{j:06d}.bin")
                args = (f, out, cfg.seq_len, self.eos_id, self.dt.name, cfg.text_column, cfg.batch_size,
                        cfg.rehydrate)
                items.append(Item(f"{i:03d}-{j:06d}", args, inputs=(f,), weight=size, outputs=(out,)))
        config = {"tokenizer": tok_sha, "seq_len": cfg.seq_len, "eos_id": self.eos_id, "dtype": self.dt.name,
                  "text_column": cfg.text_column}
        res = self.run("tokenize", _tokenize_item, items, config, on_error="collect", shared=model,
                       progress="tokenize", count=lambda r: r["docs"])
        failed = {it.args[0]: res.failed[it.key][:2000] for it in items if it.key in res.failed}
        if failed and cfg.on_error == "raise":
            first = next(iter(failed.items()))
            raise RuntimeError(f"token stream: {len(failed)} curated shard(s) could not be tokenised (first: "
                               f"{first[0]}: {first[1]}); fix or remove them, or build with on_error='skip'")
        by_key = res.by_key()
        out: list[list[dict]] = []
        for i, r in enumerate(resolved):
            keys = [f"{i:03d}-{j:06d}" for j in range(len(r["files"]))]
            out.append([{"file": f, "error": failed[f]} if k in res.failed else by_key[k]
                        for k, f in zip(keys, r["files"])])
        for f, err in failed.items():
            logger.warning("token stream: skipped shard %s: %s", f, err)
        return out

    def sources(self, specs: list[SourceSpec], resolved: list[dict], packed: list[list[dict]]
                ) -> tuple[list[dict[str, Any]], str]:
        """Per source: counts, the packed shards (path, windows) and the tails' shard; plus the digest of
        what the later passes read (the tokenize pass and the tails)."""
        names = source_names(specs)
        tails_sha = []
        per_source: list[dict[str, Any]] = []
        for i, (spec, r) in enumerate(zip(specs, resolved)):
            ok = [(j, p) for j, p in enumerate(packed[i]) if "error" not in p]
            shards = [(storage.join(self.work, "packed", f"{i:03d}", f"{j:06d}.bin"), p["windows"]) for j, p in ok]
            tails = [p["tail"] for _, p in ok]
            tail_windows = 0
            if self.cfg.remainder == "pack":
                tw, lost = pack_tails(tails, self.cfg.seq_len, self.dt)
                if len(tw):
                    tpath = storage.join(self.work, "packed", f"{i:03d}", "tails.bin")
                    storage.write_bytes_atomic(tpath, tw.tobytes())
                    shards.append((tpath, len(tw)))
                    tail_windows = len(tw)
                tails_sha.append(hashlib.sha256(tw.tobytes()).hexdigest())
            else:
                lost = int(sum(np.asarray(t).size for t in tails))
            per_source.append(source_summary(names[i], spec.path, r["recipe_hash"], packed[i], tail_windows, lost)
                              | {"_packed": shards})
        return per_source, digest({"tokenize": self.passes[0].digest, "tails": tails_sha})

    def plan(self, specs: list[SourceSpec], per_source: list[dict[str, Any]]) -> tuple[list[tuple], np.ndarray]:
        """The mix: per packed shard ``(source, shard, path, windows, full copies, extra window indices)``."""
        seq_len, seed = self.cfg.seq_len, self.cfg.seed
        available = [s["windows_available"] for s in per_source]
        targets, shares = target_windows(specs, available, seq_len, self.cfg.total_tokens)
        total_w = sum(targets)
        plan = []
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
            s.update({
                "weight": None if shares is None else float(shares[i]),
                "requested_tokens": specs[i].tokens,
                "windows": t,
                "tokens": t * (seq_len + 1),
                "share": float(t / total_w) if total_w else 0.0,
                "full_copies": full_reps,
                "repetitions": max(0, t - w),
                "subsampled_out": max(0, w - t),
            })  # fmt: skip
        return plan, targets

    def _plan_items(self, plan: list[tuple], out: Any, args: Any) -> tuple[list[Item], list[str]]:
        """One item per packed shard that contributes windows; ``out(i, j)`` its output, ``args(...)`` its args
        (hashed whole: the packed shard, its windows, copies and extra window indices)."""
        items, outs = [], []
        for i, j, path, n, fr, ex in plan:
            if n and (fr or len(ex)):
                o = out(i, j)
                items.append(Item(f"{i:03d}-{j:06d}", args(i, j, path, n, fr, ex, o), outputs=(o,)))
                outs.append(o)
        return items, outs

    def shuffle(self, plan: list[tuple], total_windows: int, upstream: str, out_dir: str
                ) -> tuple[list[dict[str, Any]], int]:
        """Passes 3 and 4: scatter into K buckets, then shuffle and write each bucket."""
        cfg, dt = self.cfg, self.dt
        wbytes = (cfg.seq_len + 1) * dt.itemsize
        k = cfg.num_shards or max(1, math.ceil(total_windows * wbytes / cfg.max_shard_bytes))
        k = max(1, min(k, max(1, total_windows)))
        _check_bucket_memory(math.ceil(total_windows / k) * wbytes, self.ex, "raise num_shards")
        items, outs = self._plan_items(
            plan, lambda i, j: storage.join(self.work, "scatter", f"{i:03d}-{j:06d}.bin"),
            lambda i, j, path, n, fr, ex, out: (path, out, n, cfg.seq_len, dt.name, cfg.seed, i, j, fr, ex, k))
        config = {"seed": cfg.seed, "buckets": k, "seq_len": cfg.seq_len, "dtype": dt.name}
        sc = self.run("scatter", scatter_shard, items, config, count=lambda r: r["items"], after=[upstream])
        names = [f"tokens-{b:05d}-of-{k:05d}.arrow" for b in range(k)]
        bitems = []
        for b, name in enumerate(names):
            parts = [(out, r["items"], r["offsets"][b], r["offsets"][b + 1]) for out, r in zip(outs, sc.results)
                     if r["offsets"][b + 1] > r["offsets"][b]]
            path = storage.join(out_dir, name)
            bitems.append(Item(f"{b:05d}", (b, parts, path, cfg.seq_len, dt.name), outputs=(path,)))
        config = {"buckets": k, "seq_len": cfg.seq_len, "dtype": dt.name}
        sh = self.run("shuffle", shuffle_bucket, bitems, config, count=lambda r: r["windows"], after=[sc])
        return [_file_entry(name, r) for name, r in zip(names, sh.results)], k

    def write_in_order(self, plan: list[tuple], upstream: str, out_dir: str) -> list[dict[str, Any]]:
        """Pass 3 without shuffling: one file per packed shard, its windows in order."""
        cfg, dt = self.cfg, self.dt
        items, outs = self._plan_items(
            plan, lambda i, j: storage.join(out_dir, f"tokens-{i:03d}-{j:06d}.arrow"),
            lambda i, j, path, n, fr, ex, out: (path, out, n, cfg.seq_len, dt.name, fr, ex))
        res = self.run("write", _unshuffled_shard, items, {"seq_len": cfg.seq_len, "dtype": dt.name},
                       after=[upstream])
        return [_file_entry(out.rsplit("/", 1)[-1], r) for out, r in zip(outs, res.results)]


# --------------------------------------------------------------------------------------------- item functions


def _file_entry(name: str, result: dict[str, Any]) -> dict[str, Any]:
    """A manifest ``files`` entry: the name, its windows and the sha256 of its windows' bytes (absent in a
    pass result written before digests existed)."""
    entry = {"name": name, "windows": result["windows"]}
    if result.get("sha256"):
        entry["sha256"] = result["sha256"]
    return entry


def _tokenize_item(path: str, out: str, seq_len: int, eos_id: int, dtype: str, text_column: str, batch_size: int,
                   rehydrate: Any, model: bytes) -> dict[str, Any]:
    """tokenize_shard (the tokenizer comes last: the pass's shared argument)."""
    result = tokenize_shard(path, model, out, seq_len, eos_id, dtype, text_column, batch_size, rehydrate)
    result.pop("seconds", None)  # timings live in the pass markers
    return result


def _unshuffled_shard(packed: str, out: str, n: int, seq_len: int, dtype: str, full_reps: int, extra: Any) -> dict:
    """Shuffle off: the shard's windows in order, ``full_reps`` times, then the extra copies."""
    dt = np.dtype(dtype)
    w = np.frombuffer(_read_range(packed, 0, n * (seq_len + 1) * dt.itemsize), dt).reshape(n, seq_len + 1)
    sha = hashlib.sha256()
    rows = write_stream(out, [*([w] * full_reps), w[np.asarray(extra, dtype=np.int64)]], seq_len, dt, sha)
    return {"file": out, "windows": rows, "sha256": sha.hexdigest()}


# --------------------------------------------------------------------------------------------- helpers


def _rm(path: str) -> None:
    storage.rm_tree(path)


def _check_bucket_memory(bucket_bytes: int, ex: Executor, fix: str) -> None:
    need = BUCKET_MEMORY_FACTOR * bucket_bytes
    if need > ex.cfg.memory_per_worker:
        raise ValueError(f"a shuffle bucket of {bucket_bytes / 2**20:.0f} MiB needs about {need / 2**20:.0f} MiB in "
                         f"one task, over memory_per_worker={ex.cfg.memory_per_worker / 2**20:.0f} MiB; {fix}, or "
                         "raise memory_per_worker")


def _finished_build(out_dir: str, build_key: str) -> dict[str, Any] | None:
    """The manifest of a finished build of ``build_key`` in ``out_dir`` whose files all exist, else None
    (reads build.json and manifest.json, lists the folder once)."""
    try:
        build = storage.read_json(storage.join(out_dir, "build.json"))
        if build.get("build_key") != build_key:
            return None
        manifest = storage.read_json(storage.join(out_dir, MANIFEST))
    except (FileNotFoundError, ValueError):
        return None
    names = [storage.join(out_dir, f["name"]) for f in manifest.get("files", [])]
    infos = storage.stat_many(names)
    return manifest if all(infos.get(n) for n in names) else None


def _prepare_out_dir(out_dir: str, cfg: TokenStreamConfig) -> str:
    """The absolute output folder; an existing stream is removed (``overwrite``) or refused."""
    if storage.is_local(out_dir):
        out_dir = os.path.abspath(out_dir)  # Ray workers may not share the driver's working directory
    manifest_path = storage.join(out_dir, MANIFEST)
    if storage.exists(manifest_path):
        if not cfg.overwrite:
            raise FileExistsError(f"{out_dir} already holds a token stream; pass overwrite=True")
        old = storage.read_json(manifest_path)
        for f in old.get("files", []):
            _rm(storage.join(out_dir, f["name"]))
        _rm(manifest_path)
    storage.makedirs(out_dir)
    return out_dir


def _remove_stale_streams(out_dir: str, keep: set[str]) -> None:
    """Stream files that are not in the manifest: leftovers of an interrupted build (ours by name)."""
    fs, root = storage.fs_path(out_dir)
    for stale in fs.glob(root.rstrip("/") + "/tokens-*.arrow*"):
        if stale.rsplit("/", 1)[-1] not in keep:
            fs.rm(stale)
