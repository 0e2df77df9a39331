"""Exact deduplication on normalised text or on normalised URL, as map/reduce passes.

Map (one item per shard): hash every document's key (text after
:func:`~filters.dedup.hashing.normalize_exact`, or URL after
:func:`~filters.dedup.hashing.normalize_url`) to 128 bits (two independent
64-bit hashes; a collision among 10**12 documents has probability ~1e-15) and
write ``(h1, h2, node)`` per hash-range partition, in chunk files flushed when the
task's buffer reaches a budget-derived size. The text key is hashed as its word
sequence (:func:`text_key_hashes`), which needs no regex pass. Reduce (one item per
partition, over the explicit list of chunk files the maps wrote): sort, keep the
smallest node of every group of equal hashes (the first copy in corpus order, see
:mod:`filters.dedup.common`), list the others for removal. A gather item per shard
writes its removal list.

Keep rule: the first copy in corpus order (shards sorted by id, then row). The
document schema carries no timestamp column and source metadata rarely carries
a comparable one, so the rule is positional; put the preferred source's shards
first (shard ids sort) to prefer it. Documents with a null URL are never URL
duplicates.

Memory: a map task holds one batch and a buffer of at most ``map_buffer_docs``
records (:data:`MAP_BYTES_PER_DOC` each while partitioning); a reduce task holds one
partition at :data:`REDUCE_BYTES_PER_DOC` per document; the number of partitions is
``documents x REDUCE_BYTES_PER_DOC / working memory`` (or ``documents /
docs_per_partition``), so it grows with the corpus and a task stays within
``--memory-per-worker``.
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation import storage
from curation.passes import Item
from curation.stage import GlobalContext, PhaseShard

from .common import (
    TOP_CLUSTERS,
    PartitionChunks,
    RemovalLists,
    RemovalListStage,
    buffer_records,
    check_fits,
    cluster_sizes,
    corpus_size,
    gather_removals,
    load_arrays,
    node_ids,
    ordered_shards,
    partition_count,
    partition_files,
    partition_of,
    removal_sources,
    removal_states,
    save_arrays,
    shard_items,
    summarize_clusters,
    watch_list,
    working_memory,
)
from .hashing import as_large_string, hash_strings, normalize_url, range_hashes, split_words

logger = logging.getLogger(__name__)

#: a map task's buffer, per document: (h1, h2, node) plus the copies of partitioning
MAP_BYTES_PER_DOC = 96
#: a reduce task, per document: the records (24 B), the sort permutation and the sorted copies, group arrays
REDUCE_BYTES_PER_DOC = 128


@dataclass(frozen=True)
class ExactDedupConfig:
    """Settings of :class:`ExactDedup` (all of them define its output or its layout).

    ``docs_per_partition`` / ``map_buffer_docs``: ``None`` derives them from the memory budget
    (the usual choice); an explicit value is checked against the budget before anything runs.
    ``min_partitions`` keeps some parallelism in the reduce of a small corpus.
    """

    key: str = "text"
    docs_per_partition: int | None = None
    min_partitions: int = 4
    map_buffer_docs: int | None = None
    batch_size: int = 8192

    def __post_init__(self) -> None:
        if self.key not in ("text", "url"):
            raise ValueError(f"key must be 'text' or 'url', got {self.key!r}")
        for name in ("docs_per_partition", "map_buffer_docs"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"{name} must be positive (or None to derive it from the memory budget), got {v}")
        if self.min_partitions < 1 or self.batch_size < 1:
            raise ValueError("min_partitions and batch_size must be positive")


def text_key_hashes(text: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Two independent 64-bit hashes of each document's word sequence after NFC + lower case.

    Equal for two documents exactly when :func:`~filters.dedup.hashing.normalize_exact`
    gives equal strings (same words, whitespace ignored), barring a 128-bit collision.
    Each distinct word is hashed once per batch; the sequence hash is a prefix-sum polynomial.
    """
    norm = pc.utf8_lower(pc.utf8_normalize(as_large_string(text), "NFC"))
    offsets, words = split_words(norm)
    enc = pc.dictionary_encode(words)
    codes = enc.indices.to_numpy(zero_copy_only=False)
    out = []
    for k in ("exact-dedup-k-01", "exact-dedup-k-02"):
        wh = hash_strings(enc.dictionary, k)[codes] if len(codes) else np.zeros(0, np.uint64)
        out.append(range_hashes(wh, offsets[:-1], offsets[1:]))
    return out[0], out[1]


