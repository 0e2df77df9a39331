"""Distributed connected components by iterative min-label propagation.

Edges live in ``num_partitions`` hash-range partitions by source node (both
directions of every edge are stored), and so do the node labels. A round is
one Ray task per partition: it reads its labels and the messages addressed to
its nodes, lowers each label to the smallest label heard, and, for the nodes
whose label dropped, sends the new label along their out-edges to the
partitions of the destinations. It stops when no label changes. At the end
every node carries the smallest node id of its component, which is the
component's representative (see the keep rule in :mod:`filters.dedup.common`).

No process ever holds every edge: a task holds one partition's edges, labels
and incoming messages, so memory is set by the number of partitions. The number
of rounds is the largest distance from a component's minimum to its other
nodes, plus one; LSH buckets contribute stars and short chains, so real
corpora converge in a handful of rounds (``max_rounds`` guards pathological
chains and raises rather than returning a wrong answer).
"""

from __future__ import annotations

import heapq
import logging
from typing import Any

import numpy as np

from curation import io

from .common import list_files, load_arrays, partition_of, run_tasks, save_arrays

logger = logging.getLogger(__name__)


def _edge_path(cc_dir: str, q: int) -> str:
    return io.join(cc_dir, "edges", f"q{q:05d}.npz")


def _label_path(cc_dir: str, k: int, q: int) -> str:
    return io.join(cc_dir, "labels", f"r{k:03d}", f"q{q:05d}.npz")


def _msg_dir(cc_dir: str, k: int, q: int) -> str:
    return io.join(cc_dir, "msg", f"r{k:03d}", f"to{q:05d}")


def _send(cc_dir: str, k: int, q: int, dst: np.ndarray, lab: np.ndarray, num_partitions: int) -> int:
    """Route (dst, label) messages of round ``k`` from partition ``q`` to the partitions of ``dst``."""
    keep = lab < dst  # a label can only lower dst's label if it is below dst itself
    dst, lab = dst[keep], lab[keep]
    if len(dst) == 0:
        return 0
    part = partition_of(dst, num_partitions)
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(num_partitions + 1))
    for r in range(num_partitions):
        sel = order[bounds[r] : bounds[r + 1]]
        if len(sel):
            save_arrays(io.join(_msg_dir(cc_dir, k, r), f"from{q:05d}.npz"), dst=dst[sel], lab=lab[sel])
    return int(len(dst))


def _round(edge_dir: str, cc_dir: str, k: int, q: int, num_partitions: int) -> dict[str, int]:
    if k == 0:
        # consolidate this partition's edges: sorted by (src, dst), duplicates removed
        files = list_files(io.join(edge_dir, f"q{q:05d}"))
        if files:
            arrs = [load_arrays(f) for f in files]
            src = np.concatenate([a["src"] for a in arrs])
            dst = np.concatenate([a["dst"] for a in arrs])
        else:
            src = dst = np.zeros(0, np.uint64)
        order = np.lexsort((dst, src))
        src, dst = src[order], dst[order]
        if len(src):
            first = np.ones(len(src), dtype=bool)
            first[1:] = (src[1:] != src[:-1]) | (dst[1:] != dst[:-1])
            src, dst = src[first], dst[first]
        save_arrays(_edge_path(cc_dir, q), src=src, dst=dst)
        nodes = np.unique(src)
        labels = nodes.copy()
        changed = np.ones(len(nodes), dtype=bool)
    else:
        e = load_arrays(_edge_path(cc_dir, q))
        src, dst = e["src"], e["dst"]
        st = load_arrays(_label_path(cc_dir, k - 1, q))
        nodes, labels = st["node"], st["label"]
        changed = np.zeros(len(nodes), dtype=bool)
        files = list_files(_msg_dir(cc_dir, k - 1, q))
        if files:
            msgs = [load_arrays(f) for f in files]
            mdst = np.concatenate([m["dst"] for m in msgs])
            mlab = np.concatenate([m["lab"] for m in msgs])
            idx = np.searchsorted(nodes, mdst)
            if np.any(idx >= len(nodes)) or np.any(nodes[np.minimum(idx, len(nodes) - 1)] != mdst):
                raise RuntimeError(f"components: partition {q} got a message for a node it does not own")
            best = labels.copy()
            np.minimum.at(best, idx, mlab)
            changed = best < labels
            labels = best
    save_arrays(_label_path(cc_dir, k, q), node=nodes, label=labels)
    n_changed = int(changed.sum())
    sent = 0
    if n_changed and len(src):
        src_idx = np.searchsorted(nodes, src)
        active = changed[src_idx]
        sent = _send(cc_dir, k, q, dst[active], labels[src_idx[active]], num_partitions)
    return {"changed": n_changed, "sent": sent, "nodes": int(len(nodes)), "edges": int(len(src))}


