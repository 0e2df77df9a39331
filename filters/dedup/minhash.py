"""MinHash-LSH fuzzy deduplication on Ray (Broder 1997; LSH banding as in Leskovec,
Rajaraman & Ullman, *Mining of Massive Datasets*, ch. 3; the pipeline of
datatrove's ``pipeline/dedup/minhash.py`` and NeMo Curator's fuzzy dedup).

Pipeline (``fit``):

1. **signatures + band keys (the map pass: one item per shard).** Text is normalised
   (:func:`~filters.dedup.hashing.normalize_fuzzy`: NFKC, lower case, digits ->
   0, punctuation/symbols -> space), split on spaces, and every word
   ``ngram_size``-gram (default 5, as datatrove and DCLM's MinHash runs) is hashed
   to 64 bits (SipHash of each distinct word, a polynomial over the n-gram's word
   hashes, fmix64). Documents shorter than ``ngram_size`` words have one shingle of
   all their words; documents with no word get no signature and are never fuzzy
   duplicates. The ``num_bands * rows_per_band`` hash functions are affine maps
   ``h_k(x) = (a_k * x + b_k) mod 2**32`` of the shingle hash's high 32 bits ``x``,
   with odd ``a_k`` and any ``b_k`` drawn independently from ``seed`` (each a
   permutation of the 32-bit values); the signature keeps each function's minimum
   over the document's shingles (K independent functions, one minimum each: the
   classic estimator), for a whole batch at once in 32-bit arithmetic by a compiled
   (numba) kernel, with a numpy reference it is tested against.
   Band keys (64-bit hash of the band's rows and the band index) go to one file
   per hash-range partition.
2. **candidate pairs (the reduce pass: one item per partition).** Records are sorted by
   key; documents sharing a key are candidates (all pairs for buckets up to 32
   documents, else a star to the smallest plus a chain, which keeps the same
   components). With ``verify=True`` (default) a pair survives only if its
   estimated Jaccard similarity (fraction of equal signature values) reaches
   ``threshold + verify_margin``; this removes most of the S-curve's false
   positives. The estimate of a pair with Jaccard J has standard deviation
   sqrt(J (1 - J) / K) for K hash functions (0.038 at J=0.8, K=112), so the
   default margin is one standard deviation at the threshold: pairs at the
   threshold are flagged ~16% of the time, pairs 0.1 above it ~99% of the time
   (precision at ``threshold`` >= 0.95 with recall >= 0.95 at ``threshold + 0.1``
   on the test corpus, see tests/filters/dedup/test_dedup_minhash.py).
3. **connected components** (:mod:`filters.dedup.components`), one pass per round.
4. **removal lists**, a gather pass with one item per shard: every member of a
   component except its smallest node (the first copy in corpus order) is removed (``dedup:minhash``).

Defaults and the S-curve: 14 bands x 8 rows (datatrove's ``MinhashConfig``), so
P(candidate | Jaccard J) = 1 - (1 - J**8)**14: 0.054 at J=0.5, 0.56 at 0.7,
0.92 at 0.8, 0.9996 at 0.9; the 50% point is near (1/14)**(1/8) ~ 0.72. With
verification (threshold 0.8, margin 0.038) the decision is close to a step at 0.84.
NeMo Curator's 20 x 13 is steeper with its 50% point near 0.79.

How the fit runs: every step above is a resumable pass (``ctx.run_pass``): ``map``
(an item per shard; band records go to their partition in chunk files flushed when
the task's buffer reaches a budget-derived size, signatures are appended to one raw
``.bin`` per shard with a fixed row width), ``reduce`` (an item per partition, over
the chunk files the maps reported; verification reads signature rows from the
memory-mapped ``.bin`` files a chunk of pairs at a time, one shard's map open at a
time), one pass per components round, ``gather`` (an item per shard) and ``s_curve``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

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
    node_row,
    node_shard,
    ordered_shards,
    partition_files,
    partition_of,
    removal_states,
    save_arrays,
    shard_items,
    watch_list,
    working_memory,
)
from .components import connected_components
from .exact import summarize_clusters
from .hashing import fmix64, hash_tokens, ngram_hashes, normalize_fuzzy, split_spaces

logger = logging.getLogger(__name__)

SIG_EMPTY = np.uint32(0xFFFFFFFF)
ALL_PAIRS_MAX = 32  # buckets up to this size emit all pairs; larger ones a star + chain


def s_curve(j: np.ndarray | float, num_bands: int, rows_per_band: int) -> np.ndarray:
    """P(two documents with Jaccard ``j`` share at least one band) = 1 - (1 - j**r)**b."""
    j = np.asarray(j, dtype=np.float64)
    return 1.0 - (1.0 - j**rows_per_band) ** num_bands


def hash_params(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Multipliers (odd) and offsets, uint32, of the ``num_perm`` functions ``(a*x + b) mod 2**32``, from ``seed``."""
    if num_perm < 1:
        raise ValueError(f"num_perm must be >= 1, got {num_perm}")
    rng = np.random.Generator(np.random.PCG64(seed))
    a = (rng.integers(0, 2**31, size=num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)).astype(np.uint32)
    b = rng.integers(0, 2**32, size=num_perm, dtype=np.uint64).astype(np.uint32)
    return a, b


