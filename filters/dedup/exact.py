"""Exact deduplication on normalised text or on normalised URL, as Ray map/reduce.

Map (one task per shard): hash every document's key (text after
:func:`~filters.dedup.hashing.normalize_exact`, or URL after
:func:`~filters.dedup.hashing.normalize_url`) to 128 bits (two independent
64-bit hashes; a collision among 10**12 documents has probability ~1e-15) and
write ``(h1, h2, node)`` to one file per hash-range partition. The text key is
hashed as its word sequence (:func:`text_key_hashes`), which needs no regex pass.
Reduce (one task per partition): sort, keep the smallest node of every group of
equal hashes (the first copy in corpus order, see :mod:`filters.dedup.common`),
list the others for removal. A last task per shard gathers its removal list.

Keep rule: the first copy in corpus order (shards sorted by id, then row). The
document schema carries no timestamp column and source metadata rarely carries
a comparable one, so the rule is positional; put the preferred source's shards
first (shard ids sort) to prefer it. Documents with a null URL are never URL
duplicates. Memory: a map task holds one batch; a reduce task holds one
partition, ~``24 bytes x documents / num_partitions``; the number of partitions
grows with the corpus (``docs_per_partition``), so memory is set by configuration.
"""

from __future__ import annotations

import heapq
import logging
import math
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation import io
from curation.stage import GlobalContext, PhaseShard

from .common import (
    RemovalListStage,
    Timer,
    count_rows,
    list_files,
    load_arrays,
    merge_per_source,
    node_ids,
    ordered_shards,
    partition_of,
    resolve_ids,
    run_tasks,
    save_arrays,
    workdir_of,
    write_removals,
)
from .hashing import as_large_string, hash_strings, normalize_url, range_hashes, split_words

logger = logging.getLogger(__name__)

TOP_CLUSTERS = 10


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
    shard: PhaseShard, shard_idx: int, key: str, out_dir: str, num_partitions: int, batch_size: int
) -> dict[str, Any]:
    h1s, h2s, ns = [], [], []
    row = 0
    for batch in io.iter_parquet_batches(shard.path, batch_size=batch_size, columns=[key]):
        col = batch.column(0)
        nodes = node_ids(shard_idx, row, len(col))
        row += len(col)
        if key == "text":
            h1, h2 = text_key_hashes(col)
        else:
            norm = normalize_url(col)
            valid = pc.is_valid(norm).to_numpy(zero_copy_only=False)
            if not valid.all():
                norm = norm.filter(pc.is_valid(norm))
                nodes = nodes[valid]
            h1, h2 = hash_strings(norm, "exact-dedup-k-01"), hash_strings(norm, "exact-dedup-k-02")
        h1s.append(h1)
        h2s.append(h2)
        ns.append(nodes)
    h1 = np.concatenate(h1s) if h1s else np.zeros(0, np.uint64)
    h2 = np.concatenate(h2s) if h2s else np.zeros(0, np.uint64)
    node = np.concatenate(ns) if ns else np.zeros(0, np.uint64)
    part = partition_of(h1, num_partitions)
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(num_partitions + 1))
    for p in range(num_partitions):
        sel = order[bounds[p] : bounds[p + 1]]
        if len(sel):
            save_arrays(
                io.join(out_dir, "map", f"p{p:05d}", f"s{shard_idx:06d}.npz"), h1=h1[sel], h2=h2[sel], node=node[sel]
            )
    return {"rows": row, "keyed": int(len(node))}


def _reduce_exact(part_dir: str, out_dir: str, p: int, top_k: int) -> dict[str, Any]:
    files = list_files(part_dir)
    if not files:
        return {"clusters": 0, "removed": 0, "top": [], "sizes": {}}
    arrs = [load_arrays(f) for f in files]
    h1 = np.concatenate([a["h1"] for a in arrs])
    h2 = np.concatenate([a["h2"] for a in arrs])
    node = np.concatenate([a["node"] for a in arrs])
    del arrs
    order = np.lexsort((node, h2, h1))
    h1, h2, node = h1[order], h2[order], node[order]
    new_group = np.ones(len(node), dtype=bool)
    new_group[1:] = (h1[1:] != h1[:-1]) | (h2[1:] != h2[:-1])
    group = np.cumsum(new_group) - 1
    first_node = node[new_group][group]  # smallest node of each group (sorted by node within group)
    removed = ~new_group
    sizes = np.bincount(group)
    dup_groups = np.nonzero(sizes > 1)[0]
    rm_node, rm_label = node[removed], first_node[removed]
    shard_of = (rm_node >> np.uint64(32)).astype(np.int64)
    for s in np.unique(shard_of):
        sel = shard_of == s
        save_arrays(
            io.join(out_dir, "removed", f"s{int(s):06d}", f"p{p:05d}.npz"), node=rm_node[sel], label=rm_label[sel]
        )
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
    }