def _finalize(cc_dir: str, out_dir: str, k: int, q: int, num_partitions: int) -> dict[str, int]:
    st = load_arrays(_label_path(cc_dir, k, q))
    nodes, labels = st["node"], st["label"]
    removed = labels != nodes
    rm_node, rm_label = nodes[removed], labels[removed]
    shard_of = (rm_node >> np.uint64(32)).astype(np.int64)
    for s in np.unique(shard_of):
        sel = shard_of == s
        save_arrays(
            io.join(out_dir, "removed", f"s{int(s):06d}", f"q{q:05d}.npz"), node=rm_node[sel], label=rm_label[sel]
        )
    # cluster sizes: count members per label here, then sum per label in the label's partition
    uniq, counts = np.unique(labels, return_counts=True)
    part = partition_of(uniq, num_partitions) if len(uniq) else np.zeros(0, np.int64)
    for r in np.unique(part):
        sel = part == r
        save_arrays(
            io.join(cc_dir, "counts", f"to{int(r):05d}", f"from{q:05d}.npz"), label=uniq[sel], count=counts[sel]
        )
    return {"removed": int(removed.sum())}


def _cluster_stats(cc_dir: str, out_dir: str, r: int, top_k: int) -> dict[str, Any]:
    files = list_files(io.join(cc_dir, "counts", f"to{r:05d}"))
    if not files:
        return {"clusters": 0, "top": [], "sizes": {}}
    arrs = [load_arrays(f) for f in files]
    label = np.concatenate([a["label"] for a in arrs])
    count = np.concatenate([a["count"] for a in arrs])
    uniq, inv = np.unique(label, return_inverse=True)
    sizes = np.bincount(inv, weights=count).astype(np.int64)
    top = heapq.nlargest(top_k, zip(sizes.tolist(), (-uniq.astype(np.int64)).tolist()))
    hist = np.bincount(np.minimum(sizes, 64))
    return {
        "clusters": int(len(uniq)),
        "top": [{"size": int(s), "rep": int(-n)} for s, n in top],
        "sizes": {str(i): int(c) for i, c in enumerate(hist) if c},
    }


def connected_components(
    edge_dir: str,
    cc_dir: str,
    out_dir: str,
    num_partitions: int,
    num_workers: int,
    max_rounds: int = 64,
    top_k: int = 10,
) -> dict[str, Any]:
    """Label every node of the edge partitions in ``edge_dir/q*/`` with its component's minimum.

    Writes ``out_dir/removed/s<shard>/q<part>.npz`` (node, label) for every
    non-minimum node and returns round counts and cluster statistics.
    """
    rounds = []
    k = 0
    while True:
        if k >= max_rounds:
            raise RuntimeError(f"components: no convergence after {max_rounds} rounds")
        res = run_tasks(_round, [(edge_dir, cc_dir, k, q, num_partitions) for q in range(num_partitions)], num_workers)
        sent = sum(r["sent"] for r in res)
        rounds.append({"changed": sum(r["changed"] for r in res), "sent": sent})
        logger.info("components round %d: %d labels changed, %d messages", k, rounds[-1]["changed"], sent)
        if k >= 1:
            _rm(io.join(cc_dir, "labels", f"r{k - 1:03d}"))
            _rm(io.join(cc_dir, "msg", f"r{k - 1:03d}"))
        if sent == 0:
            break
        k += 1
    fin = run_tasks(_finalize, [(cc_dir, out_dir, k, q, num_partitions) for q in range(num_partitions)], num_workers)
    stats = run_tasks(_cluster_stats, [(cc_dir, out_dir, r, top_k) for r in range(num_partitions)], num_workers)
    nodes = sum(r["nodes"] for r in res)
    return {
        "rounds": len(rounds),
        "round_log": rounds,
        "nodes": nodes,
        "removed": sum(f["removed"] for f in fin),
        "cluster_stats": stats,
    }


def _rm(path: str) -> None:
    fs, p = io.fs_path(path)
    if fs.exists(p):
        fs.rm(p, recursive=True)