def shingle_hashes(text: pa.Array | pa.ChunkedArray, ngram_size: int) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of each document's word n-grams: (shingle offsets per document, hashes)."""
    offsets, words = split_spaces(normalize_fuzzy(text))
    return ngram_hashes(hash_tokens(words), offsets, ngram_size)


def signature_keys(h: np.ndarray) -> np.ndarray:
    """The 32-bit values the hash functions take: the high halves of the 64-bit shingle hashes."""
    h = np.asarray(h)
    if h.dtype == np.uint32:
        return h
    return (h.astype(np.uint64, copy=False) >> np.uint64(32)).astype(np.uint32)


def _doc_blocks(sh_off: np.ndarray, block: int) -> list[tuple[int, int]]:
    """Runs of whole documents ``[d0, d1)`` with at most ``block`` shingles (or one larger document)."""
    n_docs = len(sh_off) - 1
    out, d0 = [], 0
    while d0 < n_docs:
        d1 = int(np.searchsorted(sh_off, sh_off[d0] + block, side="right")) - 1
        d1 = min(max(d1, d0 + 1), n_docs)
        out.append((d0, d1))
        d0 = d1
    return out


def signatures_from_hashes(
    sh_off: np.ndarray, h: np.ndarray, a: np.ndarray, b: np.ndarray, block: int = 1 << 17
) -> np.ndarray:
    """MinHash signatures (n_docs, num_perm) uint32; rows of documents without shingles are all 0xFFFFFFFF.

    ``h`` holds every document's shingle hashes back to back (64-bit, or the 32-bit
    keys of :func:`signature_keys`), ``sh_off`` where each document starts. Function
    ``k`` of a document is ``min over its shingles of (a[k] * key + b[k]) mod 2**32``.

    The work is ``shingles x num_perm`` multiply-add-minimum steps, done by a compiled
    kernel (numba, :func:`_signature_kernel`) that keeps the running minima of one
    document in L1 and takes eight shingles per pass over the functions, so the
    multiplies run as wide SIMD lanes with no intermediate array; numpy cannot fuse the
    three steps and makes three passes over memory per function (5x slower, measured in
    ``bench/dedup.py``). Without numba the numpy path (:func:`signatures_numpy`, the
    reference the kernel is tested against) runs. A document's values depend on its own
    shingles only, never on the batch.
    """
    kernel = _signature_kernel()
    if kernel is None:
        return signatures_numpy(sh_off, h, a, b, block)
    a = np.ascontiguousarray(a, dtype=np.uint32)
    b = np.ascontiguousarray(b, dtype=np.uint32)
    sh_off = np.ascontiguousarray(sh_off, dtype=np.int64)
    h = np.ascontiguousarray(h)
    if h.dtype not in (np.uint64, np.uint32):
        h = h.astype(np.uint64)
    if len(sh_off) and (sh_off[0] < 0 or sh_off[-1] > len(h) or np.any(np.diff(sh_off) < 0)):
        raise ValueError(f"shingle offsets must rise from >= 0 to <= {len(h)} (the number of hashes)")
    out = np.empty((max(len(sh_off) - 1, 0), len(a)), dtype=np.uint32)
    kernel(sh_off, h, np.uint64(32 if h.dtype == np.uint64 else 0), a, b, out)
    return out


_KERNEL: list = []  # [the compiled kernel or None], built on first use (per process)


