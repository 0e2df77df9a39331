"""Shared plumbing of the dedup stages: document numbering, the memory budget, partition chunk
files, the corpus-size pass, per-shard removal lists, the typed fitted state and the report summary.

Document numbering (the deterministic keep rule)
------------------------------------------------
Shards are sorted by ``shard_id``; a document's *node* is
``(shard index << 32) | row`` (its row in the shard's phase parquet file). Every
duplicate cluster keeps its smallest node, i.e. the copy that comes first in
corpus order (shard id, then position in the shard), and removes the rest. The
numbering depends only on the input, never on the number of workers or on
task timing, so keep sets are identical across worker counts and reruns.

Memory (DESIGN.md, "Distributed passes and scale")
--------------------------------------------------
Every fit is a sequence of passes (:meth:`curation.stage.GlobalContext.run_pass`).
What one task may hold is the budget ``memory_per_worker`` less :data:`TASK_OVERHEAD`
(the interpreter with numpy, pyarrow and a Ray worker loaded). Structures that grow
with the corpus are cut into hash-range partitions, as many as the corpus size (read
from parquet footers, never from ``num_workers``) times a stated per-record cost needs
to fit that working memory; map tasks flush their per-partition buffers to chunk files
when the buffer reaches a budget-derived size. Downstream tasks read explicit file
lists built from the upstream results (:func:`partition_files`), never a directory
listing, so a stray or stale file is never read.
"""

from __future__ import annotations

import io as _io
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curation import storage
from curation.passes import Item
from curation.stage import (
    FittedState,
    GlobalContext,
    GlobalStage,
    PhaseShard,
    ShardContext,
    StageResult,
    split_by_reason,
)
from curation.stats import count_by_source

from .hashing import fmix64

logger = logging.getLogger(__name__)

ROW_BITS = 32
ROW_MASK = np.uint64((1 << ROW_BITS) - 1)
REMOVAL_SCHEMA = pa.schema(
    [pa.field("id", pa.string()), pa.field("cluster", pa.string()), pa.field("nbytes", pa.int64())]
)
#: what a task costs before it holds any data: Python, numpy, pyarrow and a Ray worker (measured ~250 MiB RSS)
TASK_OVERHEAD = 320 << 20
#: a map task's partitioning buffer may use this fraction of the working memory (the rest: reading a batch)
MAP_BUFFER_SHARE = 0.25
TOP_CLUSTERS = 10


# --------------------------------------------------------------------------- the budget


def working_memory(memory_per_worker: int, setting: str = "--memory-per-worker") -> int:
    """Bytes a task may use for data under ``memory_per_worker``; ValueError when nothing is left."""
    left = int(memory_per_worker) - TASK_OVERHEAD
    if left < 32 << 20:
        raise ValueError(
            f"memory_per_worker={memory_per_worker >> 20} MiB leaves {max(left, 0) >> 20} MiB for data after a task's "
            f"fixed cost (~{TASK_OVERHEAD >> 20} MiB); raise {setting} to at least {(TASK_OVERHEAD >> 20) + 64} MiB"
        )
    return left


def check_fits(need: int, memory_per_worker: int, what: str, setting: str) -> None:
    """Refuse (ValueError naming ``setting``) when ``need`` bytes do not fit one task's working memory."""
    have = working_memory(memory_per_worker)
    if need > have:
        raise ValueError(
            f"{what} needs about {need / 2**20:,.0f} MiB per task, over the {have / 2**20:,.0f} MiB a task has under "
            f"--memory-per-worker={memory_per_worker / 2**30:.2f} GiB; lower {setting} (or leave it unset to derive "
            "it from the budget), or raise --memory-per-worker"
        )


