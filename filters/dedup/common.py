"""Shared plumbing of the dedup stages: Ray task fan-out, document numbering,
hash-range partition files, per-shard removal lists, and the report summary.

Document numbering (the deterministic keep rule)
------------------------------------------------
Shards are sorted by ``shard_id``; a document's *node* is
``(shard index << 32) | row`` (its row in the shard's phase parquet file). Every
duplicate cluster keeps its smallest node, i.e. the copy that comes first in
corpus order (shard id, then position in the shard), and removes the rest. The
numbering depends only on the input, never on the number of workers or on
task timing, so keep sets are identical across worker counts and reruns.
"""

from __future__ import annotations

import io as _io
import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curation import io
from curation.stage import GlobalContext, GlobalStage, PhaseShard, ShardContext, StageResult, split_by_reason

from .hashing import fmix64

logger = logging.getLogger(__name__)

ROW_BITS = 32
ROW_MASK = np.uint64((1 << ROW_BITS) - 1)
REMOVAL_SCHEMA = pa.schema(
    [pa.field("id", pa.string()), pa.field("cluster", pa.string()), pa.field("nbytes", pa.int64())]
)


# --------------------------------------------------------------------------- Ray

_REMOTES: dict[Callable[..., Any], Any] = {}  # one Ray remote function per task function (exported once)


def run_tasks(fn: Callable[..., Any], args: Sequence[tuple], num_workers: int, num_returns: int = 1) -> list[Any]:
    """Run ``fn(*a)`` for every ``a`` as Ray tasks, at most ``num_workers`` in flight; results in input order.

    When Ray is not initialised (unit use without a cluster), runs in-process.
    """
    import ray

    if not ray.is_initialized():
        return [fn(*a) for a in args]
    remote = _REMOTES.get(fn)
    if remote is None:
        remote = _REMOTES[fn] = ray.remote(num_cpus=1, max_retries=3)(fn)
    results: list[Any] = [None] * len(args)
    pending: dict[Any, int] = {}
    it = iter(enumerate(args))
    limit = max(1, num_workers)
    exhausted = False
    while pending or not exhausted:
        while not exhausted and len(pending) < limit:
            nxt = next(it, None)
            if nxt is None:
                exhausted = True
                break
            i, a = nxt
            pending[remote.remote(*a)] = i
        if not pending:
            break
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            results[pending.pop(ref)] = ray.get(ref)
    return results


# --------------------------------------------------------------------------- numbering and files


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


def save_arrays(path: str, **arrays: np.ndarray) -> None:
    buf = _io.BytesIO()
    np.savez(buf, **arrays)
    io.write_bytes_atomic(path, buf.getvalue())


def load_arrays(path: str) -> dict[str, np.ndarray]:
    fs, p = io.fs_path(path)
    with fs.open(p, "rb") as f:
        data = f.read()
    with np.load(_io.BytesIO(data)) as z:
        return {k: z[k] for k in z.files}


def list_files(folder: str) -> list[str]:
    fs, p = io.fs_path(folder)
    if not fs.exists(p):
        return []
    out = [f for f in fs.ls(p, detail=False) if not os.path.basename(f).startswith(".") and ".tmp-" not in f]
    if not io.is_local(folder):
        proto = fs.protocol[0] if isinstance(fs.protocol, (tuple, list)) else fs.protocol
        out = [f"{proto}://{f}" for f in out]
    return sorted(out)


def count_rows(path: str) -> int:
    fs, p = io.fs_path(path)
    with fs.open(p, "rb") as f:
        return pq.ParquetFile(f).metadata.num_rows


def text_bytes_estimate(path: str) -> int:
    """Uncompressed size of the text column from the parquet footer (no data read)."""
    fs, p = io.fs_path(path)
    with fs.open(p, "rb") as f:
        md = pq.ParquetFile(f).metadata
    idx = md.schema.to_arrow_schema().get_field_index("text")
    total = 0
    for rg in range(md.num_row_groups):
        total += md.row_group(rg).column(idx).total_uncompressed_size
    return int(total)


# --------------------------------------------------------------------------- removal lists


