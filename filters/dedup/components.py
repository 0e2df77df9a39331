"""Distributed connected components by iterative min-label propagation, one pass per round.

Edges live in ``num_partitions`` hash-range partitions by source node (both
directions of every edge are stored), and so do the node labels. A round is
one pass with an item per partition: it reads its labels and the messages addressed to
its nodes, lowers each label to the smallest label heard, and, for the nodes
whose label dropped, sends the new label along their out-edges to the
partitions of the destinations. It stops when no label changes. At the end
every node carries the smallest node id of its component, which is the
component's representative (see the keep rule in :mod:`filters.dedup.common`).

Resume: round ``k`` is the pass ``<name>_r<k>``, whose config holds the round number
and the digest of round ``k - 1`` (of the edge pass for round 0), so a driver killed
in round ``k`` reruns only that round's unfinished partitions; the finished rounds
are replayed from their markers, (changed, sent) counts included. Round ``k - 1``'s
labels and messages are deleted only once round ``k`` is complete, so an incomplete
round always finds its inputs. (Should they be gone anyway, e.g. markers deleted by
hand, the components start again from round 0, with a warning.) Every input is an
explicit file list built from the previous round's results.

No process ever holds every edge: a task holds one partition's edges
(:data:`BYTES_PER_EDGE` per directed edge, with labels and messages), so memory is
set by the number of partitions. The number of rounds is the largest distance from a
component's minimum to its other nodes, plus one; LSH buckets contribute stars and
short chains, so real corpora converge in a handful of rounds (``max_rounds`` guards
pathological chains and raises rather than returning a wrong answer).
"""

from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from curation import storage
from curation.passes import Item, PassFailed
from curation.stage import GlobalContext

from .common import load_arrays, partition_of, remove_tree, save_arrays

logger = logging.getLogger(__name__)

#: a round's working set per directed edge: (src, dst), the node/label arrays, the routing copies
BYTES_PER_EDGE = 64
_GONE = "RoundInputsGone"


class RoundInputsGone(RuntimeError):
    """An incomplete round's inputs were deleted (the previous round was already cleaned up)."""


def _edge_path(cc_dir: str, q: int) -> str:
    return storage.join(cc_dir, "edges", f"q{q:05d}.npz")


def _label_dir(cc_dir: str, k: int) -> str:
    return storage.join(cc_dir, "labels", f"r{k:03d}")


def _label_path(cc_dir: str, k: int, q: int) -> str:
    return storage.join(_label_dir(cc_dir, k), f"q{q:05d}.npz")


def _msg_dir(cc_dir: str, k: int) -> str:
    return storage.join(cc_dir, "msg", f"r{k:03d}")


def _msg_path(cc_dir: str, k: int, to: int, frm: int) -> str:
    return storage.join(_msg_dir(cc_dir, k), f"to{to:05d}", f"from{frm:05d}.npz")


def _counts_path(cc_dir: str, to: int, frm: int) -> str:
    return storage.join(cc_dir, "counts", f"to{to:05d}", f"from{frm:05d}.npz")


def removed_path(out_dir: str, shard_idx: int, q: int) -> str:
    return storage.join(out_dir, "removed", f"s{shard_idx:06d}", f"q{q:05d}.npz")


def _route(dst: np.ndarray, num_partitions: int) -> tuple[np.ndarray, np.ndarray]:
    part = partition_of(dst, num_partitions)
    order = np.argsort(part, kind="stable")
    return order, np.searchsorted(part[order], np.arange(num_partitions + 1))


def _send(cc_dir: str, k: int, q: int, dst: np.ndarray, lab: np.ndarray, num_partitions: int) -> tuple[int, list[int]]:
    """Route (dst, label) messages of round ``k`` from partition ``q``; returns (count, partitions messaged)."""
    keep = lab < dst  # a label can only lower dst's label if it is below dst itself
    dst, lab = dst[keep], lab[keep]
    if len(dst) == 0:
        return 0, []
    order, bounds = _route(dst, num_partitions)
    targets = np.flatnonzero(np.diff(bounds)).tolist()
    for r in targets:
        sel = order[bounds[r] : bounds[r + 1]]
        save_arrays(_msg_path(cc_dir, k, r, q), dst=dst[sel], lab=lab[sel])
    return int(len(dst)), targets