def _signature_kernel() -> Any:
    """The numba kernel behind :func:`signatures_from_hashes` (None when numba is not installed).

    Compiled on first use and cached on disk (``cache=True``: next to this file, or numba's
    user-wide cache when that is read-only), so a worker process pays the ~2 s compile once
    per machine, not once per process. 64-bit hashes are shifted to their high half inside
    the loop (no separate conversion pass)."""
    if _KERNEL:
        return _KERNEL[0]
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is a dependency; the numpy path stays exact
        logger.warning("numba is not installed: MinHash signatures use the (5x slower) numpy path")
        _KERNEL.append(None)
        return None
    u32 = numba.uint32
    full = u32(0xFFFFFFFF)

    @numba.njit(nogil=True, cache=True, boundscheck=False)
    def kernel(sh_off, h, shift, a, b, out):  # pragma: no cover - compiled
        k = len(a)
        acc = np.empty(k, np.uint32)
        for d in range(len(sh_off) - 1):
            s, e = sh_off[d], sh_off[d + 1]
            acc[:] = full
            i = s
            while i + 8 <= e:  # eight shingles per pass over the functions: eight independent products
                x0, x1, x2, x3 = u32(h[i] >> shift), u32(h[i + 1] >> shift), u32(h[i + 2] >> shift), u32(
                    h[i + 3] >> shift)
                x4, x5, x6, x7 = u32(h[i + 4] >> shift), u32(h[i + 5] >> shift), u32(h[i + 6] >> shift), u32(
                    h[i + 7] >> shift)
                for j in range(k):
                    aj, bj = a[j], b[j]  # u32(...) keeps the arithmetic modulo 2**32
                    m = min(min(min(u32(aj * x0 + bj), u32(aj * x1 + bj)), min(u32(aj * x2 + bj), u32(aj * x3 + bj))),
                            min(min(u32(aj * x4 + bj), u32(aj * x5 + bj)), min(u32(aj * x6 + bj), u32(aj * x7 + bj))))
                    acc[j] = min(acc[j], m)
                i += 8
            while i < e:
                x = u32(h[i] >> shift)
                for j in range(k):
                    acc[j] = min(acc[j], u32(a[j] * x + b[j]))
                i += 1
            for j in range(k):
                out[d, j] = acc[j]

    _KERNEL.append(kernel)
    return kernel


def signatures_numpy(
    sh_off: np.ndarray, h: np.ndarray, a: np.ndarray, b: np.ndarray, block: int = 1 << 17
) -> np.ndarray:
    """:func:`signatures_from_hashes` in numpy alone (the reference of the compiled kernel, and its fallback).

    Blocks of whole documents with about ``block`` shingles (0.5 MiB of keys: fits in L2)
    are processed one hash function at a time: a multiply and an add in place on the
    block (uint32 wraps modulo 2**32), then ``np.minimum.reduceat`` over the documents'
    runs, written straight into the signature row.
    """
    a = np.asarray(a, dtype=np.uint32)
    b = np.asarray(b, dtype=np.uint32)
    sh_off = np.asarray(sh_off, dtype=np.int64)
    n_docs = len(sh_off) - 1
    k = len(a)
    sig_t = np.full((k, n_docs), SIG_EMPTY, dtype=np.uint32)
    x = signature_keys(h)
    if len(x) == 0 or n_docs == 0:
        return np.ascontiguousarray(sig_t.T)
    buf = np.empty(block, dtype=np.uint32)
    for d0, d1 in _doc_blocks(sh_off, block):
        s, e = int(sh_off[d0]), int(sh_off[d1])
        if e == s:
            continue
        lo = sh_off[d0:d1]
        has = sh_off[d0 + 1 : d1 + 1] > lo
        seg = lo[has] - s
        docs = np.arange(d0, d1)[has]
        xb = x[s:e]
        t = buf[: e - s] if e - s <= block else np.empty(e - s, dtype=np.uint32)
        for j in range(k):
            np.multiply(xb, a[j], out=t)
            t += b[j]
            sig_t[j, docs] = np.minimum.reduceat(t, seg)
    return np.ascontiguousarray(sig_t.T)


def minhash_signatures(
    text: pa.Array | pa.ChunkedArray, ngram_size: int = 5, num_perm: int = 112, seed: int = 1
) -> np.ndarray:
    """Signatures of a batch of texts (convenience wrapper used by tests and benchmarks)."""
    a, b = hash_params(num_perm, seed)
    sh_off, h = shingle_hashes(text, ngram_size)
    return signatures_from_hashes(sh_off, h, a, b)