def write_removals(
    workdir: str,
    method: str,
    shards: list[PhaseShard],
    shard_idx: int,
    parts: list[str],
    watch: list[int] | None = None,
) -> dict[str, Any]:
    """Gather one shard's removed nodes from ``parts`` (npz with ``node``, ``label``) into its removal list.

    The list is a parquet file of (id, cluster = the kept copy's shard#row, nbytes),
    and the function returns per-source counts of removed documents and bytes.
    """
    shard = shards[shard_idx]
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
    if len(rows):
        docs = io.read_parquet(shard.path, columns=["id", "source", "text"])
        picked = docs.take(pa.array(rows))
        nbytes = pc.binary_length(picked.column("text").cast(pa.large_binary())).cast(pa.int64())
        ids = picked.column("id").cast(pa.string())
        sources = picked.column("source").to_pylist()
    else:
        nbytes = pa.array([], pa.int64())
        ids = pa.array([], pa.string())
        sources = []
    clusters = pa.array([f"{shards[s].shard_id}#{r}" for s, r in zip(node_shard(label), node_row(label))], pa.string())
    table = pa.table({"id": ids, "cluster": clusters, "nbytes": nbytes}, schema=REMOVAL_SCHEMA)
    path = io.join(workdir, method, "removal", f"{shard_idx:06d}.parquet")
    io.write_parquet_atomic(path, table)
    per_source: dict[str, list[int]] = {}
    for s, b in zip(sources, nbytes.to_pylist()):
        cur = per_source.setdefault(s, [0, 0])
        cur[0] += 1
        cur[1] += int(b)
    watch_members: dict[str, list[int]] = {}
    if watch and len(label):
        hit = np.isin(label, np.asarray(watch, dtype=np.uint64))
        for lab, nd in zip(label[hit].tolist(), node[hit].tolist()):
            lst = watch_members.setdefault(str(lab), [])
            if len(lst) < 3:
                lst.append(nd)
    return {"path": path, "removed": len(rows), "per_source": per_source, "watch_members": watch_members}


def merge_per_source(items: list[dict[str, list[int]]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for d in items:
        for s, (n, b) in d.items():
            cur = out.setdefault(s, {"documents": 0, "bytes": 0})
            cur["documents"] += n
            cur["bytes"] += b
    return dict(sorted(out.items()))


def resolve_ids(shards: list[PhaseShard], nodes: list[int]) -> dict[int, str]:
    """String ids of a few nodes (for the report's example clusters)."""
    by_shard: dict[int, list[int]] = {}
    for n in nodes:
        by_shard.setdefault(n >> ROW_BITS, []).append(n)
    out: dict[int, str] = {}
    for s, ns in sorted(by_shard.items()):
        ids = io.read_parquet(shards[s].path, columns=["id"]).column("id")
        for n in ns:
            out[n] = ids[n & ((1 << ROW_BITS) - 1)].as_py()
    return out


class RemovalListStage(GlobalStage):
    """A global stage whose ``process`` drops the ids on the shard's removal list.

    ``fit`` leaves ``state["removal"][shard_id]`` -> parquet path and ``state["reason"]``.
    Only one shard's list is cached per worker process, so memory stays bounded.
    """

    reason = "dedup"

    def __init__(self) -> None:
        super().__init__()
        self._cache: tuple[str, pa.Array] | None = None

    def _removed_ids(self, shard_id: str) -> pa.Array:
        if self._cache is not None and self._cache[0] == shard_id:
            return self._cache[1]
        path = self.state["removal"].get(shard_id)
        if path is None:
            ids = pa.array([], pa.string())
        else:
            ids = io.read_parquet(path, columns=["id"]).column("id").combine_chunks()
        self._cache = (shard_id, ids)
        return ids

    def process(self, table: pa.Table, shard: ShardContext | None = None) -> StageResult:
        if shard is None:
            raise ValueError(f"{self.name}: process() needs the ShardContext (shard_id)")
        removed = self._removed_ids(shard.shard_id)
        if table.num_rows == 0 or len(removed) == 0:
            return split_by_reason(table, None)
        hit = pc.is_in(table.column("id").cast(pa.string()), value_set=removed)
        reasons = pc.if_else(hit, pa.scalar(self.state.get("reason", self.reason)), pa.scalar(None, pa.string()))
        return split_by_reason(table, reasons)


class Timer:
    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.marks: dict[str, float] = {}

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self.marks[name] = round(now - self.t0, 3)
        self.t0 = now


def workdir_of(ctx: GlobalContext, method: str) -> str:
    path = io.join(ctx.workdir, method)
    io.makedirs(path)
    return path