def _round(edge_files: list[str], msg_files: list[str], cc_dir: str, k: int, q: int, num_partitions: int) -> dict:
    if k == 0:
        # consolidate this partition's edges: sorted by (src, dst), duplicates removed
        if edge_files:
            arrs = [load_arrays(f) for f in edge_files]
            src = np.concatenate([a["src"] for a in arrs])
            dst = np.concatenate([a["dst"] for a in arrs])
            del arrs
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
        needed = [_label_path(cc_dir, k - 1, q), *msg_files]
        gone = [p for p in needed if not storage.exists(p)]
        if gone:
            raise RoundInputsGone(f"round {k} partition {q}: {len(gone)} inputs missing, e.g. {gone[0]}")
        e = load_arrays(_edge_path(cc_dir, q))
        src, dst = e["src"], e["dst"]
        st = load_arrays(needed[0])
        nodes, labels = st["node"], st["label"]
        changed = np.zeros(len(nodes), dtype=bool)
        if msg_files:
            msgs = [load_arrays(f) for f in msg_files]
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
    sent, targets = 0, []
    if n_changed and len(src):
        src_idx = np.searchsorted(nodes, src)
        active = changed[src_idx]
        sent, targets = _send(cc_dir, k, q, dst[active], labels[src_idx[active]], num_partitions)
    return {"changed": n_changed, "sent": sent, "to": targets, "nodes": int(len(nodes)), "edges": int(len(src))}


def _finalize(cc_dir: str, out_dir: str, k: int, q: int, num_partitions: int) -> dict[str, Any]:
    st = load_arrays(_label_path(cc_dir, k, q))
    nodes, labels = st["node"], st["label"]
    removed = labels != nodes
    rm_node, rm_label = nodes[removed], labels[removed]
    shard_of = (rm_node >> np.uint64(32)).astype(np.int64)
    shards = np.unique(shard_of).tolist()
    for s in shards:
        sel = shard_of == s
        save_arrays(removed_path(out_dir, s, q), node=rm_node[sel], label=rm_label[sel])
    # cluster sizes: count members per label here, then sum per label in the label's partition
    uniq, counts = np.unique(labels, return_counts=True)
    counts_to: list[int] = []
    if len(uniq):
        order, bounds = _route(uniq, num_partitions)
        counts_to = np.flatnonzero(np.diff(bounds)).tolist()
        for r in counts_to:
            sel = order[bounds[r] : bounds[r + 1]]
            save_arrays(_counts_path(cc_dir, r, q), label=uniq[sel], count=counts[sel])
    return {"removed": int(removed.sum()), "shards": shards, "counts_to": counts_to}


def _cluster_stats(files: list[str], top_k: int) -> dict[str, Any]:
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


@dataclass
class Components:
    """What a components run leaves: the removed-node files per shard and cluster statistics."""

    rounds: list[dict[str, int]]  # per round: labels changed, messages sent
    nodes: int
    removed: int
    removed_files: list[list[str]]  # per shard index: npz files of (node, label) of non-minimum nodes
    cluster_stats: list[dict[str, Any]]  # per partition: clusters, size histogram, largest clusters
    digest: str = ""  # of the last pass (chain it into what reads removed_files)
    passes: list[str] = field(default_factory=list)


