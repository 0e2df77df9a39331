"""Exact-substring deduplication (ExactSubstr, Lee et al. 2022) as a global stage of resumable passes.

The rule is :mod:`.substring_core`'s: every span of at least ``min_len`` tokens (words by default,
or bytes) that occurs more than once in the corpus is removed from all its occurrences but the first
in corpus order (shards sorted by id, rows in order, positions in order), or from all of them with
``keep="none"``. Cuts fall on word boundaries; a document left with fewer than ``min_words_after``
words is dropped (``substring:too_short_after``; nothing left at all: ``substring:removed_spans``).

Why it is exact at any partitioning
-----------------------------------
A repeated window of ``L = min_len`` tokens has the same minimizer k-gram (``k = anchor_len``,
default ``L // 2``) at the same offset in every occurrence (:func:`.substring_core.anchors`), and
the *context* of an anchor at token ``t``, tokens ``[t - (L - k), t + L)`` of its document, contains
every window whose minimizer it is. So:

1. ``anchors`` (an item per shard): the minimizers of every document, ``(hash, node, token)``, go
   to hash-range partitions (about ``2 / (L - k + 2)`` of the tokens: 7.4% at L = 50).
2. ``repeats`` (an item per partition): anchors whose hash occurs more than once are routed back to
   their document's shard, with their rank in the hash's group (corpus order) and the group's size.
3. ``contexts`` (an item per shard): the text of each repeated anchor's context (overlapping contexts
   of one document bound for the same verify item are merged) goes to the verify item of its hash:
   a hash range, or, for a *hot* hash whose contexts alone exceed half an item, a chunk of its group.
4. ``verify`` (an item per hash range, and per pair ``i <= j`` of a hot group's chunks): one suffix
   array over the item's segments (:func:`.substring_core.mark_windows`) marks every window whose
   text occurs at an earlier global position among them (``keep="none"``: at another one). Each
   window's earlier occurrence, if any, sits in the item of its minimizer's hash (hot: the pair of
   chunks holding both), so the union of the marks over the items is exactly the rule's, whatever
   the number of partitions or workers; a mark is only ever made against text compared byte for
   byte, so no hash collision can remove anything (collisions only add candidates).
5. ``decide`` (an item per shard): covered token intervals -> byte ranges to cut (word boundaries) and
   the decision file that ``process`` applies.

Memory per task (``--memory-per-worker`` less the fixed cost of a task)
----------------------------------------------------------------------
* anchors: a slice of at most ``batch_bytes`` of text (:data:`MAP_BYTES_PER_TEXT_BYTE` per byte while
  tokenising and hashing) plus a buffer of ``map_buffer_anchors`` anchors (:data:`MAP_BYTES_PER_ANCHOR`);
* repeats: one partition, :data:`REPEATS_BYTES_PER_ANCHOR` per anchor; partitions = anchors x that /
  working memory (the corpus's anchor count is estimated from the footers' text bytes);
* contexts: the shard's repeated anchors (:data:`CONTEXT_BYTES_PER_ANCHOR` each; bound a shard with
  ``--max-shard-bytes``), one batch and a buffer of context bytes;
* verify: at most ``verify_tokens_per_item`` context tokens (:data:`VERIFY_BYTES_PER_TOKEN` each: the
  tokens, the suffix array, the LCP array, the classes); hash ranges are sized to half of it and hot
  groups are cut into chunks of half of it, so no item depends on the corpus size;
* decide: the shard's covered intervals (24 B each) and one batch.
The one structure that can outgrow a task is a single anchor hash in the ``repeats`` pass: a passage
repeated more than ~working memory / 80 B times (about 20 million at 2 GiB) in one partition, the same
bound as one key of exact dedup's reduce.
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

from .common import (
    ROW_MASK,
    PartitionChunks,
    apply_shard_decisions,
    buffer_records,
    check_fits,
    corpus_size,
    load_arrays,
    merge_per_source,
    node_ids,
    ordered_shards,
    partition_count,
    partition_files,
    partition_of,
    read_decisions,
    save_arrays,
    shard_items,
    working_memory,
)
from .substring_core import (
    KEEPS,
    REASON_EMPTY,
    REASON_SHORT,
    UNITS,
    anchors,
    apply_cuts,
    cut_plan,
    decide,
    exact_ids,
    kgram_hashes,
    mark_windows,
    merge_intervals,
    tokenize,
    tokens_of,
    window_intervals,
)

logger = logging.getLogger(__name__)

DEFAULT_MIN_LEN = {"word": 50, "byte": 200}
#: text bytes per token, to estimate the anchor count from the footers' text bytes
BYTES_PER_TOKEN_GUESS = {"word": 5, "byte": 1}
#: an anchors task, per byte of the text slice it tokenises (token spans, hashes, k-gram keys, the two scans)
MAP_BYTES_PER_TEXT_BYTE = {"word": 32, "byte": 160}
#: an anchors task's buffer, per anchor: (hash, node, token) 20 B, the concatenation, partition and permutation
MAP_BYTES_PER_ANCHOR = 48
#: a repeats task, per anchor: the records, the sort permutation and the sorted copies, group arrays
REPEATS_BYTES_PER_ANCHOR = 80
#: a contexts task, per repeated anchor of its shard: the records, the order, buckets and context bounds
CONTEXT_BYTES_PER_ANCHOR = 96
#: a verify task, per context token: text, token spans, exact ids, the suffix array (4 B per byte of the
#: symbols while sorting), LCP, classes and global positions
VERIFY_BYTES_PER_TOKEN = {"word": 192, "byte": 128}
#: share of a task's working memory for the text slice of a map, and for the buffered contexts
SLICE_SHARE = 0.25


@dataclass(frozen=True)
class SubstringConfig:
    """Settings of :class:`SubstringDedup`.

    ``unit``: ``"word"`` (maximal runs of non-whitespace) or ``"byte"`` (UTF-8 bytes; cuts still fall on
    word boundaries). ``min_len``: the shortest repeated span removed, in units (default 50 words, as
    RefinedWeb's 50 tokens, or 200 bytes). ``keep``: ``"first"`` keeps the first occurrence in corpus
    order, ``"none"`` removes every occurrence (as google-research/deduplicate-text-datasets does).
    ``min_words_after``: a cut document left with fewer words is dropped (Gopher's 50-word minimum).
    ``anchor_len``: k of the minimizer k-grams (default ``min_len // 2``): smaller anchors are denser.
    ``anchors_per_partition`` / ``verify_tokens_per_item`` / ``map_buffer_anchors`` / ``batch_bytes``:
    ``None`` derives them from the memory budget; explicit values are checked against it.
    """

    min_len: int | None = None
    unit: str = "word"
    keep: str = "first"
    min_words_after: int = 50
    anchor_len: int | None = None
    anchors_per_partition: int | None = None
    verify_tokens_per_item: int | None = None
    map_buffer_anchors: int | None = None
    batch_bytes: int | None = None
    min_partitions: int = 4
    batch_size: int = 1024

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"unit must be one of {UNITS}, got {self.unit!r}")
        if self.keep not in KEEPS:
            raise ValueError(f"keep must be one of {KEEPS} ('none' removes every occurrence), got {self.keep!r}")
        if self.min_len is None:
            object.__setattr__(self, "min_len", DEFAULT_MIN_LEN[self.unit])
        if self.min_len < 2:
            raise ValueError(f"min_len must be >= 2, got {self.min_len}")
        if self.anchor_len is None:
            object.__setattr__(self, "anchor_len", max(1, self.min_len // 2))
        if not 1 <= self.anchor_len <= self.min_len:
            raise ValueError(f"anchor_len must be in [1, min_len={self.min_len}], got {self.anchor_len}")
        if self.min_words_after < 0:
            raise ValueError(f"min_words_after must be >= 0, got {self.min_words_after}")
        for name in ("anchors_per_partition", "verify_tokens_per_item", "map_buffer_anchors", "batch_bytes"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"{name} must be positive (or None to derive it from the memory budget), got {v}")
        if self.min_partitions < 1 or self.batch_size < 1:
            raise ValueError("min_partitions and batch_size must be positive")

    @property
    def window(self) -> int:
        """k-grams per window: a window of ``min_len`` tokens holds ``min_len - anchor_len + 1`` k-grams."""
        return self.min_len - self.anchor_len + 1

    @property
    def context_tokens(self) -> int:
        """The longest context of an anchor: ``min_len - anchor_len`` tokens before it, ``min_len`` from it."""
        return 2 * self.min_len - self.anchor_len

    @property
    def density(self) -> float:
        """Expected share of k-grams chosen as anchors (random minimizers: 2 / (w + 1))."""
        return 2.0 / (self.window + 1)


@dataclass(frozen=True)
class SubstringDecisions(FittedState):
    """The fitted state of :class:`SubstringDedup`: per shard id, its decision parquet (id, action, cuts)."""

    decisions: dict[str, str] = field(default_factory=dict)


DECISION_SCHEMA = pa.schema([("id", pa.string()), ("action", pa.string()), ("starts", pa.list_(pa.int64())),
                             ("ends", pa.list_(pa.int64()))])


# --------------------------------------------------------------------------- layout


def batch_bytes(cfg: SubstringConfig, memory_per_worker: int) -> int:
    """Text bytes an anchors task tokenises at once."""
    if cfg.batch_bytes is not None:
        return cfg.batch_bytes
    return max(1 << 20, int(working_memory(memory_per_worker) * SLICE_SHARE // MAP_BYTES_PER_TEXT_BYTE[cfg.unit]))


def verify_tokens(cfg: SubstringConfig, memory_per_worker: int) -> int:
    """Context tokens one verify item may hold."""
    if cfg.verify_tokens_per_item is not None:
        return cfg.verify_tokens_per_item
    return max(4 * cfg.context_tokens, working_memory(memory_per_worker) // VERIFY_BYTES_PER_TOKEN[cfg.unit])


def _slices(texts: pa.Array, limit: int) -> list[tuple[int, pa.Array]]:
    """(first row, rows) pieces of ``texts`` holding at most ``limit`` bytes each (a longer text alone)."""
    n = len(texts)
    lengths = pc.fill_null(pc.binary_length(texts.cast(pa.large_binary())), 0).to_numpy(zero_copy_only=False)
    out, start, acc = [], 0, 0
    for i, b in enumerate(lengths.tolist()):
        if i > start and acc + b > limit:
            out.append((start, texts.slice(start, i - start)))
            start, acc = i, 0
        acc += b
    if start < n:
        out.append((start, texts.slice(start, n - start)))
    return out


# --------------------------------------------------------------------------- paths


def _rep_path(wd: str, s: int, p: int) -> str:
    return storage.join(wd, "repeats", f"s{s:06d}", f"p{p:05d}.npz")


def _ctx_path(wd: str, b: int, s: int, c: int) -> str:
    return storage.join(wd, "contexts", f"b{b:05d}", f"s{s:06d}-c{c:04d}.npz")


def _marks_path(wd: str, s: int, key: str) -> str:
    return storage.join(wd, "marks", f"s{s:06d}", f"{key}.npz")


# --------------------------------------------------------------------------- pass functions


def _map_anchors(shard: PhaseShard, s: int, cfg: SubstringConfig, parts: int, flush: int, limit: int,
                 wd: str) -> dict[str, Any]:
    """The shard's minimizer anchors, ``(h, node, tok)``, to the partitions of their hash."""
    out = PartitionChunks(storage.join(wd, "anchors"), s, parts, flush)
    rows = tokens = windows = text_bytes = 0
    for batch in storage.iter_parquet_batches(shard.path, batch_size=cfg.batch_size, columns=["text"]):
        for r0, texts in _slices(batch.column(0), limit):
            tok = tokenize(texts, cfg.unit)
            text_bytes += len(tok.raw)
            n_tok = np.diff(tok.doc_off)
            tokens += int(n_tok.sum())
            windows += int(np.maximum(n_tok - cfg.min_len + 1, 0).sum())
            k_off, h = kgram_hashes(tok.ids, tok.doc_off, cfg.anchor_len, cfg.min_len)
            d, t = anchors(h, k_off, cfg.window)
            if len(d):
                hh = h[k_off[d] + t]
                node = node_ids(s, rows + r0, len(texts))[d]
                out.add(partition_of(hh, parts), h=hh, node=node, tok=t.astype(np.uint32))
        rows += batch.num_rows
    n_anchors = out.records
    return {"rows": rows, "tokens": tokens, "windows": windows, "text_bytes": text_bytes, "anchors": n_anchors,
            "chunks": out.close()}


def _repeats(files: list[str], wd: str, p: int, chunk_occ: int) -> dict[str, Any]:
    """Anchors whose hash occurs twice or more, back to their shard, with rank and group size."""
    if not files:
        return {"anchors": 0, "repeated": 0, "groups": 0, "largest_group": 0, "shards": [], "hot": []}
    arrs = [load_arrays(f) for f in files]
    h = np.concatenate([a["h"] for a in arrs])
    node = np.concatenate([a["node"] for a in arrs])
    tok = np.concatenate([a["tok"] for a in arrs])
    del arrs
    n = len(h)
    order = np.lexsort((tok, node, h))  # by hash, then corpus order
    h, node, tok = h[order], node[order], tok[order]
    del order
    new = np.ones(n, dtype=bool)
    new[1:] = h[1:] != h[:-1]
    head = np.flatnonzero(new)
    sizes = np.diff(np.r_[head, n])
    hot = [[int(x), int(c)] for x, c in zip(h[head[sizes > chunk_occ]].tolist(), sizes[sizes > chunk_occ].tolist())]
    grp = np.cumsum(new) - 1
    gsize = sizes[grp]
    rank = np.arange(n) - head[grp]
    keep = gsize >= 2
    h, node, tok, rank, gsize = h[keep], node[keep], tok[keep], rank[keep], gsize[keep]
    shard_of = (node >> np.uint64(32)).astype(np.int64)
    shards = np.unique(shard_of)
    for sh in shards.tolist():
        sel = shard_of == sh
        save_arrays(_rep_path(wd, sh, p), node=node[sel], tok=tok[sel], h=h[sel], rank=rank[sel].astype(np.int64),
                    gsize=gsize[sel].astype(np.int64))
    return {"anchors": n, "repeated": int(keep.sum()), "groups": int((sizes >= 2).sum()),
            "largest_group": int(sizes.max()), "shards": shards.tolist(), "hot": hot}


class SegmentChunks:
    """A contexts task's segments (node, token position, UTF-8 bytes), written per verify bucket in chunk files.

    Like :class:`~.common.PartitionChunks` with a variable-length payload: segments are buffered until
    ``flush_bytes`` of text are held, then written per bucket as ``<folder>/b<bucket>/s<shard>-c<chunk>.npz``
    (``node``, ``pos``, ``off``, ``data``) in arrival order.
    """

    def __init__(self, folder: str, shard_idx: int, flush_bytes: int) -> None:
        self.folder, self.shard_idx, self.flush_bytes = folder, shard_idx, max(1, flush_bytes)
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self._held = 0
        self._chunk = 0
        self.written: dict[int, list[int]] = {}
        self.bytes_per_bucket: dict[int, int] = {}
        self.segments = 0

    def add(self, bucket: np.ndarray, node: np.ndarray, pos: np.ndarray, lengths: np.ndarray, data: np.ndarray) -> None:
        if len(bucket) == 0:
            return
        self._parts.append((bucket, node, pos, lengths, data))
        self._held += len(data)
        self.segments += len(bucket)
        if self._held >= self.flush_bytes:
            self.flush()

    def flush(self) -> None:
        if not self._parts:
            return
        bucket, node, pos, lengths, data = (np.concatenate(x) for x in zip(*self._parts))
        self._parts, self._held = [], 0
        off = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=off[1:])
        order = np.argsort(bucket, kind="stable")
        bounds = np.searchsorted(bucket[order], np.unique(bucket), side="left").tolist() + [len(order)]
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            sel = order[lo:hi]
            b = int(bucket[sel[0]])
            ln = lengths[sel]
            o = np.zeros(len(sel) + 1, dtype=np.int64)
            np.cumsum(ln, out=o[1:])
            idx = np.repeat(off[sel] - o[:-1], ln) + np.arange(int(o[-1]))
            save_arrays(_ctx_path(self.folder, b, self.shard_idx, self._chunk), node=node[sel], pos=pos[sel], off=o,
                        data=data[idx])
            self.written.setdefault(b, []).append(self._chunk)
            self.bytes_per_bucket[b] = self.bytes_per_bucket.get(b, 0) + int(o[-1])
        self._chunk += 1

    def close(self) -> dict[int, list[int]]:
        self.flush()
        return self.written


def _group_max(values: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Running maximum of ``values`` restarted where ``new`` is True (values >= 0)."""
    grp = np.cumsum(new) - 1
    big = np.int64(int(values.max()) + 1) if len(values) else np.int64(1)
    return np.maximum.accumulate(values + grp * big) - grp * big


def _contexts(shard: PhaseShard, s: int, files: list[str], cfg: SubstringConfig, num_buckets: int,
              hot_h: np.ndarray, hot_base: np.ndarray, chunk_occ: int, flush_bytes: int, wd: str) -> dict[str, Any]:
    """The text around each repeated anchor of the shard, to its verify bucket (merged per bucket and document)."""
    out = SegmentChunks(wd, s, flush_bytes)
    if files:
        arrs = [load_arrays(f) for f in files]
        cols = {k: np.concatenate([a[k] for a in arrs]) for k in ("node", "tok", "h", "rank")}
        del arrs
    else:
        cols = {"node": np.zeros(0, np.uint64), "tok": np.zeros(0, np.uint32), "h": np.zeros(0, np.uint64),
                "rank": np.zeros(0, np.int64)}
    bucket = partition_of(cols["h"], num_buckets) if len(cols["h"]) else np.zeros(0, np.int64)
    if len(hot_h) and len(bucket):
        idx = np.searchsorted(hot_h, cols["h"])
        hot = (idx < len(hot_h)) & (hot_h[np.minimum(idx, len(hot_h) - 1)] == cols["h"])
        bucket[hot] = hot_base[idx[hot]] + cols["rank"][hot] // chunk_occ
    row_of = (cols["node"] & ROW_MASK).astype(np.int64)
    order = np.lexsort((cols["tok"], row_of))
    row_of, tok, bucket = row_of[order], cols["tok"][order].astype(np.int64), bucket[order]
    del cols, order
    lead, span = cfg.min_len - cfg.anchor_len, cfg.min_len
    rows = 0
    if len(row_of):
        for batch in storage.iter_parquet_batches(shard.path, batch_size=cfg.batch_size, columns=["text"]):
            n = batch.num_rows
            lo, hi = np.searchsorted(row_of, [rows, rows + n])
            if hi > lo:
                r = row_of[lo:hi] - rows
                docs, di = np.unique(r, return_inverse=True)
                tk = tokenize(batch.column(0).take(pa.array(docs)), cfg.unit, with_ids=False)
                n_tok = np.diff(tk.doc_off)[di]
                t0 = np.maximum(0, tok[lo:hi] - lead)
                t1 = np.minimum(n_tok, tok[lo:hi] + span)
                b = bucket[lo:hi]
                # merge overlapping or touching contexts of one document bound for one bucket
                o = np.lexsort((t0, di, b))
                b, di, t0, t1 = b[o], di[o], t0[o], t1[o]
                new = np.ones(len(b), dtype=bool)
                new[1:] = (b[1:] != b[:-1]) | (di[1:] != di[:-1])
                run = _group_max(t1, new)
                new[1:] |= t0[1:] > run[:-1]
                head = np.flatnonzero(new)
                last = np.r_[head[1:] - 1, len(b) - 1]
                seg_t0 = t0[head]
                seg_t1 = _group_max(t1, new)[last]  # the running end, restarted at every merged segment
                seg_d = di[head]
                base = tk.doc_off[seg_d]
                blo = tk.text_off[seg_d] + tk.start[base + seg_t0]
                bhi = tk.text_off[seg_d] + tk.end[base + seg_t1 - 1]
                ln = bhi - blo
                o2 = np.zeros(len(ln) + 1, dtype=np.int64)
                np.cumsum(ln, out=o2[1:])
                data = tk.raw[np.repeat(blo - o2[:-1], ln) + np.arange(int(o2[-1]))]
                node = (np.uint64(s) << np.uint64(32)) | (docs[seg_d] + rows).astype(np.uint64)
                out.add(b[head], node, seg_t0, ln, data)
            rows += n
            if hi == len(row_of):
                break
    written = out.close()
    return {"segments": out.segments, "chunks": written, "bytes": out.bytes_per_bucket}


def _load_segments(files: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    nodes, poss, offs, datas = [], [], [], []
    base = 0
    for f in files:
        a = load_arrays(f)
        nodes.append(a["node"])
        poss.append(a["pos"])
        offs.append(a["off"][:-1] + base)
        datas.append(a["data"])
        base += int(a["off"][-1])
    if not nodes:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64), np.zeros(1, np.int64), np.zeros(0, np.uint8)
    off = np.concatenate(offs + [np.array([base], np.int64)])
    return np.concatenate(nodes), np.concatenate(poss).astype(np.int64), off, np.concatenate(datas)


def _collapse_identical(off: np.ndarray, data: np.ndarray, node: np.ndarray, pos: np.ndarray,
                        keep: str) -> tuple[np.ndarray, np.ndarray]:
    """(into the suffix array?, wholly covered?) per segment, from groups of byte-identical segments.

    A hot anchor's contexts are often the same text (the anchor deep inside a repeated passage). Within a
    group of identical segments, the same (node, pos) twice is one occurrence (kept once); every later
    occurrence repeats all of the first's windows, so it is covered whole and needs no suffix sorting
    (``keep="none"``: every member of a group of two occurrences or more is covered whole). The first
    goes into the suffix array, where other segments find their matches against it.
    """
    n = len(node)
    segs = pa.LargeBinaryArray.from_buffers(pa.large_binary(), n, [None, pa.py_buffer(off), pa.py_buffer(data)])
    code = segs.dictionary_encode().indices.to_numpy(zero_copy_only=False)
    order = np.lexsort((pos, node, code))
    c, nd, ps = code[order], node[order], pos[order]
    new_grp = np.ones(n, dtype=bool)
    new_grp[1:] = c[1:] != c[:-1]
    same = np.zeros(n, dtype=bool)
    same[1:] = ~new_grp[1:] & (nd[1:] == nd[:-1]) & (ps[1:] == ps[:-1])
    grp = np.cumsum(new_grp) - 1
    distinct = np.bincount(grp, weights=~same).astype(np.int64)
    into_sa = np.zeros(n, dtype=bool)
    whole = np.zeros(n, dtype=bool)
    into_sa[order] = new_grp
    if keep == "first":
        whole[order] = ~new_grp & ~same
    else:
        whole[order] = (distinct[grp] >= 2) & ~same
        whole[order[new_grp & (distinct[grp] >= 2)]] = True
    return into_sa, whole


def _verify(files: list[str], wd: str, key: str, cfg: SubstringConfig) -> dict[str, Any]:
    """Mark the repeated windows among one item's segments (one suffix array); covered intervals per shard."""
    node, pos, off, data = _load_segments(files)
    tk = tokens_of(data, off, cfg.unit, with_ids=False)
    n_tok = np.diff(tk.doc_off)
    into_sa, whole = _collapse_identical(off, data, node, pos, cfg.keep) if len(node) else (
        np.zeros(0, bool), np.zeros(0, bool))
    ids = exact_ids(tk, cfg.unit)[np.repeat(into_sa, n_tok)]
    seg_off = np.zeros(int(into_sa.sum()) + 1, dtype=np.int64)
    np.cumsum(n_tok[into_sa], out=seg_off[1:])
    mnode, mpos = mark_windows(ids, seg_off, node[into_sa], pos[into_sa], cfg.min_len, cfg.keep)
    inode, istart, iend = window_intervals(mnode, mpos, cfg.min_len)
    full = whole & (n_tok >= cfg.min_len)
    inode = np.concatenate([inode, node[full]])
    istart = np.concatenate([istart, pos[full]])
    iend = np.concatenate([iend, pos[full] + n_tok[full]])
    shard_of = (inode >> np.uint64(32)).astype(np.int64)
    shards = np.unique(shard_of)
    for sh in shards.tolist():
        sel = shard_of == sh
        save_arrays(_marks_path(wd, sh, key), node=inode[sel], start=istart[sel], end=iend[sel])
    return {"segments": int(len(node)), "tokens": int(n_tok.sum()), "sorted_tokens": int(len(ids)),
            "bytes": int(len(data)), "marked_windows": int(len(mnode)), "whole_segments": int(full.sum()),
            "shards": shards.tolist()}


def _decide(shard: PhaseShard, s: int, files: list[str], cfg: SubstringConfig, out_path: str) -> dict[str, Any]:
    """The shard's cuts and drops from its covered intervals; writes the decision file ``process`` reads."""
    if files:
        arrs = [load_arrays(f) for f in files]
        row = (np.concatenate([a["node"] for a in arrs]) & ROW_MASK).astype(np.int64)
        start = np.concatenate([a["start"] for a in arrs]).astype(np.int64)
        end = np.concatenate([a["end"] for a in arrs]).astype(np.int64)
        del arrs
    else:
        row = start = end = np.zeros(0, np.int64)
    order = np.lexsort((start, row))
    row, start, end = row[order], start[order], end[order]
    ids_out, actions, cut_lo, cut_hi = [], [], [], []
    cut: dict[str, list[int]] = {}
    dropped: dict[str, dict[str, list[int]]] = {}
    rows = covered_docs = 0
    cols = ["id", "text", "source"]
    for batch in storage.iter_parquet_batches(shard.path, batch_size=cfg.batch_size, columns=cols):
        n = batch.num_rows
        lo, hi = np.searchsorted(row, [rows, rows + n])
        if hi > lo:
            docs = np.unique(row[lo:hi]) - rows
            covered_docs += len(docs)
            picked = pa.Table.from_batches([batch]).take(pa.array(docs))
            tk = tokenize(picked.column("text"), cfg.unit, with_ids=False)
            words = tokenize(picked.column("text"), "word", with_ids=False) if cfg.unit == "byte" else tk
            ids, sources = picked.column("id").to_pylist(), picked.column("source").to_pylist()
            for j, d in enumerate(docs.tolist()):
                a, b = np.searchsorted(row, [rows + d, rows + d + 1])
                cs, ce = merge_intervals(start[a:b], end[a:b])
                t0, t1 = tk.doc_off[j], tk.doc_off[j + 1]
                w0, w1 = words.doc_off[j], words.doc_off[j + 1]
                nbytes = int(tk.text_off[j + 1] - tk.text_off[j])
                ranges, left = cut_plan(tk.start[t0:t1], tk.end[t0:t1], nbytes, cs, ce, cfg.unit,
                                        words.start[w0:w1], words.end[w0:w1])
                if not ranges:
                    continue
                reason = decide(ranges, left, cfg.min_words_after)
                src = str(sources[j])
                if reason is None:
                    acc = cut.setdefault(src, [0, 0])
                    acc[0] += 1
                    acc[1] += sum(h - lo_ for lo_, h in ranges)
                else:
                    acc = dropped.setdefault(reason, {}).setdefault(src, [0, 0])
                    acc[0] += 1
                    acc[1] += nbytes
                ids_out.append(ids[j])
                actions.append(reason or "cut")
                cut_lo.append([r[0] for r in ranges])
                cut_hi.append([r[1] for r in ranges])
        rows += n
    if len(row) and row[-1] >= rows:
        raise RuntimeError(f"substring: {shard.shard_id} has {rows} rows, fewer than when its anchors were taken")
    storage.write_parquet_atomic(out_path, pa.table({"id": ids_out, "action": actions, "starts": cut_lo,
                                                     "ends": cut_hi}, schema=DECISION_SCHEMA))
    return {"path": out_path, "rows": rows, "covered_docs": covered_docs, "cut": cut, "dropped": dropped}


# --------------------------------------------------------------------------- the stage


class SubstringDedup(GlobalStage):
    """Exact-substring dedup over the whole corpus (see the module docstring).

    Reasons: ``substring:removed_spans`` (nothing left) and ``substring:too_short_after`` (fewer than
    ``min_words_after`` words left); other documents lose their repeated spans. Build it from keyword
    arguments or from a :class:`SubstringConfig`.
    """

    name = "substring_dedup"
    version = "1"
    state_type = SubstringDecisions

    def __init__(self, config: SubstringConfig | None = None, /, **kwargs: Any) -> None:
        super().__init__()
        if config is not None and kwargs:
            raise ValueError("give either a SubstringConfig or keyword arguments, not both")
        self.cfg = config if config is not None else SubstringConfig(**kwargs)
        self._cache: tuple[str, dict[str, tuple[str, list[int], list[int]]]] | None = None

    def config(self) -> dict[str, Any]:
        return dataclasses.asdict(self.cfg)

    def check_budget(self, memory_per_worker: int) -> None:
        cfg = self.cfg
        working_memory(memory_per_worker)
        if cfg.batch_bytes is not None:
            check_fits(int(cfg.batch_bytes * MAP_BYTES_PER_TEXT_BYTE[cfg.unit] / SLICE_SHARE), memory_per_worker,
                       f"{self.name}: a text slice of batch_bytes={cfg.batch_bytes:,}", "batch_bytes")
        if cfg.anchors_per_partition is not None:
            check_fits(cfg.anchors_per_partition * REPEATS_BYTES_PER_ANCHOR, memory_per_worker,
                       f"{self.name}: a repeats partition of anchors_per_partition={cfg.anchors_per_partition:,}",
                       "anchors_per_partition")
        if cfg.map_buffer_anchors is not None:
            check_fits(cfg.map_buffer_anchors * MAP_BYTES_PER_ANCHOR, memory_per_worker,
                       f"{self.name}: a map buffer of map_buffer_anchors={cfg.map_buffer_anchors:,}",
                       "map_buffer_anchors")
        if cfg.verify_tokens_per_item is not None:
            check_fits(cfg.verify_tokens_per_item * VERIFY_BYTES_PER_TOKEN[cfg.unit], memory_per_worker,
                       f"{self.name}: a verify item of verify_tokens_per_item={cfg.verify_tokens_per_item:,}",
                       "verify_tokens_per_item")
            if cfg.verify_tokens_per_item < 4 * cfg.context_tokens:
                raise ValueError(f"{self.name}: verify_tokens_per_item={cfg.verify_tokens_per_item} holds fewer than "
                                 f"4 contexts of {cfg.context_tokens} tokens; raise it to at least "
                                 f"{4 * cfg.context_tokens}")

    def fit(self, ctx: GlobalContext) -> SubstringDecisions:
        cfg = self.cfg
        self.check_budget(ctx.memory_per_worker)
        mem = ctx.memory_per_worker
        shards = ordered_shards(ctx.shards)
        wd = storage.join(ctx.workdir, "substring")
        sizes = corpus_size(ctx, shards)
        text_bytes = sum(s["text_bytes"] for s in sizes)
        est_anchors = int(text_bytes / BYTES_PER_TOKEN_GUESS[cfg.unit] * cfg.density) + 1
        parts = partition_count(est_anchors, REPEATS_BYTES_PER_ANCHOR, mem, minimum=cfg.min_partitions,
                                records_per_partition=cfg.anchors_per_partition)
        flush = buffer_records(MAP_BYTES_PER_ANCHOR, mem, cfg.map_buffer_anchors)
        limit = batch_bytes(cfg, mem)
        item_tokens = verify_tokens(cfg, mem)
        chunk_occ = max(1, item_tokens // (2 * cfg.context_tokens))
        conf = {"stage": dataclasses.asdict(cfg), "partitions": parts, "flush": flush, "batch_bytes": limit,
                "item_tokens": item_tokens}
        logger.info("substring: %d shards, ~%d anchors expected, %d anchor partitions, %d context tokens per "
                    "verify item", len(shards), est_anchors, parts, item_tokens)
        maps = ctx.run_pass("anchors", _map_anchors,
                            shard_items(shards, lambda i, s: (s, i, cfg, parts, flush, limit, wd), sizes),
                            config=conf, progress="substring: anchors", count=lambda r: r["rows"])
        files = partition_files(storage.join(wd, "anchors"), parts, [m["chunks"] for m in maps.results])
        reps = ctx.run_pass("repeats", _repeats,
                            [Item(f"p{p:05d}", (files[p], wd, p, chunk_occ)) for p in range(parts)],
                            config={**conf, "anchors": maps.digest}, progress="substring: repeated anchors")
        # verify buckets: hash ranges sized to half an item, then the chunks of every hot group
        hot = sorted((h, n) for r in reps.results for h, n in r["hot"])
        repeated = sum(r["repeated"] for r in reps.results)
        normal = repeated - sum(n for _, n in hot)
        n_ranges = max(cfg.min_partitions, math.ceil(normal * cfg.context_tokens / (item_tokens / 2)))
        hot_h = np.array([h for h, _ in hot], dtype=np.uint64)
        hot_chunks = [math.ceil(n / chunk_occ) for _, n in hot]
        hot_base = n_ranges + np.concatenate([[0], np.cumsum(hot_chunks)]).astype(np.int64)[:len(hot)]
        sources = [[p for p, r in enumerate(reps.results) if i in r["shards"]] for i in range(len(shards))]
        flush_bytes = max(1 << 20, int(working_memory(mem) * SLICE_SHARE))
        cconf = {**conf, "repeats": reps.digest, "ranges": n_ranges, "chunk_occ": chunk_occ}
        ctxs = ctx.run_pass(
            "contexts", _contexts,
            shard_items(shards, lambda i, s: (s, i, [_rep_path(wd, i, p) for p in sources[i]], cfg, n_ranges, hot_h,
                                              hot_base, chunk_occ, flush_bytes, wd), sizes),
            config=cconf, progress="substring: contexts", count=lambda r: r["segments"],
        )

        def bucket_files(b: int) -> list[str]:
            return [_ctx_path(wd, b, i, c) for i, r in enumerate(ctxs.results)
                    for c in r["chunks"].get(str(b), [])]

        def bucket_bytes(b: int) -> int:
            return sum(int(r["bytes"].get(str(b), 0)) for r in ctxs.results)

        items = [Item(f"r{b:05d}", (bucket_files(b), wd, f"r{b:05d}", cfg), weight=float(bucket_bytes(b)))
                 for b in range(n_ranges)]
        for g, chunks in enumerate(hot_chunks):
            for i in range(chunks):
                for j in range(i, chunks):
                    key = f"h{g:05d}-{i:04d}-{j:04d}"
                    bi, bj = int(hot_base[g]) + i, int(hot_base[g]) + j
                    fl = bucket_files(bi) + (bucket_files(bj) if j != i else [])
                    items.append(Item(key, (fl, wd, key, cfg), weight=float(bucket_bytes(bi) + bucket_bytes(bj))))
        ver = ctx.run_pass("verify", _verify, items, config={**cconf, "contexts": ctxs.digest},
                           progress="substring: verify")
        marks = [[_marks_path(wd, i, it.key) for it, r in zip(items, ver.results) if i in r["shards"]]
                 for i in range(len(shards))]
        dec = ctx.run_pass(
            "decide", _decide,
            shard_items(shards, lambda i, s: (s, i, marks[i], cfg, storage.join(wd, "decisions", f"{i:06d}.parquet")),
                        sizes),
            config={**cconf, "verify": ver.digest}, progress="substring: decisions", count=lambda r: r["rows"],
        )
        summary = self._summary(maps.results, reps.results, ctxs.results, ver.results, dec.results, parts,
                                n_ranges, hot, len(items))
        logger.info("substring: %d documents cut, %d dropped, %.2f%% of the text bytes removed",
                    summary["documents_cut"], summary["documents_removed"], 100 * summary["fraction_bytes_removed"])
        return SubstringDecisions(summary=summary,
                                  decisions={s.shard_id: d["path"] for s, d in zip(shards, dec.results)})

    def _summary(self, maps: list, reps: list, ctxs: list, ver: list, dec: list, parts: int, n_ranges: int,
                 hot: list, n_items: int) -> dict[str, Any]:
        cut = merge_per_source([d["cut"] for d in dec])
        reasons = sorted({r for d in dec for r in d["dropped"]})
        dropped = {r: merge_per_source([d["dropped"].get(r, {}) for d in dec]) for r in reasons}
        removed_by_source: dict[str, dict[str, int]] = {}
        for part in [cut, *dropped.values()]:
            for src, v in part.items():
                acc = removed_by_source.setdefault(src, {"documents": 0, "bytes": 0})
                acc["bytes"] += v["bytes"]
        for part in dropped.values():
            for src, v in part.items():
                removed_by_source[src]["documents"] += v["documents"]
        text_bytes = sum(m["text_bytes"] for m in maps)
        bytes_removed = sum(v["bytes"] for v in removed_by_source.values())
        tokens = sum(m["tokens"] for m in maps)
        n_anchors = sum(m["anchors"] for m in maps)
        return {
            "method": "substring",
            "documents_in": sum(m["rows"] for m in maps),
            "text_bytes": text_bytes,
            "tokens": tokens,
            "windows": sum(m["windows"] for m in maps),
            "anchors": n_anchors,
            "anchor_density": round(n_anchors / max(1, sum(m["windows"] for m in maps)), 4),
            "repeated_anchors": sum(r["repeated"] for r in reps),
            "repeated_anchor_groups": sum(r["groups"] for r in reps),
            "largest_anchor_group": max((r["largest_group"] for r in reps), default=0),
            "hot_groups": len(hot),
            "context_segments": sum(c["segments"] for c in ctxs),
            "context_bytes": sum(v["bytes"] for v in ver),
            "verify_items": n_items,
            "context_tokens": sum(v["tokens"] for v in ver),
            "context_tokens_sorted": sum(v["sorted_tokens"] for v in ver),
            "marked_windows": sum(v["marked_windows"] for v in ver),
            "segments_covered_whole": sum(v["whole_segments"] for v in ver),
            "documents_with_repeats": sum(d["covered_docs"] for d in dec),
            "documents_cut": sum(v["documents"] for v in cut.values()),
            "bytes_removed_with_cuts": sum(v["bytes"] for v in cut.values()),
            "documents_removed": sum(v["documents"] for p in dropped.values() for v in p.values()),
            "documents_removed_by_reason": {r: sum(v["documents"] for v in p.values()) for r, p in dropped.items()},
            "bytes_removed_with_documents": sum(v["bytes"] for p in dropped.values() for v in p.values()),
            "bytes_removed": bytes_removed,
            "fraction_bytes_removed": round(bytes_removed / text_bytes, 6) if text_bytes else 0.0,
            "removed_by_source": dict(sorted(removed_by_source.items())),
            "cuts_by_source": cut,
            "partitions": parts,
            "verify_ranges": n_ranges,
            "config": dataclasses.asdict(self.cfg),
        }

    # applying the decisions --------------------------------------------------------------
    def _shard_decisions(self, shard_id: str) -> dict[str, tuple[Any, ...]]:
        if self._cache is None or self._cache[0] != shard_id:
            self._cache = (shard_id, read_decisions(self.state.decisions.get(shard_id), ("starts", "ends")))
        return self._cache[1]

    def process(self, table: pa.Table, shard: ShardContext | None = None) -> StageResult:
        if shard is None:
            raise ValueError(f"{self.name}: process() needs the ShardContext (shard_id)")

        def cut(text: str, fields: tuple[Any, ...]) -> tuple[str, str | None]:
            starts, ends = fields
            return apply_cuts(text.encode("utf-8"), list(zip(starts, ends))).decode("utf-8"), None

        return apply_shard_decisions(table, self._shard_decisions(shard.shard_id), cut)


__all__ = ["DECISION_SCHEMA", "REASON_EMPTY", "REASON_SHORT", "SubstringConfig", "SubstringDecisions",
           "SubstringDedup"]