def band_keys(sig: np.ndarray, num_bands: int, rows_per_band: int) -> np.ndarray:
    """64-bit key of each (document, band): a hash of the band's rows and the band index."""
    n = sig.shape[0]
    s = sig[:, : num_bands * rows_per_band].reshape(n, num_bands, rows_per_band).astype(np.uint64)
    mult = fmix64(np.arange(1, rows_per_band + 1, dtype=np.uint64)) | np.uint64(1)
    with np.errstate(over="ignore"):
        acc = (s * mult[None, None, :]).sum(axis=2, dtype=np.uint64)
        acc += np.arange(num_bands, dtype=np.uint64)[None, :] * np.uint64(0x9E3779B97F4A7C15)
    return fmix64(acc)


#: a band record (key, node) in a map task's buffer, with the copies of partitioning
MAP_BYTES_PER_RECORD = 64
#: a reduce task, per band record: the records (16 B), the sort, the bucket arrays of candidate pairs
REDUCE_BYTES_PER_RECORD = 128
#: candidate pairs verified at once (their signature rows are read for each chunk)
VERIFY_CHUNK = 65536


@dataclass(frozen=True)
class MinHashConfig:
    """Settings of :class:`MinHashDedup` (see the module docstring for the defaults).

    ``docs_per_partition`` / ``map_buffer_docs``: ``None`` derives them from the memory budget;
    an explicit value is checked against the budget before anything runs. ``batch_size``:
    documents shingled at once; splitting and hashing a batch's words takes about 17 times its
    text (tracemalloc on demo documents; 4,096 per batch cost a Ray map task ~130 MB more than 1,024 did,
    at the same speed).
    """

    ngram_size: int = 5
    num_bands: int = 14
    rows_per_band: int = 8
    threshold: float = 0.8
    verify: bool = True
    verify_margin: float | None = None
    seed: int = 1
    docs_per_partition: int | None = None
    min_partitions: int = 4
    map_buffer_docs: int | None = None
    batch_size: int = 1024
    max_rounds: int = 64
    measure_curve: bool = True

    def __post_init__(self) -> None:
        if self.ngram_size < 1 or self.num_bands < 1 or self.rows_per_band < 1:
            raise ValueError("ngram_size, num_bands and rows_per_band must be positive")
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.verify_margin is not None and not 0.0 <= self.verify_margin < 1.0:
            raise ValueError(f"verify_margin must be in [0, 1), got {self.verify_margin}")
        for name in ("docs_per_partition", "map_buffer_docs"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"{name} must be positive (or None to derive it from the memory budget), got {v}")
        if self.min_partitions < 1 or self.batch_size < 1 or self.max_rounds < 1:
            raise ValueError("min_partitions, batch_size and max_rounds must be positive")

    @property
    def num_perm(self) -> int:
        return self.num_bands * self.rows_per_band

    @property
    def verify_at(self) -> float:
        """The estimated-Jaccard cut of verification: ``threshold`` plus the margin."""
        margin = self.verify_margin
        if margin is None:
            margin = math.sqrt(self.threshold * (1.0 - self.threshold) / self.num_perm)
        return min(1.0, self.threshold + margin)


def sig_path(wd: str, shard_idx: int) -> str:
    return storage.join(wd, "sig", f"s{shard_idx:06d}.bin")


def _map_minhash(
    shard: PhaseShard, shard_idx: int, cfg: MinHashConfig, num_partitions: int, flush: int, wd: str
) -> dict[str, Any]:
    a, b = hash_params(cfg.num_perm, cfg.seed)
    bands = PartitionChunks(storage.join(wd, "bands"), shard_idx, num_partitions, flush)
    row = 0
    no_sig = 0
    with contextlib.ExitStack() as stack:
        sigs = stack.enter_context(storage.atomic_open(sig_path(wd, shard_idx), "wb")) if cfg.verify else None
        for batch in storage.iter_parquet_batches(shard.path, batch_size=cfg.batch_size, columns=["text"]):
            sh_off, h = shingle_hashes(batch.column(0), cfg.ngram_size)
            sig = signatures_from_hashes(sh_off, h, a, b)
            has = np.diff(sh_off) > 0
            no_sig += int((~has).sum())
            keys = band_keys(sig[has], cfg.num_bands, cfg.rows_per_band).ravel()
            nodes = np.repeat(node_ids(shard_idx, row, len(sig))[has], cfg.num_bands)
            bands.add(partition_of(keys, num_partitions), key=keys, node=nodes)
            if sigs is not None:  # rows of num_perm little-endian uint32, in row order
                sigs.write(np.ascontiguousarray(sig, dtype="<u4").tobytes())
            row += len(sig)
    return {"rows": row, "no_signature": no_sig, "chunks": bands.close()}