def _map_exact(
    shard: PhaseShard, shard_idx: int, cfg: ExactDedupConfig, num_partitions: int, flush: int, out_dir: str
) -> dict[str, Any]:
    out = PartitionChunks(storage.join(out_dir, "map"), shard_idx, num_partitions, flush)
    row = 0
    for batch in storage.iter_parquet_batches(shard.path, batch_size=cfg.batch_size, columns=[cfg.key]):
        col = batch.column(0)
        nodes = node_ids(shard_idx, row, len(col))
        row += len(col)
        if cfg.key == "text":
            h1, h2 = text_key_hashes(col)
        else:
            norm = normalize_url(col)
            valid = pc.is_valid(norm).to_numpy(zero_copy_only=False)
            if not valid.all():
                norm = norm.filter(pc.is_valid(norm))
                nodes = nodes[valid]
            h1, h2 = hash_strings(norm, "exact-dedup-k-01"), hash_strings(norm, "exact-dedup-k-02")
        out.add(partition_of(h1, num_partitions), h1=h1, h2=h2, node=nodes)
    keyed = out.records
    return {"rows": row, "keyed": keyed, "chunks": out.close()}


def _reduce_exact(files: list[str], out_dir: str, p: int, top_k: int) -> dict[str, Any]:
    if not files:
        return {"clusters": 0, "removed": 0, "top": [], "sizes": {}, "shards": []}
    arrs = [load_arrays(f) for f in files]
    h1 = np.concatenate([a["h1"] for a in arrs])
    h2 = np.concatenate([a["h2"] for a in arrs])
    node = np.concatenate([a["node"] for a in arrs])
    del arrs
    order = np.lexsort((node, h2, h1))
    h1, h2, node = h1[order], h2[order], node[order]
    del order
    new_group = np.ones(len(node), dtype=bool)
    new_group[1:] = (h1[1:] != h1[:-1]) | (h2[1:] != h2[:-1])
    del h1, h2
    group = np.cumsum(new_group) - 1
    first_node = node[new_group][group]  # smallest node of each group (sorted by node within group)
    removed = ~new_group
    sizes = np.bincount(group)
    dup_groups = np.nonzero(sizes > 1)[0]
    rm_node, rm_label = node[removed], first_node[removed]
    shard_of = (rm_node >> np.uint64(32)).astype(np.int64)
    shards = np.unique(shard_of)
    for s in shards.tolist():
        sel = shard_of == s
        save_arrays(removed_path(out_dir, s, p), node=rm_node[sel], label=rm_label[sel])
    reps = node[new_group]
    top = heapq.nlargest(top_k, zip(sizes[dup_groups].tolist(), (-reps[dup_groups].astype(np.int64)).tolist()))
    top_full = []
    for size, neg_rep in top:
        rep = -neg_rep
        members = node[first_node == np.uint64(rep)][:3]
        top_full.append({"size": int(size), "rep": int(rep), "examples": [int(m) for m in members]})
    hist = np.bincount(np.minimum(sizes[dup_groups], 64)) if len(dup_groups) else np.zeros(0, np.int64)
    return {
        "clusters": int(len(dup_groups)),
        "removed": int(removed.sum()),
        "top": top_full,
        "sizes": {str(i): int(c) for i, c in enumerate(hist) if c},
        "shards": shards.tolist(),
    }


def removed_path(out_dir: str, shard_idx: int, part: int) -> str:
    return storage.join(out_dir, "removed", f"s{shard_idx:06d}", f"p{part:05d}.npz")