def partition_count(
    records: int, bytes_per_record: float, memory_per_worker: int, *, minimum: int = 1,
    records_per_partition: int | None = None,
) -> int:
    """Partitions for ``records`` records so that one partition's reduce fits the budget.

    ``records_per_partition`` (an explicit setting) overrides the budget-derived size.
    """
    per = records_per_partition or max(1, int(working_memory(memory_per_worker) // bytes_per_record))
    return max(int(minimum), math.ceil(records / per))


def buffer_records(bytes_per_record: float, memory_per_worker: int, explicit: int | None = None) -> int:
    """Records a map task buffers before it writes a chunk file per partition."""
    if explicit is not None:
        return int(explicit)
    return max(1024, int(working_memory(memory_per_worker) * MAP_BUFFER_SHARE // bytes_per_record))


# --------------------------------------------------------------------------- numbering


def ordered_shards(shards: list[PhaseShard]) -> list[PhaseShard]:
    ids = [s.shard_id for s in shards]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate shard ids in the global stage input")
    return sorted(shards, key=lambda s: s.shard_id)


def node_ids(shard_idx: int, start_row: int, n: int) -> np.ndarray:
    return (np.uint64(shard_idx) << np.uint64(ROW_BITS)) | np.arange(start_row, start_row + n, dtype=np.uint64)


def node_shard(nodes: np.ndarray) -> np.ndarray:
    return (nodes >> np.uint64(ROW_BITS)).astype(np.int64)


def node_row(nodes: np.ndarray) -> np.ndarray:
    return (nodes & ROW_MASK).astype(np.int64)


def partition_of(keys: np.ndarray, num_partitions: int) -> np.ndarray:
    """Hash-range partition of 64-bit keys (keys are re-mixed so structured keys spread too)."""
    return ((fmix64(keys) >> np.uint64(32)) * np.uint64(num_partitions) >> np.uint64(32)).astype(np.int64)


# --------------------------------------------------------------------------- files


def save_arrays(path: str, **arrays: np.ndarray) -> None:
    buf = _io.BytesIO()
    np.savez(buf, **arrays)
    storage.write_bytes_atomic(path, buf.getvalue())


def load_arrays(path: str) -> dict[str, np.ndarray]:
    with np.load(_io.BytesIO(storage.read_bytes(path))) as z:
        return {k: z[k] for k in z.files}


def remove_tree(path: str) -> None:
    fs, p = storage.fs_path(path)
    if fs.exists(p):
        fs.rm(p, recursive=True)


def chunk_path(folder: str, part: int, shard_idx: int, chunk: int) -> str:
    return storage.join(folder, f"p{part:05d}", f"s{shard_idx:06d}-c{chunk:04d}.npz")


class PartitionChunks:
    """A map task's records, written per hash-range partition in chunk files.

    Records are buffered until ``flush_records`` of them are held, then sorted by
    partition (stably: the order within a partition is the order of arrival) and
    written as ``<folder>/p<part>/s<shard>-c<chunk>.npz``. :meth:`close` returns,
    per partition with data, the chunk numbers written (what :func:`partition_files`
    turns into the downstream task's file list).
    """

    def __init__(self, folder: str, shard_idx: int, num_partitions: int, flush_records: int) -> None:
        self.folder = folder
        self.shard_idx = shard_idx
        self.num_partitions = num_partitions
        self.flush_records = max(1, flush_records)
        self._parts: list[np.ndarray] = []
        self._cols: dict[str, list[np.ndarray]] = {}
        self._held = 0
        self._chunk = 0
        self.written: dict[int, list[int]] = {}
        self.records = 0

    def add(self, part: np.ndarray, **cols: np.ndarray) -> None:
        if len(part) == 0:
            return
        self._parts.append(np.asarray(part, dtype=np.int64))
        for k, v in cols.items():
            self._cols.setdefault(k, []).append(v)
        self._held += len(part)
        self.records += len(part)
        if self._held >= self.flush_records:
            self.flush()

    def flush(self) -> None:
        if not self._held:
            return
        part = np.concatenate(self._parts)
        cols = {k: np.concatenate(v) for k, v in self._cols.items()}
        self._parts, self._cols, self._held = [], {}, 0
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(self.num_partitions + 1))
        for p in np.flatnonzero(np.diff(bounds)).tolist():
            sel = order[bounds[p] : bounds[p + 1]]
            save_arrays(chunk_path(self.folder, p, self.shard_idx, self._chunk), **{k: v[sel] for k, v in cols.items()})
            self.written.setdefault(p, []).append(self._chunk)
        self._chunk += 1

    def close(self) -> dict[int, list[int]]:
        self.flush()
        return self.written


def partition_files(folder: str, num_partitions: int, chunks_by_shard: list[dict[str, list[int]]]) -> list[list[str]]:
    """Per partition, the chunk files the map tasks wrote, in corpus order (shard, then chunk).

    ``chunks_by_shard[s]`` is shard ``s``'s :meth:`PartitionChunks.close` (keys as strings, as
    every pass result is JSON-round-tripped).
    """
    out: list[list[str]] = [[] for _ in range(num_partitions)]
    for s, written in enumerate(chunks_by_shard):
        for p, chunks in sorted(((int(k), v) for k, v in written.items())):
            out[p].extend(chunk_path(folder, p, s, c) for c in chunks)
    return out


# --------------------------------------------------------------------------- corpus size (parquet footers)


def _column_names(path: str) -> list[str]:
    fs, p = storage.fs_path(path)
    with fs.open(p, "rb") as f:
        return pq.ParquetFile(f).schema_arrow.names


def shard_footer(path: str) -> dict[str, int]:
    """Rows and uncompressed text-column bytes of one parquet shard, from its footer (no data read)."""
    fs, p = storage.fs_path(path)
    with fs.open(p, "rb") as f:
        md = pq.ParquetFile(f).metadata
    idx = md.schema.to_arrow_schema().get_field_index("text")
    text = 0
    if idx >= 0:
        text = sum(md.row_group(rg).column(idx).total_uncompressed_size for rg in range(md.num_row_groups))
    return {"rows": int(md.num_rows), "text_bytes": int(text)}


def corpus_size(ctx: GlobalContext, shards: list[PhaseShard]) -> list[dict[str, int]]:
    """Per shard (in ``shards`` order): rows and text bytes, as a pass (a rerun reads the markers)."""
    items = [Item(s.shard_id, (s.path,), inputs=(s.path,)) for s in shards]
    return ctx.run_pass("footers", shard_footer, items, progress="dedup: corpus size").results


def shard_items(shards: list[PhaseShard], args: Any, sizes: list[dict[str, int]] | None = None) -> list[Item]:
    """One item per shard: ``args(i, shard)`` builds its arguments; the shard's index and file define it."""
    return [
        Item(s.shard_id, args(i, s), inputs=(s.path,), params={"index": i},
             weight=float(sizes[i]["text_bytes"]) if sizes else 0.0)
        for i, s in enumerate(shards)
    ]


# --------------------------------------------------------------------------- removal lists


#: the column that carries, on every kept document, how many documents of the input it stands for
CLUSTER_COLUMN = "dup_cluster_size"
KEPT_SCHEMA = pa.schema([pa.field("id", pa.string()), pa.field("members", pa.int64())])


@dataclass(frozen=True)
class RemovalLists(FittedState):
    """The fitted state of a removal-list dedup: per shard id, the parquet list of ids to drop, and the reason;
    ``kept``: per shard id, the parquet list (id, members) of kept documents that stand for removed ones."""

    reason: str = "dedup"
    removal: dict[str, str] = field(default_factory=dict)
    kept: dict[str, str] = field(default_factory=dict)


def sizes_path(wd: str, to: int, frm: int) -> str:
    return storage.join(wd, "sizes", f"to{to:06d}", f"from{frm:06d}.npz")


def gather_removals(
    shard: PhaseShard,
    shard_idx: int,
    parts: list[str],
    out_path: str,
    batch_size: int,
    watch_labels: list[int],
    watch_nodes: list[int],
    wd: str,
    shard_ids: list[str],
) -> dict[str, Any]:
    """One shard's removal list from ``parts`` (npz with ``node``, ``label``), reading the shard in batches.

    The list is a parquet file of (id, cluster = the kept copy's ``shard_id#row``, nbytes).
    Returns per-source counts of removed documents and bytes, up to three removed members of
    each label in ``watch_labels`` and the ids of those members and of ``watch_nodes`` in this shard.
    The removed documents' weights (their ``dup_cluster_size``, 1 when the column is absent: the
    documents each stands for) are summed per kept copy and sent to the kept copy's shard
    (``wd/sizes/to<shard>/from<this shard>.npz``; ``size_to`` lists the shards sent to).
    """
    nodes, labels = [], []
    for p in parts:
        a = load_arrays(p)
        nodes.append(a["node"])
        labels.append(a["label"])
    node = np.concatenate(nodes) if nodes else np.zeros(0, np.uint64)
    label = np.concatenate(labels) if labels else np.zeros(0, np.uint64)
    order = np.argsort(node, kind="stable")
    node, label = node[order], label[order]
    rows = node_row(node)
    members: dict[str, list[int]] = {}
    if watch_labels and len(label):
        hit = np.isin(label, np.asarray(watch_labels, dtype=np.uint64))
        for lab, nd in zip(label[hit].tolist(), node[hit].tolist()):
            lst = members.setdefault(str(lab), [])
            if len(lst) < 3:
                lst.append(nd)
    want = {n for n in watch_nodes if n >> ROW_BITS == shard_idx} | {n for v in members.values() for n in v}
    want_rows = np.array(sorted(n & int(ROW_MASK) for n in want), dtype=np.int64)
    ids_out, nbytes_out, sources_out, weights_out = [], [], [], []
    resolved: dict[str, str] = {}
    start = 0
    has_weight = CLUSTER_COLUMN in _column_names(shard.path)
    columns = ["id", "source", "text"] + ([CLUSTER_COLUMN] if has_weight else []) if len(rows) else ["id"]
    if len(rows) or len(want_rows):
        for batch in storage.iter_parquet_batches(shard.path, batch_size=batch_size, columns=columns):
            end = start + batch.num_rows
            lo, hi = np.searchsorted(rows, [start, end])
            if hi > lo:
                picked = pa.Table.from_batches([batch]).take(pa.array(rows[lo:hi] - start))
                ids_out.append(picked.column("id").cast(pa.string()))
                nbytes_out.append(pc.binary_length(picked.column("text").cast(pa.large_binary())).cast(pa.int64()))
                sources_out.append(picked.column("source").cast(pa.string()))
                if has_weight:
                    weights_out.append(cluster_weights(picked))
            wlo, whi = np.searchsorted(want_rows, [start, end])
            if whi > wlo:
                got = batch.column(0).take(pa.array(want_rows[wlo:whi] - start)).to_pylist()
                for r, i in zip(want_rows[wlo:whi].tolist(), got):
                    resolved[str((shard_idx << ROW_BITS) | r)] = i
            start = end
            if hi == len(rows) and whi == len(want_rows):
                break
    if len(rows) and sum(len(x) for x in ids_out) != len(rows):
        raise RuntimeError(f"removal list of {shard.shard_id}: rows beyond the end of {shard.path}")
    ids = _concat(ids_out, pa.string())
    nbytes = _concat(nbytes_out, pa.int64())
    clusters = pa.array([f"{shard_ids[s]}#{r}" for s, r in zip(node_shard(label), node_row(label))], pa.string())
    storage.write_parquet_atomic(out_path, pa.table({"id": ids, "cluster": clusters, "nbytes": nbytes},
                                               schema=REMOVAL_SCHEMA))
    per_source = count_by_source(_concat(sources_out, pa.string()), nbytes)
    weight = np.concatenate(weights_out) if weights_out else np.ones(len(rows), dtype=np.int64)
    size_to = []
    if len(label):  # the removed documents' weights, summed per kept copy, to the kept copy's shard
        uniq, inv = np.unique(label, return_inverse=True)
        total = np.bincount(inv, weights=weight).astype(np.int64)
        target = node_shard(uniq)
        for t in np.unique(target).tolist():
            sel = target == t
            save_arrays(sizes_path(wd, t, shard_idx), row=node_row(uniq[sel]), members=total[sel])
            size_to.append(t)
    return {"path": out_path, "removed": len(rows), "per_source": per_source, "members": members, "ids": resolved,
            "size_to": size_to}


def cluster_weights(table: pa.Table) -> np.ndarray:
    """Each row's ``dup_cluster_size`` (the documents it stands for; 1 where absent or null)."""
    if CLUSTER_COLUMN not in table.column_names:
        return np.ones(table.num_rows, dtype=np.int64)
    col = pc.fill_null(table.column(CLUSTER_COLUMN).cast(pa.int64()), 1)
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.int64)


def gather_kept(shard: PhaseShard, shard_idx: int, files: list[str], out_path: str, batch_size: int) -> dict[str, Any]:
    """The kept copies of this shard that stand for removed documents: (id, members) where ``members`` is the
    sum of the weights the gathers sent (``process`` adds it to the copy's own ``dup_cluster_size``)."""
    rows, weights = [], []
    for f in files:
        a = load_arrays(f)
        rows.append(a["row"])
        weights.append(a["members"])
    row = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    w = np.concatenate(weights) if weights else np.zeros(0, np.int64)
    uniq, inv = np.unique(row, return_inverse=True)
    members = np.bincount(inv, weights=w).astype(np.int64) if len(row) else np.zeros(0, np.int64)
    ids: list[pa.Array] = []
    start = 0
    if len(uniq):
        for batch in storage.iter_parquet_batches(shard.path, batch_size=batch_size, columns=["id"]):
            end = start + batch.num_rows
            lo, hi = np.searchsorted(uniq, [start, end])
            if hi > lo:
                ids.append(batch.column(0).take(pa.array(uniq[lo:hi] - start)).cast(pa.string()))
            start = end
            if hi == len(uniq):
                break
    got = _concat(ids, pa.string())
    if len(got) != len(uniq):
        raise RuntimeError(f"kept sizes of {shard.shard_id}: rows beyond the end of {shard.path}")
    storage.write_parquet_atomic(out_path, pa.table({"id": got, "members": pa.array(members, pa.int64())},
                                                    schema=KEPT_SCHEMA))
    return {"path": out_path, "kept_with_duplicates": int(len(uniq)), "members": int(members.sum())}


def cluster_sizes(ctx: GlobalContext, shards: list[PhaseShard], gathers: Any, wd: str, conf: dict[str, Any],
                  batch_size: int, name: str) -> list[dict[str, Any]]:
    """The ``sizes`` pass (an item per shard): the kept lists of :func:`gather_kept` from the gathers' results."""
    sources = [[s for s, g in enumerate(gathers.results) if i in g["size_to"]] for i in range(len(shards))]
    return ctx.run_pass(
        "sizes", gather_kept,
        shard_items(shards, lambda i, s: (s, i, [sizes_path(wd, i, f) for f in sources[i]],
                                          storage.join(wd, "kept", f"{i:06d}.parquet"), batch_size)),
        config={**conf, "gather": gathers.digest}, progress=f"{name}: cluster sizes",
    ).results


def _concat(parts: list[pa.Array | pa.ChunkedArray], type_: pa.DataType) -> pa.Array:
    """One array of ``parts`` (an empty one of ``type_`` when there are none)."""
    if not parts:
        return pa.array([], type_)
    return pa.concat_arrays([c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c for c in parts])


def removal_sources(results: list[dict[str, Any]], num_shards: int, key: str = "shards") -> list[list[int]]:
    """Per shard, the producers (partitions) whose result lists it under ``key``: who wrote removals for it."""
    out: list[list[int]] = [[] for _ in range(num_shards)]
    for p, r in enumerate(results):
        for s in r[key]:
            out[int(s)].append(p)
    return out


def merge_per_source(items: list[dict[str, list[int]]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for d in items:
        for s, (n, b) in d.items():
            cur = out.setdefault(s, {"documents": 0, "bytes": 0})
            cur["documents"] += n
            cur["bytes"] += b
    return dict(sorted(out.items()))


def summarize_clusters(
    method: str, stats: list[dict[str, Any]], gathers: list[dict[str, Any]], top_k: int = TOP_CLUSTERS
) -> dict[str, Any]:
    """Merge per-partition cluster stats (``clusters``, ``sizes``, ``top``: size, rep, examples) and the
    per-shard gather results into the report summary (ids resolved by the gathers)."""
    tops = sorted((t for r in stats for t in r["top"]), key=lambda t: (-t["size"], t["rep"]))[:top_k]
    ids: dict[str, str] = {}
    for g in gathers:
        ids.update(g["ids"])
    sizes: dict[str, int] = {}
    for r in stats:
        for k, v in r["sizes"].items():
            sizes[k] = sizes.get(k, 0) + v
    per_source = merge_per_source([g["per_source"] for g in gathers])
    return {
        "method": method,
        "clusters": sum(r["clusters"] for r in stats),
        "documents_removed": sum(g["removed"] for g in gathers),
        "bytes_removed": sum(v["bytes"] for v in per_source.values()),
        "removed_by_source": per_source,
        "cluster_size_hist": {k: sizes[k] for k in sorted(sizes, key=int)},
        "largest_clusters": [
            {"size": t["size"], "kept": ids.get(str(t["rep"])),
             "examples": [ids.get(str(e)) for e in t["examples"] if e != t["rep"]]}
            for t in tops
        ],
    }


def watch_list(stats: list[dict[str, Any]], top_k: int = TOP_CLUSTERS) -> tuple[list[int], list[int]]:
    """(labels, nodes) whose members and ids the gathers should report for the largest clusters."""
    tops = sorted((t for r in stats for t in r["top"]), key=lambda t: (-t["size"], t["rep"]))[:top_k]
    labels = sorted({int(t["rep"]) for t in tops})
    nodes = sorted({int(n) for t in tops for n in [t["rep"], *t.get("examples", [])]})
    return labels, nodes


class RemovalListStage(GlobalStage):
    """A global stage whose ``process`` drops the ids on the shard's removal list (:class:`RemovalLists`).

    Only one shard's list is cached per worker process, so memory stays bounded.
    """

    reason = "dedup"
    state_type = RemovalLists

    def __init__(self) -> None:
        super().__init__()
        self._cache: tuple[str, pa.Array, pa.Table] | None = None

    def _shard_lists(self, shard_id: str) -> tuple[pa.Array, pa.Table]:
        if self._cache is not None and self._cache[0] == shard_id:
            return self._cache[1], self._cache[2]
        path = self.state.removal.get(shard_id)
        if path is None:
            ids = pa.array([], pa.string())
        else:
            ids = storage.read_parquet(path, columns=["id"]).column("id").combine_chunks()
        kept_path = self.state.kept.get(shard_id)
        kept = storage.read_parquet(kept_path) if kept_path is not None else KEPT_SCHEMA.empty_table()
        self._cache = (shard_id, ids, kept.combine_chunks())
        return ids, self._cache[2]

    def process(self, table: pa.Table, shard: ShardContext | None = None) -> StageResult:
        """Drop the shard's removed ids; every kept row gets ``dup_cluster_size``: the documents it stands for
        (its own, 1 when the column is absent, plus those of the duplicates removed in its favour)."""
        if shard is None:
            raise ValueError(f"{self.name}: process() needs the ShardContext (shard_id)")
        removed, kept = self._shard_lists(shard.shard_id)
        ids = table.column("id").cast(pa.string())
        size = cluster_weights(table)
        if len(kept) and table.num_rows:
            at = pc.fill_null(pc.index_in(ids, value_set=kept.column("id")), -1).to_numpy(zero_copy_only=False)
            add = np.append(kept.column("members").to_numpy(), 0)  # index -1: not in the list, nothing to add
            size = size + add[at]
        column = pa.array(size, pa.int64())
        if CLUSTER_COLUMN in table.column_names:
            table = table.set_column(table.schema.get_field_index(CLUSTER_COLUMN), CLUSTER_COLUMN, column)
        else:
            table = table.append_column(CLUSTER_COLUMN, column)
        if table.num_rows == 0 or len(removed) == 0:
            return split_by_reason(table, None)
        hit = pc.is_in(ids, value_set=removed)
        reasons = pc.if_else(hit, pa.scalar(self.state.reason), pa.scalar(None, pa.string()))
        return split_by_reason(table, reasons)


def removal_states(
    reason: str, shards: list[PhaseShard], gathers: list[dict[str, Any]], summary: dict[str, Any],
    plots: tuple[str, ...] = (), kept: list[dict[str, Any]] | None = None,
) -> RemovalLists:
    if kept is not None:
        summary = {**summary, "kept_with_duplicates": sum(k["kept_with_duplicates"] for k in kept)}
    return RemovalLists(summary=summary, plots=plots, reason=reason,
                        removal={s.shard_id: g["path"] for s, g in zip(shards, gathers)},
                        kept={s.shard_id: k["path"] for s, k in zip(shards, kept or [])})


def read_decisions(path: str | None, fields: tuple[str, ...]) -> dict[str, tuple[Any, ...]]:
    """One shard's decision file as ``{id: (action, *fields)}`` (empty when the shard has none)."""
    if path is None:
        return {}
    t = storage.read_parquet(path)
    cols = [t.column(c).to_pylist() for c in ("id", "action", *fields)]
    return {i: (a, *rest) for i, a, *rest in zip(*cols)}


def apply_shard_decisions(table: pa.Table, dec: dict[str, tuple[Any, ...]],
                    cut: Callable[[str, tuple[Any, ...]], tuple[str, str | None]]) -> StageResult:
    """A shard's decisions applied to a batch: a document whose action is not ``"cut"`` is dropped with the
    action as its reason; a ``"cut"`` document's text is replaced by ``cut(text, fields)``, which also returns
    a drop reason or None (the text is replaced either way, so what is dropped is what was decided)."""
    if table.num_rows == 0 or not dec:
        return split_by_reason(table, None)
    ids = table.column("id").to_pylist()
    hit = [i for i, x in enumerate(ids) if x in dec]
    if not hit:
        return split_by_reason(table, None)
    reasons: list[str | None] = [None] * table.num_rows
    texts = table.column("text").take(pa.array(hit)).to_pylist()
    repl_rows, repl = [], []
    for r, t in zip(hit, texts):
        action, *fields = dec[ids[r]]
        if action != "cut":
            reasons[r] = action
            continue
        new, reasons[r] = cut(t, tuple(fields))
        repl_rows.append(r)
        repl.append(new)
    if repl_rows:
        mask = np.zeros(table.num_rows, dtype=bool)
        mask[repl_rows] = True
        new_text = pc.replace_with_mask(table.column("text").combine_chunks(), pa.array(mask),
                                        pa.array(repl, table.schema.field("text").type))
        table = table.set_column(table.schema.get_field_index("text"), "text", new_text)
    return split_by_reason(table, pa.array(reasons, pa.string()))