def _read_rows(path: str, rows: np.ndarray, k: int) -> np.ndarray:
    """Rows ``rows`` (sorted) of a signature file; the map is closed before returning."""
    if storage.is_local(path):
        mm = np.memmap(path.removeprefix("file://"), dtype="<u4", mode="r")
        try:
            return np.asarray(mm.reshape(-1, k)[rows])
        finally:
            del mm
    fs, p = storage.fs_path(path)
    width = 4 * k
    starts = (rows.astype(np.int64) * width).tolist()
    blobs = fs.cat_ranges([p] * len(starts), starts, [s + width for s in starts])
    return np.frombuffer(b"".join(blobs), dtype="<u4").reshape(len(starts), k)


def signature_rows(wd: str, nodes: np.ndarray, k: int) -> np.ndarray:
    """Signatures of sorted, unique ``nodes``: (len(nodes), k) uint32, one shard's file open at a time."""
    out = np.empty((len(nodes), k), dtype=np.uint32)
    if len(nodes) == 0:
        return out
    sh, rw = node_shard(nodes), node_row(nodes)
    bounds = np.flatnonzero(np.r_[True, sh[1:] != sh[:-1], True])
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        out[lo:hi] = _read_rows(sig_path(wd, int(sh[lo])), rw[lo:hi], k)
    return out