def connected_components(
    ctx: GlobalContext,
    edge_files: list[list[str]],
    cc_dir: str,
    out_dir: str,
    num_shards: int,
    upstream: str,
    max_rounds: int = 64,
    top_k: int = 10,
    name: str = "cc",
) -> Components:
    """Label every node of the edge partitions with its component's minimum.

    ``edge_files[q]`` lists partition ``q``'s edge files (npz with ``src``, ``dst``: both
    directions of every edge, routed by :func:`~filters.dedup.common.partition_of` of ``src``);
    ``upstream`` is the digest of the pass that wrote them. Writes
    ``out_dir/removed/s<shard>/q<part>.npz`` (node, label) for every non-minimum node.
    """
    try:
        return _components(ctx, edge_files, cc_dir, out_dir, num_shards, upstream, max_rounds, top_k, name, None)
    except _Restart as why:
        logger.warning("components: %s; starting the components again from round 0", why)
        return _components(ctx, edge_files, cc_dir, out_dir, num_shards, upstream, max_rounds, top_k, name, False)


class _Restart(Exception):
    pass


def _components(
    ctx: GlobalContext, edge_files: list[list[str]], cc_dir: str, out_dir: str, num_shards: int, upstream: str,
    max_rounds: int, top_k: int, name: str, resume: bool | None,
) -> Components:
    num_partitions = len(edge_files)
    rounds: list[dict[str, int]] = []
    prev: list[dict[str, Any]] = []
    digest = upstream
    passes = []
    k = 0
    while True:
        if k >= max_rounds:
            raise RuntimeError(f"components: no convergence after {max_rounds} rounds")
        items = []
        for q in range(num_partitions):
            msgs = [_msg_path(cc_dir, k - 1, q, frm) for frm, r in enumerate(prev) if q in r["to"]]
            items.append(Item(f"q{q:05d}", (edge_files[q] if k == 0 else [], msgs, cc_dir, k, q, num_partitions)))
        pname = f"{name}_r{k:03d}"
        res = ctx.run_pass(pname, _round, items, config={"round": k, "upstream": digest, "partitions": num_partitions},
                           on_error="collect", resume=resume, progress=f"components round {k}")
        passes.append(pname)
        if res.failed:
            if resume is not False and all(e.startswith(_GONE) for e in res.failed.values()):
                raise _Restart(next(iter(res.failed.values())))
            raise PassFailed(res)
        prev, digest = res.results, res.digest
        sent = sum(r["sent"] for r in prev)
        rounds.append({"changed": sum(r["changed"] for r in prev), "sent": sent})
        logger.info("components round %d: %d labels changed, %d messages%s", k, rounds[-1]["changed"], sent,
                    " (complete from before)" if not res.ran else "")
        if k >= 1:  # round k is complete: round k - 1's files are never read again
            remove_tree(_label_dir(cc_dir, k - 1))
            remove_tree(_msg_dir(cc_dir, k - 1))
        if sent == 0:
            break
        k += 1
    fin = ctx.run_pass(
        f"{name}_final", _finalize, [Item(f"q{q:05d}", (cc_dir, out_dir, k, q, num_partitions))
                                     for q in range(num_partitions)],
        config={"last_round": digest, "partitions": num_partitions}, progress="components: removed nodes",
    )
    stats = ctx.run_pass(
        f"{name}_stats", _cluster_stats,
        [Item(f"q{r:05d}", ([_counts_path(cc_dir, r, q) for q, f in enumerate(fin.results) if r in f["counts_to"]],
                            top_k)) for r in range(num_partitions)],
        config={"final": fin.digest, "top_k": top_k}, progress="components: cluster sizes",
    )
    passes += [f"{name}_final", f"{name}_stats"]
    removed_files: list[list[str]] = [[] for _ in range(num_shards)]
    for q, f in enumerate(fin.results):
        for s in f["shards"]:
            removed_files[int(s)].append(removed_path(out_dir, int(s), q))
    return Components(rounds=rounds, nodes=sum(r["nodes"] for r in prev),
                      removed=sum(f["removed"] for f in fin.results), removed_files=removed_files,
                      cluster_stats=stats.results, digest=fin.digest, passes=passes)