class ExactDedup(RemovalListStage):
    """Exact duplicates on normalised text (``key="text"``) or normalised URL (``key="url"``).

    Reasons: ``dedup:exact`` (text) and ``dedup:url`` (URL). Build it from keyword arguments
    (``ExactDedup(key="url")``) or from an :class:`ExactDedupConfig`.
    """

    name = "exact_dedup"
    version = "3"  # 3: dup_cluster_size on kept documents

    def __init__(self, config: ExactDedupConfig | None = None, /, **kwargs: Any) -> None:
        super().__init__()
        if config is not None and kwargs:
            raise ValueError("give either an ExactDedupConfig or keyword arguments, not both")
        self.cfg = config if config is not None else ExactDedupConfig(**kwargs)
        self.name = "exact_dedup" if self.cfg.key == "text" else "url_dedup"
        self.reason = "dedup:exact" if self.cfg.key == "text" else "dedup:url"

    @property
    def method(self) -> str:
        return "exact" if self.cfg.key == "text" else "url"

    def config(self) -> dict[str, Any]:
        return dataclasses.asdict(self.cfg)

    def check_budget(self, memory_per_worker: int) -> None:
        working_memory(memory_per_worker)
        if self.cfg.docs_per_partition is not None:
            check_fits(self.cfg.docs_per_partition * REDUCE_BYTES_PER_DOC, memory_per_worker,
                       f"{self.name}: a reduce of docs_per_partition={self.cfg.docs_per_partition:,}",
                       "docs_per_partition")
        if self.cfg.map_buffer_docs is not None:
            check_fits(self.cfg.map_buffer_docs * MAP_BYTES_PER_DOC, memory_per_worker,
                       f"{self.name}: a map buffer of map_buffer_docs={self.cfg.map_buffer_docs:,}", "map_buffer_docs")

    def fit(self, ctx: GlobalContext) -> RemovalLists:
        cfg = self.cfg
        self.check_budget(ctx.memory_per_worker)
        shards = ordered_shards(ctx.shards)
        wd = storage.join(ctx.workdir, self.method)
        sizes = corpus_size(ctx, shards)
        n_docs = sum(s["rows"] for s in sizes)
        parts = partition_count(n_docs, REDUCE_BYTES_PER_DOC, ctx.memory_per_worker, minimum=cfg.min_partitions,
                                records_per_partition=cfg.docs_per_partition)
        flush = buffer_records(MAP_BYTES_PER_DOC, ctx.memory_per_worker, cfg.map_buffer_docs)
        conf = {"stage": dataclasses.asdict(cfg), "partitions": parts, "flush": flush}
        logger.info("%s: %d documents in %d shards, %d partitions", self.name, n_docs, len(shards), parts)
        maps = ctx.run_pass("map", _map_exact, shard_items(shards, lambda i, s: (s, i, cfg, parts, flush, wd), sizes),
                            config=conf, progress=f"{self.name}: hash", count=lambda r: r["rows"])
        files = partition_files(storage.join(wd, "map"), parts, [m["chunks"] for m in maps.results])
        reduces = ctx.run_pass(
            "reduce", _reduce_exact, [Item(f"p{p:05d}", (files[p], wd, p, TOP_CLUSTERS)) for p in range(parts)],
            config={**conf, "map": maps.digest}, progress=f"{self.name}: reduce",
        )
        _, watch = watch_list(reduces.results)
        sources = removal_sources(reduces.results, len(shards))
        gathers = ctx.run_pass(
            "gather", gather_removals,
            shard_items(shards, lambda i, s: (s, i, [removed_path(wd, i, p) for p in sources[i]],
                                              storage.join(wd, "removal", f"{i:06d}.parquet"), cfg.batch_size, [],
                                              watch, wd)),
            config={**conf, "reduce": reduces.digest}, shared=[s.shard_id for s in shards],
            progress=f"{self.name}: removal lists",
        )
        kept = cluster_sizes(ctx, shards, gathers, wd, conf, cfg.batch_size, self.name)
        summary = summarize_clusters(self.method, reduces.results, gathers.results)
        summary.update({"documents_in": n_docs, "partitions": parts})
        logger.info("%s: %d clusters, %d documents removed", self.name, summary["clusters"],
                    summary["documents_removed"])
        return removal_states(self.reason, shards, gathers.results, summary, kept=kept)