def _candidate_pairs(key: np.ndarray, node: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (u < v) of nodes sharing a key; all pairs in small buckets, star + chain in large ones."""
    order = np.lexsort((node, key))
    key, node = key[order], node[order]
    n = len(key)
    if n < 2:
        return np.zeros(0, np.uint64), np.zeros(0, np.uint64)
    start = np.r_[True, key[1:] != key[:-1]]
    gid = np.cumsum(start) - 1
    gstart = np.flatnonzero(start)
    gsize = np.diff(np.r_[gstart, n])
    size = gsize[gid]
    pos = np.arange(n) - gstart[gid]
    later = size - pos - 1  # partners after this element in its bucket
    small = size <= ALL_PAIRS_MAX
    cnt = np.where(small, later, np.minimum(later, 1))  # large buckets: chain to the next only
    first = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(cnt, out=first[1:])
    src = np.repeat(np.arange(n), cnt)
    dst = src + 1 + (np.arange(int(first[-1])) - first[src])
    u, v = node[src], node[dst]
    big = np.flatnonzero(~small & (pos > 1))  # star: bucket minimum -> every member (chain covers pos 1)
    if len(big):
        u = np.concatenate([u, node[gstart[gid[big]]]])
        v = np.concatenate([v, node[big]])
    keep = u != v
    u, v = u[keep], v[keep]
    if len(u) == 0:
        return u, v
    o = np.lexsort((v, u))
    u, v = u[o], v[o]
    uniq = np.r_[True, (u[1:] != u[:-1]) | (v[1:] != v[:-1])]
    return u[uniq], v[uniq]


def estimated_jaccard(wd: str, u: np.ndarray, v: np.ndarray, k: int, chunk: int = VERIFY_CHUNK) -> np.ndarray:
    """Fraction of equal signature values of each pair, ``chunk`` pairs at a time."""
    out = np.empty(len(u), dtype=np.float32)
    for s in range(0, len(u), chunk):
        e = min(len(u), s + chunk)
        nodes = np.unique(np.concatenate([u[s:e], v[s:e]]))
        rows = signature_rows(wd, nodes, k)
        out[s:e] = (rows[np.searchsorted(nodes, u[s:e])] == rows[np.searchsorted(nodes, v[s:e])]).mean(axis=1)
    return out


def edge_path(wd: str, q: int, p: int) -> str:
    return storage.join(wd, "edges", f"q{q:05d}", f"from{p:05d}.npz")


def _reduce_minhash(files: list[str], wd: str, p: int, cfg: MinHashConfig, num_partitions: int) -> dict[str, Any]:
    if not files:
        return {"candidates": 0, "edges": 0, "est_hist": [0] * 20, "edges_to": []}
    arrs = [load_arrays(f) for f in files]
    key = np.concatenate([x["key"] for x in arrs])
    node = np.concatenate([x["node"] for x in arrs])
    del arrs
    u, v = _candidate_pairs(key, node)
    del key, node
    n_cand = len(u)
    hist = [0] * 20
    if cfg.verify and n_cand:
        est = estimated_jaccard(wd, u, v, cfg.num_perm)
        hist = np.bincount(np.minimum((est * 20).astype(np.int64), 19), minlength=20).tolist()
        ok = est >= cfg.verify_at
        u, v = u[ok], v[ok]
    # both directions, routed to the partition of the source node
    src = np.concatenate([u, v])
    dst = np.concatenate([v, u])
    part = partition_of(src, num_partitions)
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(num_partitions + 1))
    edges_to = np.flatnonzero(np.diff(bounds)).tolist()
    for q in edges_to:
        sel = order[bounds[q] : bounds[q + 1]]
        save_arrays(edge_path(wd, q, p), src=src[sel], dst=dst[sel])
    return {"candidates": int(n_cand), "edges": int(len(u)), "est_hist": hist, "edges_to": edges_to}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if (a or b) else 1.0


def measure_s_curve(
    texts: list[str],
    ngram_size: int,
    num_bands: int,
    rows_per_band: int,
    threshold: float | None,
    seed: int,
    variants: int = 12,
    rng_seed: int = 0,
    max_words: int = 300,
) -> dict[str, Any]:
    """Measured P(candidate) and P(flagged) against true Jaccard on mutated copies of ``texts``.

    Each text gets ``variants`` copies with a growing fraction of words replaced by
    fresh tokens; true Jaccard of the shingle sets is computed exactly, the
    decision with this stage's hash functions and bands.
    """
    rng = random.Random(rng_seed)
    base, other = [], []
    for t in texts:
        words = t.split()[:max_words]
        if len(words) < 4 * ngram_size:
            continue
        t = " ".join(words)
        for i in range(variants):
            frac = 0.3 * i / max(1, variants - 1)
            w = list(words)
            for j in range(len(w)):
                if rng.random() < frac:
                    w[j] = f"zz{rng.randrange(10**9)}"
            base.append(t)
            other.append(" ".join(w))
    if not base:
        return {}
    a, b = hash_params(num_bands * rows_per_band, seed)
    both = pa.array(base + other, pa.large_string())
    sh_off, h = shingle_hashes(both, ngram_size)
    sig = signatures_from_hashes(sh_off, h, a, b)
    n = len(base)
    keys = band_keys(sig, num_bands, rows_per_band)
    cand = (keys[:n] == keys[n:]).any(axis=1)
    est = (sig[:n] == sig[n:]).mean(axis=1)
    flagged = cand & (est >= threshold) if threshold is not None else cand
    true_j = np.array(
        [
            jaccard(set(h[sh_off[i] : sh_off[i + 1]].tolist()), set(h[sh_off[n + i] : sh_off[n + i + 1]].tolist()))
            for i in range(n)
        ]
    )
    edges = np.linspace(0.0, 1.0, 21)
    bins = np.minimum((true_j * 20).astype(np.int64), 19)
    out = {
        "jaccard_bin_low": edges[:-1].round(2).tolist(),
        "pairs": [],
        "candidate_rate": [],
        "flagged_rate": [],
        "theory": s_curve(edges[:-1] + 0.025, num_bands, rows_per_band).round(4).tolist(),
    }
    for i in range(20):
        sel = bins == i
        out["pairs"].append(int(sel.sum()))
        out["candidate_rate"].append(round(float(cand[sel].mean()), 4) if sel.any() else None)
        out["flagged_rate"].append(round(float(flagged[sel].mean()), 4) if sel.any() else None)
    return out


def _plot_s_curve(curve: dict[str, Any], num_bands: int, rows_per_band: int, threshold: float | None, path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    j = np.linspace(0, 1, 201)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(j, s_curve(j, num_bands, rows_per_band), label=f"theory {num_bands}x{rows_per_band}")
    if curve:
        x = [lo + 0.025 for lo, r in zip(curve["jaccard_bin_low"], curve["candidate_rate"]) if r is not None]
        ax.plot(x, [r for r in curve["candidate_rate"] if r is not None], "o", label="measured: candidate")
        ax.plot(x, [r for r in curve["flagged_rate"] if r is not None], "x", label="measured: after verification")
    if threshold is not None:
        ax.axvline(threshold, color="grey", ls="--", lw=0.8)
    ax.set_xlabel("Jaccard similarity of word 5-gram sets")
    ax.set_ylabel("P(duplicate)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    buf = __import__("io").BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    storage.write_bytes_atomic(path, buf.getvalue())
    return path


def _measure_curve(path: str, cfg: MinHashConfig, png: str) -> dict[str, Any]:
    """The S-curve measured on mutated copies of the first 200 documents of ``path``, and its plot."""
    first = next(storage.iter_parquet_batches(path, batch_size=200, columns=["text"]), None)
    sample = first.column(0).to_pylist() if first is not None else []
    curve = measure_s_curve(sample, cfg.ngram_size, cfg.num_bands, cfg.rows_per_band,
                            cfg.verify_at if cfg.verify else None, cfg.seed)
    try:
        plot = _plot_s_curve(curve, cfg.num_bands, cfg.rows_per_band, cfg.threshold, png)
    except Exception as e:  # plotting is a nicety; never fail the stage on it
        logger.warning("minhash: S-curve plot failed: %s", e)
        plot = None
    return {"curve": curve, "plot": plot}


class MinHashDedup(RemovalListStage):
    """Fuzzy deduplication with MinHash-LSH (see the module docstring for the pipeline and defaults).

    Reason: ``dedup:minhash``. Build it from keyword arguments (``MinHashDedup(threshold=0.85)``)
    or from a :class:`MinHashConfig`. Memory: a map task holds one batch and a buffer of band
    records (:data:`MAP_BYTES_PER_RECORD` each, ``num_bands`` per document); a reduce task holds
    one partition (:data:`REDUCE_BYTES_PER_RECORD` per band record) and a chunk of pairs'
    signatures; a components task one partition of the edges. Partitions grow with the corpus.
    """

    name = "minhash_dedup"
    version = "3"  # 3: dup_cluster_size on kept documents
    reason = "dedup:minhash"

    def __init__(self, config: MinHashConfig | None = None, /, **kwargs: Any) -> None:
        super().__init__()
        if config is not None and kwargs:
            raise ValueError("give either a MinHashConfig or keyword arguments, not both")
        self.cfg = config if config is not None else MinHashConfig(**kwargs)

    def config(self) -> dict[str, Any]:
        return dataclasses.asdict(self.cfg)

    def _verify_bytes(self) -> int:
        # a chunk's pairs touch up to 2 * VERIFY_CHUNK rows; two gathered copies compared
        return 4 * VERIFY_CHUNK * self.cfg.num_perm * 4 if self.cfg.verify else 0

    def check_budget(self, memory_per_worker: int) -> None:
        cfg = self.cfg
        working_memory(memory_per_worker)
        check_fits(self._verify_bytes(), memory_per_worker, f"{self.name}: verifying a chunk of candidate pairs",
                   "num_bands * rows_per_band")
        if cfg.docs_per_partition is not None:
            need = cfg.docs_per_partition * cfg.num_bands * REDUCE_BYTES_PER_RECORD + self._verify_bytes()
            what = f"{self.name}: a reduce of docs_per_partition={cfg.docs_per_partition:,}"
            check_fits(need, memory_per_worker, what, "docs_per_partition")
        if cfg.map_buffer_docs is not None:
            check_fits(cfg.map_buffer_docs * cfg.num_bands * MAP_BYTES_PER_RECORD, memory_per_worker,
                       f"{self.name}: a map buffer of map_buffer_docs={cfg.map_buffer_docs:,}", "map_buffer_docs")

    def layout(self, n_docs: int, memory_per_worker: int) -> tuple[int, int]:
        """(partitions, map buffer records) for ``n_docs`` documents under the budget."""
        cfg = self.cfg
        per_doc = cfg.num_bands * REDUCE_BYTES_PER_RECORD
        per_part = cfg.docs_per_partition or max(
            1, (working_memory(memory_per_worker) - self._verify_bytes()) // per_doc)
        parts = max(cfg.min_partitions, math.ceil(n_docs / per_part))
        explicit = cfg.map_buffer_docs * cfg.num_bands if cfg.map_buffer_docs is not None else None
        return parts, buffer_records(MAP_BYTES_PER_RECORD, memory_per_worker, explicit)

    def fit(self, ctx: GlobalContext) -> RemovalLists:
        cfg = self.cfg
        self.check_budget(ctx.memory_per_worker)
        shards = ordered_shards(ctx.shards)
        wd = storage.join(ctx.workdir, "minhash")
        sizes = corpus_size(ctx, shards)
        n_docs = sum(s["rows"] for s in sizes)
        parts, flush = self.layout(n_docs, ctx.memory_per_worker)
        conf = {"stage": dataclasses.asdict(cfg), "partitions": parts, "flush": flush}
        logger.info("minhash: %d documents in %d shards, %d partitions, %dx%d bands, threshold %s", n_docs,
                    len(shards), parts, cfg.num_bands, cfg.rows_per_band, cfg.threshold)
        maps = ctx.run_pass("map", _map_minhash, shard_items(shards, lambda i, s: (s, i, cfg, parts, flush, wd), sizes),
                            config=conf, progress="minhash: signatures", count=lambda r: r["rows"])
        files = partition_files(storage.join(wd, "bands"), parts, [m["chunks"] for m in maps.results])
        reduces = ctx.run_pass(
            "reduce", _reduce_minhash, [Item(f"p{p:05d}", (files[p], wd, p, cfg, parts)) for p in range(parts)],
            config={**conf, "map": maps.digest}, progress="minhash: candidate pairs",
        )
        edges = [[edge_path(wd, q, p) for p, r in enumerate(reduces.results) if q in r["edges_to"]]
                 for q in range(parts)]
        cc = connected_components(ctx, edges, storage.join(wd, "cc"), wd, len(shards), reduces.digest, cfg.max_rounds,
                                  TOP_CLUSTERS)
        labels, nodes = watch_list(cc.cluster_stats)
        gathers = ctx.run_pass(
            "gather", gather_removals,
            shard_items(shards, lambda i, s: (s, i, cc.removed_files[i],
                                              storage.join(wd, "removal", f"{i:06d}.parquet"), cfg.batch_size,
                                              labels, nodes, wd)),
            config={**conf, "components": cc.digest}, shared=[s.shard_id for s in shards],
            progress="minhash: removal lists",
        )
        kept = cluster_sizes(ctx, shards, gathers, wd, conf, cfg.batch_size, "minhash")
        summary = summarize_clusters("minhash", _with_examples(cc.cluster_stats, gathers.results), gathers.results)
        est_hist = np.sum([r["est_hist"] for r in reduces.results], axis=0).astype(int).tolist() if parts else []
        summary.update({
            "documents_in": n_docs,
            "documents_without_signature": sum(m["no_signature"] for m in maps.results),
            "partitions": parts,
            "candidate_pairs": sum(r["candidates"] for r in reduces.results),
            "verified_pairs": sum(r["edges"] for r in reduces.results),
            "candidate_estimated_jaccard_hist": est_hist if cfg.verify else None,
            "components_rounds": len(cc.rounds),
            "config": {**dataclasses.asdict(cfg), "verify_at": cfg.verify_at},
            "s_curve_theory": {f"{j:.1f}": round(float(s_curve(j, cfg.num_bands, cfg.rows_per_band)), 4)
                               for j in np.arange(0.1, 1.01, 0.1)},
        })
        plots: tuple[str, ...] = ()
        if cfg.measure_curve and shards:
            item = Item("curve", (shards[0].path, cfg, storage.join(wd, "s_curve.png")), inputs=(shards[0].path,))
            res = ctx.run_pass("s_curve", _measure_curve, [item], config=conf, progress="minhash: S-curve").results[0]
            summary["s_curve_measured"] = res["curve"]
            plots = (res["plot"],) if res["plot"] else ()
        logger.info("minhash: %d clusters, %d documents removed", summary["clusters"], summary["documents_removed"])
        return removal_states(self.reason, shards, gathers.results, summary, plots, kept=kept)


def _with_examples(stats: list[dict[str, Any]], gathers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cluster statistics with up to three removed members of each largest cluster (found by the gathers)."""
    members: dict[int, list[int]] = {}
    for g in gathers:
        for label, found in g["members"].items():
            members.setdefault(int(label), []).extend(found)
    return [{**st, "top": [{**t, "examples": sorted(members.get(t["rep"], []))[:3]} for t in st["top"]]}
            for st in stats]


__all__ = [
    "MinHashConfig",
    "MinHashDedup",
    "band_keys",
    "hash_params",
    "measure_s_curve",
    "minhash_signatures",
    "s_curve",
    "shingle_hashes",
    "signature_keys",
    "signatures_from_hashes",
]
