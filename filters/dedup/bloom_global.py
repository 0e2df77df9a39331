"""BFF over the whole corpus (DCLM's ``dedup/bff``, old-both) as resumable passes, without actors.

The rule is :mod:`filters.dedup.bloom`'s: a paragraph goes when more than ``threshold``
of its n-grams were seen before it in corpus order (shards sorted by id, rows in
order, paragraphs in order), a document when more than ``threshold`` of all its
n-grams were. Here "before" spans the whole corpus.

Passes (each resumes at the item; every downstream pass carries the upstream digest)
-------------------------------------------------------------------------------------
1. ``footers``: rows and text bytes per shard (parquet footers) give the expected
   n-gram count and so the number ``P`` of filter partitions for the budget.
2. ``map``, one item per shard: the n-gram hashes of each batch, with their
   paragraph index in the shard, go to the partition of their filter block, in
   chunk files flushed at a budget-derived buffer size; the shard's paragraphs per
   document and n-grams per paragraph go to one small file.
3. ``filter``, one item per partition (a partition too big for the budget once the
   exact n-gram count is known is cut into several items by block range): stream the
   partition's chunk files of every shard in corpus order through that part of the
   filter, and write, per (shard, chunk), the "seen before" bit of each n-gram.
4. ``decide``, one item per shard: add up the seen bits per paragraph (from every
   partition) and apply old-both; per-shard decision arrays.
5. ``gather``, one item per shard: the decision file that ``process`` reads (ids,
   ``action``, cut paragraph indexes) and the removed bytes per source.

Why the decisions do not depend on the layout
---------------------------------------------
The filter is one register-blocked Bloom filter of ``filter_blocks`` (2**16) blocks of
``W`` 64-bit words, sized by :func:`~filters.dedup.bloom.bloom_size` from the *exact*
n-gram count that the map pass found (or ``expected_ngrams``). An n-gram's block is
the top 16 (log2 blocks) bits of one re-mixing of its hash, its word in the block the remaining
bits modulo ``W``, its ``k`` bits slices of another re-mixing; block and word are
uniform, so the false-positive rate is that of one blocked filter of
``filter_blocks * W`` words. A partition is a contiguous range of blocks, so every
word an n-gram can touch lives in exactly one partition whatever ``P`` is: the
partitions together *are* the global filter. Each filter item takes its n-grams in
chunks of ``chunk_paragraphs`` paragraphs of the global order (global paragraph index
// ``chunk_paragraphs``, fixed by the corpus alone): inside a chunk an n-gram is seen
when it occurs in an earlier paragraph of the chunk (exactly) or when the filter,
holding every earlier chunk, says so; then the chunk's n-grams are inserted. The
filter's state at each query, and so every false positive, is a function of the
corpus order and the configuration only: decisions are identical for any number of
shards, split size, ``P`` or worker count (tested, also at a 20% false-positive rate).

Memory per task (``--memory-per-worker`` less the fixed cost of a task)
----------------------------------------------------------------------
* map: one batch, plus at most ``map_buffer_ngrams`` buffered n-grams
  (:data:`MAP_BYTES_PER_NGRAM` each while partitioning), plus 4 bytes per paragraph
  and per document of its shard (use ``--max-shard-bytes`` to bound a shard);
* filter: its slice of the filter (1.5 bytes per n-gram of its blocks at p = 0.01;
  ``P`` makes this at most :data:`FILTER_SHARE` of the working memory) plus one chunk
  of its n-grams (:data:`CHUNK_BYTES_PER_NGRAM` each) and one map chunk file;
* decide: 12 bytes per paragraph of its shard plus one map chunk file;
* gather: one batch.
The driver holds per-shard and per-partition counts and file names, nothing per document.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation import storage
from curation.passes import Item
from curation.stage import (
    FittedState,
    GlobalContext,
    GlobalStage,
    PhaseShard,
    ShardContext,
    StageResult,
)
from curation.stats import count_by_source

from .bloom import (
    REASON_EMPTY,
    apply_decisions,
    bff_batch_ngrams,
    bit_masks,
    bloom_size,
    check_bff_settings,
    decide_from_counts,
    false_positive_rate,
    seed_keys,
    seen_earlier_in_batch,
)
from .common import (
    PartitionChunks,
    apply_shard_decisions,
    buffer_records,
    check_fits,
    chunk_path,
    corpus_size,
    load_arrays,
    merge_per_source,
    ordered_shards,
    read_decisions,
    save_arrays,
    shard_items,
    working_memory,
)
from .hashing import fmix64

logger = logging.getLogger(__name__)

FILTER_BLOCKS = 1 << 16  # the default number of blocks: the filter is at least 512 KiB, P at most 65,536
BYTES_PER_NGRAM_GUESS = 5  # one token per ~5 bytes of text: the n-gram count is ~ the token count
#: a map task's buffer, per n-gram: (hash, paragraph) 12 B, the concatenation, partition and permutation
MAP_BYTES_PER_NGRAM = 48
#: a filter task, per n-gram of its chunk: hash, global paragraph, source file, the in-chunk sort
CHUNK_BYTES_PER_NGRAM = 64
#: bound on n-grams per paragraph used to check ``chunk_paragraphs`` against the budget
NGRAMS_PER_PARAGRAPH_BOUND = 64
#: the share of a filter task's working memory its slice of the filter may take
FILTER_SHARE = 0.5


@dataclass(frozen=True)
class BloomConfig:
    """Settings of :class:`BloomDedup` (DCLM's recommended defaults).

    ``expected_ngrams``: sizes the filter; ``None`` uses the exact count the map pass finds.
    ``filter_blocks``: the filter's units of partitioning (a power of two; the filter has at
    least one 64-bit word per block, and at most this many partitions).
    ``ngrams_per_partition`` / ``map_buffer_ngrams``: ``None`` derives them from the memory
    budget; explicit values are checked against it before anything runs. ``min_partitions``
    keeps the filter pass parallel on a small corpus. ``chunk_paragraphs``: the fixed
    paragraph ranges of the corpus order in which the filter pass checks and inserts.
    """

    ngram_size: int = 13
    min_ngram_size: int = 13
    threshold: float = 0.8
    fp_rate: float = 0.01
    expected_ngrams: int | None = None
    ngrams_per_partition: int | None = None
    min_partitions: int = 4
    map_buffer_ngrams: int | None = None
    chunk_paragraphs: int = 1 << 15
    filter_blocks: int = FILTER_BLOCKS
    batch_size: int = 2048
    seed: int = 0

    def __post_init__(self) -> None:
        check_bff_settings(self.ngram_size, self.min_ngram_size, self.threshold, self.fp_rate)
        for name in ("expected_ngrams", "ngrams_per_partition", "map_buffer_ngrams"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"{name} must be positive (or None), got {v}")
        b = self.filter_blocks
        if b < 2 or b > 1 << 20 or b & (b - 1):
            raise ValueError(f"filter_blocks must be a power of two in [2, 2**20], got {b}")
        if not 1 <= self.min_partitions <= b:
            raise ValueError(f"min_partitions must be in [1, filter_blocks={b}], got {self.min_partitions}")
        if self.chunk_paragraphs < 1 or self.batch_size < 1:
            raise ValueError("chunk_paragraphs and batch_size must be positive")

    @property
    def bytes_per_ngram(self) -> float:
        return bloom_size(10**6, self.fp_rate)[0] / 8 / 10**6


@dataclass(frozen=True)
class BffDecisions(FittedState):
    """The fitted state of :class:`BloomDedup`: per shard id, its decision parquet (id, action, paragraphs)."""

    decisions: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- the partitioned filter


def _shift(blocks: int) -> np.uint64:
    return np.uint64(64 - (blocks.bit_length() - 1))


def block_of(h: np.ndarray, seed: int, blocks: int) -> np.ndarray:
    """The filter block of each n-gram hash: the top log2(blocks) bits of a seeded re-mixing."""
    return (fmix64(h ^ seed_keys(seed)[0]) >> _shift(blocks)).astype(np.int64)


def block_bounds(num_partitions: int, blocks: int) -> list[int]:
    """First block of each partition (and the end): partition ``p`` holds blocks ``b`` with ``b*P // G == p``."""
    return [(p * blocks + num_partitions - 1) // num_partitions for p in range(num_partitions + 1)]


class FilterSlice:
    """Blocks ``[lo, hi)`` of the global blocked filter of ``blocks`` blocks of ``words_per_block`` words."""

    def __init__(self, lo: int, hi: int, blocks: int, words_per_block: int, num_hashes: int, seed: int) -> None:
        self.lo, self.hi, self.wpb, self.num_hashes = lo, hi, words_per_block, num_hashes
        self._shift = _shift(blocks)
        self._low = np.uint64((1 << int(self._shift)) - 1)
        self._k1, self._k2 = seed_keys(seed)
        self.words = np.zeros((hi - lo) * words_per_block, dtype=np.uint64)
        self.inserted = 0

    @property
    def num_bits(self) -> int:
        return int(self.words.size * 64)

    def _locate(self, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u = fmix64(h ^ self._k1)
        block = (u >> self._shift).astype(np.int64)
        if len(block) and (block.min() < self.lo or block.max() >= self.hi):
            raise ValueError(f"n-gram outside filter blocks [{self.lo}, {self.hi})")
        word = ((u & self._low) % np.uint64(self.wpb)).astype(np.int64)
        return (block - self.lo) * self.wpb + word, bit_masks(h, self._k2, self.num_hashes)

    def contains(self, h: np.ndarray) -> np.ndarray:
        idx, mask = self._locate(h)
        return (self.words[idx] & mask) == mask

    def add(self, h: np.ndarray) -> None:
        idx, mask = self._locate(h)
        np.bitwise_or.at(self.words, idx, mask)
        self.inserted += len(idx)

    def set_bits(self) -> int:
        return int(np.bitwise_count(self.words).sum(dtype=np.int64))


# --------------------------------------------------------------------------- pass functions


def _paras_path(wd: str, s: int) -> str:
    return storage.join(wd, "paras", f"s{s:06d}.npz")


def _seen_path(wd: str, f: int, s: int, c: int) -> str:
    return storage.join(wd, "seen", f"f{f:05d}", f"s{s:06d}-c{c:04d}.npz")


def _decision_path(wd: str, s: int) -> str:
    return storage.join(wd, "decide", f"s{s:06d}.npz")


def _map_bff(shard: PhaseShard, s: int, cfg: BloomConfig, num_partitions: int, flush: int, wd: str) -> dict:
    out = PartitionChunks(storage.join(wd, "ngrams"), s, num_partitions, flush)
    counts, totals = [], []
    n_para = rows = 0
    for batch in storage.iter_parquet_batches(shard.path, batch_size=cfg.batch_size, columns=["text"]):
        ng = bff_batch_ngrams(batch.column(0), cfg.ngram_size, cfg.min_ngram_size)
        n = len(ng["para_doc"])
        if n_para + n >= 1 << 32:
            raise ValueError(f"{shard.shard_id}: over 2**32 paragraphs in one shard; cut it with --max-shard-bytes")
        part = block_of(ng["hash"], cfg.seed, cfg.filter_blocks) * num_partitions // cfg.filter_blocks
        out.add(part, hash=ng["hash"], para=(ng["ngram_para"] + n_para).astype(np.uint32))
        counts.append(ng["para_count"].astype(np.int32))
        totals.append(np.bincount(ng["ngram_para"], minlength=n).astype(np.int32))
        n_para += n
        rows += batch.num_rows
    save_arrays(_paras_path(wd, s), para_count=np.concatenate(counts) if counts else np.zeros(0, np.int32),
                para_total=np.concatenate(totals) if totals else np.zeros(0, np.int32))
    ngrams = out.records
    return {"rows": rows, "paragraphs": n_para, "ngrams": ngrams, "chunks": out.close()}


def _filter_partition(files: list[list], lo: int, hi: int, whole: bool, flt: dict[str, int], wd: str, f: int,
                      offsets: list[int]) -> dict[str, int]:
    """Stream ``files`` ([shard, chunk, path], corpus order) through blocks [lo, hi) of the filter."""
    filt = FilterSlice(lo, hi, flt["blocks"], flt["words_per_block"], flt["hashes"], flt["seed"])
    logger.info("bff filter item %d: blocks [%d, %d), %.1f MiB", f, lo, hi, filt.words.nbytes / 2**20)
    k = flt["chunk_paragraphs"]
    pend: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    need: dict[int, int] = {}
    done: dict[int, list[np.ndarray]] = {}
    stats = {"seen": 0}

    def write(i: int) -> None:
        parts = done.pop(i)
        bits = np.concatenate(parts) if parts else np.zeros(0, bool)
        save_arrays(_seen_path(wd, f, files[i][0], files[i][1]), seen=np.packbits(bits), n=np.array([len(bits)]))

    def run(upto: int | None) -> None:
        """Check and insert the pending n-grams whose global paragraph is below ``upto`` (all: None)."""
        nonlocal pend
        if not pend:
            return
        h, g, src = (np.concatenate(x) for x in zip(*pend))
        cut = len(g) if upto is None else int(np.searchsorted(g, upto, "left"))
        pend = [(h[cut:], g[cut:], src[cut:])] if cut < len(g) else []
        if cut == 0:
            return
        seen = np.empty(cut, dtype=bool)
        cid = g[:cut] // k
        runs = np.flatnonzero(np.r_[True, cid[1:] != cid[:-1], True])
        for a, e in zip(runs[:-1].tolist(), runs[1:].tolist()):  # one fixed chunk of the corpus order at a time
            hh = h[a:e]
            seen[a:e] = filt.contains(hh) | seen_earlier_in_batch(hh, g[a:e])
            filt.add(hh)
        stats["seen"] += int(seen.sum())
        runs = np.flatnonzero(np.r_[True, src[1:cut] != src[: cut - 1], True])
        for a, e in zip(runs[:-1].tolist(), runs[1:].tolist()):
            i = int(src[a])
            done[i].append(seen[a:e])
            need[i] -= e - a
            if need[i] == 0:
                write(i)

    last = -1
    for i, (s, _c, path) in enumerate(files):
        a = load_arrays(path)
        h, para = a["hash"], a["para"]
        if not whole:
            blk = block_of(h, flt["seed"], flt["blocks"])
            sel = (blk >= lo) & (blk < hi)
            h, para = h[sel], para[sel]
        g = offsets[int(s)] + para.astype(np.int64)
        done[i], need[i] = [], len(h)
        if len(h) == 0:
            write(i)
            continue
        if g[0] < last or np.any(g[1:] < g[:-1]):
            raise RuntimeError(f"bff filter item {f}: {path} is out of corpus order")
        last = int(g[-1])
        pend.append((h, g, np.full(len(h), i, dtype=np.int32)))
        run(last // k * k)  # every chunk before the one holding `last` is complete
    run(None)
    return {"ngrams": filt.inserted, "seen": stats["seen"], "set_bits": filt.set_bits(), "bits": filt.num_bits}


def _load_seen(wd: str, f: int, s: int, c: int, n: int) -> np.ndarray:
    z = load_arrays(_seen_path(wd, f, s, c))
    if int(z["n"][0]) != n:
        raise RuntimeError(f"bff: seen bits of filter item {f}, shard {s}, chunk {c}: {int(z['n'][0])} for {n} n-grams")
    return np.unpackbits(z["seen"], count=n).astype(bool)


def _decide_shard(s: int, chunks: dict[str, list[int]], subparts: list[list[list[int]]], wd: str,
                  cfg: BloomConfig) -> dict[str, int]:
    paras = load_arrays(_paras_path(wd, s))
    total, count = paras["para_total"].astype(np.int64), paras["para_count"]
    contained = np.zeros(len(total), dtype=np.int64)
    for m, cs in sorted((int(m), cs) for m, cs in chunks.items()):
        subs = subparts[m]
        for c in cs:
            a = load_arrays(chunk_path(storage.join(wd, "ngrams"), m, s, c))
            para = a["para"].astype(np.int64)
            if len(subs) == 1:
                seen = _load_seen(wd, subs[0][0], s, c, len(para))
            else:
                blk = block_of(a["hash"], cfg.seed, cfg.filter_blocks)
                seen = np.zeros(len(para), dtype=bool)
                for f, lo, hi in subs:
                    sel = (blk >= lo) & (blk < hi)
                    seen[sel] = _load_seen(wd, f, s, c, int(sel.sum()))
            contained += np.bincount(para[seen], minlength=len(total))
    para_removed, doc_removed = decide_from_counts(total, contained, count, cfg.threshold)
    save_arrays(_decision_path(wd, s), para_count=count, para_removed=para_removed, doc_removed=doc_removed)
    return {"docs_removed": int(doc_removed.sum()), "paragraphs_removed": int(para_removed.sum()),
            "ngrams_seen": int(contained.sum())}


def _gather_bff(shard: PhaseShard, s: int, wd: str, out_path: str, batch_size: int) -> dict[str, Any]:
    """Apply the shard's decisions batch by batch: its decision file and the removed bytes per source."""
    dec = load_arrays(_decision_path(wd, s))
    count, para_removed, doc_removed = dec["para_count"], dec["para_removed"], dec["doc_removed"]
    start = np.zeros(len(count) + 1, dtype=np.int64)
    np.cumsum(count, out=start[1:])
    docs: dict[str, list[int]] = {}
    paras: dict[str, list[int]] = {}
    ids_out, actions, cut_lists = [], [], []
    row = 0
    for batch in storage.iter_parquet_batches(shard.path, batch_size=batch_size, columns=["id", "text", "source"]):
        r0, r1 = row, row + batch.num_rows
        row = r1
        if r1 > len(count):
            raise RuntimeError(f"bff: {shard.shard_id} has more rows than when it was hashed")
        pr, dr = para_removed[start[r0] : start[r1]], doc_removed[r0:r1]
        if not pr.any() and not dr.any():
            continue
        table = pa.Table.from_batches([batch])
        ng = {"para_count": count[r0:r1], "para_doc": np.repeat(np.arange(r1 - r0), count[r0:r1])}
        res = apply_decisions(table, ng, pr, dr)
        reason_of = dict(zip(res.dropped.column("id").to_pylist(), res.dropped.column("reason").to_pylist()))
        for src, (n, nb) in count_by_source(res.dropped.column("source"), res.dropped.column("nbytes")).items():
            cur = docs.setdefault(src, [0, 0])
            cur[0] += n
            cur[1] += nb
        kept_nb = dict(zip(res.kept.column("id").to_pylist(),
                           pc.binary_length(res.kept.column("text").cast(pa.large_binary())).to_pylist()))
        orig_nb = pc.binary_length(table.column("text").cast(pa.large_binary())).to_pylist()
        ids, sources = table.column("id").to_pylist(), table.column("source").to_pylist()
        affected = np.zeros(r1 - r0, dtype=bool)
        np.logical_or.at(affected, ng["para_doc"], pr)
        for d in np.flatnonzero(affected | dr).tolist():
            ids_out.append(ids[d])
            if ids[d] in reason_of:
                actions.append(reason_of[ids[d]])
                cut_lists.append([])
                continue
            cut = np.flatnonzero(pr[start[r0 + d] - start[r0] : start[r0 + d + 1] - start[r0]]).tolist()
            actions.append("cut")
            cut_lists.append(cut)
            cur = paras.setdefault(sources[d], [0, 0])
            cur[0] += len(cut)
            cur[1] += orig_nb[d] - kept_nb[ids[d]]
    if row != len(count):
        raise RuntimeError(f"bff: {shard.shard_id} has {row} rows, {len(count)} when it was hashed")
    out = pa.table({"id": pa.array(ids_out, pa.string()), "action": pa.array(actions, pa.string()),
                    "paragraphs": pa.array(cut_lists, pa.list_(pa.int32()))})
    storage.write_parquet_atomic(out_path, out)
    return {"path": out_path, "rows": row, "docs": docs, "paras": paras}


# --------------------------------------------------------------------------- the stage


class BloomDedup(GlobalStage):
    """BFF over the whole corpus, the filter partitioned by hash range (see the module docstring).

    Reasons: ``dedup:bff_doc`` (over the document threshold) and ``dedup:bff_paragraphs``
    (nothing left after paragraph removal); other documents lose their duplicate
    paragraphs. Build it from keyword arguments or from a :class:`BloomConfig`.
    """

    name = "bff_dedup"
    version = "2"
    state_type = BffDecisions

    def __init__(self, config: BloomConfig | None = None, /, **kwargs: Any) -> None:
        super().__init__()
        if config is not None and kwargs:
            raise ValueError("give either a BloomConfig or keyword arguments, not both")
        self.cfg = config if config is not None else BloomConfig(**kwargs)
        self._cache: tuple[str, dict[str, tuple[str, list[int]]]] | None = None

    def config(self) -> dict[str, Any]:
        return dataclasses.asdict(self.cfg)

    def check_budget(self, memory_per_worker: int) -> None:
        cfg = self.cfg
        working_memory(memory_per_worker)
        chunk = cfg.chunk_paragraphs * NGRAMS_PER_PARAGRAPH_BOUND * CHUNK_BYTES_PER_NGRAM
        check_fits(int(chunk / (1 - FILTER_SHARE)), memory_per_worker,
                   f"{self.name}: a filter chunk of chunk_paragraphs={cfg.chunk_paragraphs:,}", "chunk_paragraphs")
        if cfg.ngrams_per_partition is not None:
            need = int(cfg.ngrams_per_partition * cfg.bytes_per_ngram / FILTER_SHARE)
            check_fits(need, memory_per_worker,
                       f"{self.name}: a filter partition of ngrams_per_partition={cfg.ngrams_per_partition:,}",
                       "ngrams_per_partition")
        if cfg.map_buffer_ngrams is not None:
            check_fits(cfg.map_buffer_ngrams * MAP_BYTES_PER_NGRAM, memory_per_worker,
                       f"{self.name}: a map buffer of map_buffer_ngrams={cfg.map_buffer_ngrams:,}", "map_buffer_ngrams")
        if cfg.expected_ngrams is not None:
            self.partitions(cfg.expected_ngrams, memory_per_worker)

    def partitions(self, expected: int, memory_per_worker: int) -> int:
        """Filter partitions for ``expected`` n-grams: each partition's slice within the budget."""
        cfg = self.cfg
        if cfg.ngrams_per_partition is not None:
            parts = math.ceil(expected / cfg.ngrams_per_partition)
        else:
            parts = math.ceil(expected * cfg.bytes_per_ngram / (working_memory(memory_per_worker) * FILTER_SHARE))
        parts = max(cfg.min_partitions, parts)
        if parts > cfg.filter_blocks:
            raise ValueError(f"{self.name}: {expected:,} n-grams need {parts:,} filter partitions, over the "
                             f"filter_blocks={cfg.filter_blocks:,} the filter has; raise --memory-per-worker "
                             "(or filter_blocks)")
        return parts

    def fit(self, ctx: GlobalContext) -> BffDecisions:
        cfg = self.cfg
        self.check_budget(ctx.memory_per_worker)
        shards = ordered_shards(ctx.shards)
        wd = storage.join(ctx.workdir, "bff")
        sizes = corpus_size(ctx, shards)
        estimate = cfg.expected_ngrams or max(1, sum(s["text_bytes"] for s in sizes) // BYTES_PER_NGRAM_GUESS)
        parts = self.partitions(estimate, ctx.memory_per_worker)
        flush = buffer_records(MAP_BYTES_PER_NGRAM, ctx.memory_per_worker, cfg.map_buffer_ngrams)
        conf = {"stage": dataclasses.asdict(cfg), "partitions": parts, "flush": flush}
        maps = ctx.run_pass("map", _map_bff, shard_items(shards, lambda i, s: (s, i, cfg, parts, flush, wd), sizes),
                            config=conf, progress="bff: n-grams", count=lambda r: r["rows"])
        ngrams = sum(m["ngrams"] for m in maps.results)
        if cfg.expected_ngrams is not None and ngrams > cfg.expected_ngrams:
            logger.warning("bff: %d n-grams, over expected_ngrams=%d: the false-positive rate will exceed %g",
                           ngrams, cfg.expected_ngrams, cfg.fp_rate)
        expected = cfg.expected_ngrams or max(1, ngrams)
        bits, k = bloom_size(expected, cfg.fp_rate)
        blocks = cfg.filter_blocks
        wpb = max(1, math.ceil(bits / 64 / blocks))
        total_bits = blocks * wpb * 64
        flt = {"blocks": blocks, "words_per_block": wpb, "hashes": k, "seed": cfg.seed,
               "chunk_paragraphs": cfg.chunk_paragraphs}
        offsets = np.concatenate([[0], np.cumsum([m["paragraphs"] for m in maps.results])]).astype(int).tolist()
        files: list[list[list]] = [[] for _ in range(parts)]
        for s, m in enumerate(maps.results):
            for p, cs in sorted((int(p), cs) for p, cs in m["chunks"].items()):
                files[p].extend([s, c, chunk_path(storage.join(wd, "ngrams"), p, s, c)] for c in cs)
        # the exact count may need more than the estimate did: cut a partition into several filter items then
        slice_budget = working_memory(ctx.memory_per_worker) * FILTER_SHARE
        if cfg.ngrams_per_partition is not None:
            slice_budget = min(slice_budget, cfg.ngrams_per_partition * cfg.bytes_per_ngram)
        bounds = block_bounds(parts, blocks)
        subparts: list[list[list[int]]] = []
        items = []
        for m in range(parts):
            lo, hi = bounds[m], bounds[m + 1]
            split = min(hi - lo, max(1, math.ceil((hi - lo) * wpb * 8 / slice_budget)))
            subparts.append([])
            for j in range(split):
                a, b = lo + (hi - lo) * j // split, lo + (hi - lo) * (j + 1) // split
                f = len(items)
                subparts[m].append([f, a, b])
                items.append(Item(f"f{f:05d}", (files[m], a, b, split == 1, flt, wd, f), params={"blocks": [a, b]},
                                  weight=float(len(files[m]))))
        logger.info("bff: Bloom filter of %.1f MiB for %d expected n-grams at fp %.3g (%d hashes), in %d partitions "
                    "of at most %.1f MiB", total_bits / 8 / 2**20, expected, cfg.fp_rate, k, len(items),
                    max(b - a for sub in subparts for _, a, b in sub) * wpb * 8 / 2**20)
        filt = ctx.run_pass("filter", _filter_partition, items, config={**conf, "map": maps.digest, "filter": flt},
                            shared=offsets, progress="bff: filter")
        decide = ctx.run_pass(
            "decide", _decide_shard,
            shard_items(shards, lambda i, s: (i, maps.results[i]["chunks"], subparts, wd, cfg)),
            config={**conf, "filter": filt.digest}, progress="bff: decisions",
        )
        gathers = ctx.run_pass(
            "gather", _gather_bff,
            shard_items(shards, lambda i, s: (s, i, wd, storage.join(wd, "decisions", f"{i:06d}.parquet"),
                                              cfg.batch_size)),
            config={**conf, "decide": decide.digest}, progress="bff: decision files", count=lambda r: r["rows"],
        )
        docs = merge_per_source([g["docs"] for g in gathers.results])
        cuts = merge_per_source([g["paras"] for g in gathers.results])
        set_bits = sum(r["set_bits"] for r in filt.results)
        summary = {
            "method": "bff",
            "documents_in": sum(m["rows"] for m in maps.results),
            "documents_removed": sum(v["documents"] for v in docs.values()),
            "bytes_removed_with_documents": sum(v["bytes"] for v in docs.values()),
            "paragraphs_removed_from_kept_documents": sum(v["documents"] for v in cuts.values()),
            "bytes_removed_with_paragraphs": sum(v["bytes"] for v in cuts.values()),
            "removed_by_source": docs,
            "paragraph_cuts_by_source": cuts,
            "paragraphs": offsets[-1],
            "ngrams": ngrams,
            "ngrams_seen": sum(d["ngrams_seen"] for d in decide.results),
            "filter": {
                "expected_ngrams": int(expected), "fp_rate_target": cfg.fp_rate, "bits": total_bits,
                "bytes": total_bits // 8, "hashes": k, "blocks": blocks, "words_per_block": wpb,
                "partitions": parts, "filter_items": len(items), "fill_ratio": round(set_bits / total_bits, 6),
                "fp_rate_at_end": false_positive_rate(total_bits, k, max(1, ngrams)),
            },
            "config": dataclasses.asdict(cfg),
        }
        logger.info("bff: %d documents removed, %d paragraphs cut", summary["documents_removed"],
                    summary["paragraphs_removed_from_kept_documents"])
        return BffDecisions(summary=summary, decisions={s.shard_id: g["path"] for s, g in zip(shards, gathers.results)})

    # applying the decisions --------------------------------------------------------------
    def _shard_decisions(self, shard_id: str) -> dict[str, tuple[Any, ...]]:
        if self._cache is None or self._cache[0] != shard_id:
            self._cache = (shard_id, read_decisions(self.state.decisions.get(shard_id), ("paragraphs",)))
        return self._cache[1]

    def process(self, table: pa.Table, shard: ShardContext | None = None) -> StageResult:
        if shard is None:
            raise ValueError(f"{self.name}: process() needs the ShardContext (shard_id)")

        def cut(text: str, fields: tuple[Any, ...]) -> tuple[str, str | None]:
            drop = set(fields[0])
            out = "".join(("\n" if i else "") + s for i, s in enumerate(text.split("\n")) if i not in drop)
            return out, (REASON_EMPTY if not out.strip() else None)

        return apply_shard_decisions(table, self._shard_decisions(shard.shard_id), cut)