def _gather(workdir: str, method: str, shards: list[PhaseShard], s: int) -> dict[str, Any]:
    parts = list_files(io.join(workdir, method, "removed", f"s{s:06d}"))
    return write_removals(workdir, method, shards, s, parts)


def summarize_clusters(
    method: str, shards: list[PhaseShard], reduces: list[dict[str, Any]], gathers: list[dict[str, Any]], top_k: int
) -> dict[str, Any]:
    """Merge per-partition cluster stats and per-shard removal counts into the report summary."""
    tops = [t for r in reduces for t in r["top"]]
    tops.sort(key=lambda t: (-t["size"], t["rep"]))
    tops = tops[:top_k]
    ids = resolve_ids(shards, sorted({n for t in tops for n in [t["rep"], *t["examples"]]}))
    sizes: dict[str, int] = {}
    for r in reduces:
        for k, v in r["sizes"].items():
            sizes[k] = sizes.get(k, 0) + v
    per_source = merge_per_source([g["per_source"] for g in gathers])
    return {
        "method": method,
        "clusters": sum(r["clusters"] for r in reduces),
        "documents_removed": sum(g["removed"] for g in gathers),
        "bytes_removed": sum(v["bytes"] for v in per_source.values()),
        "removed_by_source": per_source,
        "cluster_size_hist": {k: sizes[k] for k in sorted(sizes, key=int)},
        "largest_clusters": [
            {"size": t["size"], "kept": ids[t["rep"]], "examples": [ids[e] for e in t["examples"] if e != t["rep"]]}
            for t in tops
        ],
    }


class ExactDedup(RemovalListStage):
    """Exact duplicates on normalised text (``key="text"``) or normalised URL (``key="url"``).

    Reasons: ``dedup:exact`` (text) and ``dedup:url`` (URL).
    ``docs_per_partition`` bounds a reduce task's memory (~24 bytes per document).
    """

    name = "exact_dedup"
    version = "1"

    def __init__(
        self, key: str = "text", docs_per_partition: int = 2_000_000, min_partitions: int = 4, batch_size: int = 8192
    ) -> None:
        super().__init__()
        if key not in ("text", "url"):
            raise ValueError(f"key must be 'text' or 'url', got {key!r}")
        if docs_per_partition < 1 or min_partitions < 1 or batch_size < 1:
            raise ValueError("docs_per_partition, min_partitions and batch_size must be positive")
        self.key = key
        self.docs_per_partition = docs_per_partition
        self.min_partitions = min_partitions
        self.batch_size = batch_size
        self.name = "exact_dedup" if key == "text" else "url_dedup"
        self.reason = "dedup:exact" if key == "text" else "dedup:url"

    def fit(self, ctx: GlobalContext) -> dict[str, Any]:
        timer = Timer()
        method = self.key if self.key == "url" else "exact"
        shards = ordered_shards(ctx.shards)
        wd = workdir_of(ctx, method)
        n_docs = sum(run_tasks(count_rows, [(s.path,) for s in shards], ctx.num_workers))
        num_partitions = max(self.min_partitions, math.ceil(n_docs / self.docs_per_partition))
        logger.info("%s: %d documents in %d shards, %d partitions", self.name, n_docs, len(shards), num_partitions)
        run_tasks(
            _map_exact,
            [(s, i, self.key, wd, num_partitions, self.batch_size) for i, s in enumerate(shards)],
            ctx.num_workers,
        )
        timer.mark("map")
        reduces = run_tasks(
            _reduce_exact,
            [(io.join(wd, "map", f"p{p:05d}"), wd, p, TOP_CLUSTERS) for p in range(num_partitions)],
            ctx.num_workers,
        )
        timer.mark("reduce")
        gathers = run_tasks(_gather, [(ctx.workdir, method, shards, i) for i in range(len(shards))], ctx.num_workers)
        timer.mark("removal_lists")
        summary = summarize_clusters(method, shards, reduces, gathers, TOP_CLUSTERS)
        summary.update({"documents_in": n_docs, "partitions": num_partitions, "seconds": timer.marks})
        logger.info(
            "%s: %d clusters, %d documents removed", self.name, summary["clusters"], summary["documents_removed"]
        )
        return {
            "reason": self.reason,
            "removal": {s.shard_id: g["path"] for s, g in zip(shards, gathers)},
            "summary": summary,
        }
