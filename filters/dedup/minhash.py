"""MinHash-LSH fuzzy deduplication on Ray (Broder 1997; LSH banding as in Leskovec,
Rajaraman & Ullman, *Mining of Massive Datasets*, ch. 3; the pipeline of
datatrove's ``pipeline/dedup/minhash.py`` and NeMo Curator's fuzzy dedup).

Pipeline (``fit``):

1. **signatures + band keys (map, one Ray task per shard).** Text is normalised
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
   classic estimator), for a whole batch at once with numpy in 32-bit arithmetic.
   Band keys (64-bit hash of the band's rows and the band index) go to one file
   per hash-range partition.
2. **candidate pairs (reduce, one task per partition).** Records are sorted by
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
3. **connected components** (:mod:`filters.dedup.components`), distributed.
4. **removal lists**, one per shard: every member of a component except its
   smallest node (the first copy in corpus order) is removed (``dedup:minhash``).

Defaults and the S-curve: 14 bands x 8 rows (datatrove's ``MinhashConfig``), so
P(candidate | Jaccard J) = 1 - (1 - J**8)**14: 0.054 at J=0.5, 0.56 at 0.7,
0.92 at 0.8, 0.9996 at 0.9; the 50% point is near (1/14)**(1/8) ~ 0.72. With
verification (threshold 0.8, margin 0.038) the decision is close to a step at 0.84.
NeMo Curator's 20 x 13 is steeper with its 50% point near 0.79.
"""

from __future__ import annotations

import logging
import math
import random
from typing import Any

import numpy as np
import pyarrow as pa

from curation import io
from curation.stage import GlobalContext, PhaseShard

from .common import (
    RemovalListStage,
    Timer,
    count_rows,
    list_files,
    load_arrays,
    node_ids,
    node_row,
    node_shard,
    ordered_shards,
    partition_of,
    run_tasks,
    save_arrays,
    workdir_of,
    write_removals,
)
from .components import connected_components
from .exact import summarize_clusters
from .hashing import fmix64, hash_tokens, ngram_hashes, normalize_fuzzy, split_spaces

logger = logging.getLogger(__name__)

SIG_EMPTY = np.uint32(0xFFFFFFFF)
ALL_PAIRS_MAX = 32  # buckets up to this size emit all pairs; larger ones a star + chain
TOP_CLUSTERS = 10


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
    keys of :func:`signature_keys`), ``sh_off`` where each document starts. Blocks of
    whole documents with about ``block`` shingles (0.5 MiB of keys: fits in L2) are
    processed one hash function at a time: a multiply and an add in place on the
    block (uint32 wraps modulo 2**32), then ``np.minimum.reduceat`` over the
    documents' runs, written straight into the signature row. Three passes over
    cache-resident data per function and a few numpy calls per block; a document's
    values depend on its own shingles only, never on the batch or the block size.
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


def _sig_path(wd: str, shard_idx: int) -> str:
    return io.join(wd, "sig", f"s{shard_idx:06d}.npy")


def _map_minhash(
    shard: PhaseShard, shard_idx: int, wd: str, cfg: dict[str, Any], num_partitions: int
) -> dict[str, Any]:
    a, b = hash_params(cfg["num_bands"] * cfg["rows_per_band"], cfg["seed"])
    sigs, keys, nodes = [], [], []
    row = 0
    no_sig = 0
    for batch in io.iter_parquet_batches(shard.path, batch_size=cfg["batch_size"], columns=["text"]):
        sh_off, h = shingle_hashes(batch.column(0), cfg["ngram_size"])
        sig = signatures_from_hashes(sh_off, h, a, b)
        has = np.diff(sh_off) > 0
        no_sig += int((~has).sum())
        k = band_keys(sig[has], cfg["num_bands"], cfg["rows_per_band"])
        nd = node_ids(shard_idx, row, len(sig))[has]
        keys.append(k.ravel())
        nodes.append(np.repeat(nd, cfg["num_bands"]))
        sigs.append(sig)
        row += len(sig)
    k_all = np.concatenate(keys) if keys else np.zeros(0, np.uint64)
    n_all = np.concatenate(nodes) if nodes else np.zeros(0, np.uint64)
    sig_all = np.concatenate(sigs) if sigs else np.zeros((0, len(a)), np.uint32)
    if cfg["verify"]:
        buf = _np_bytes(sig_all)
        io.write_bytes_atomic(_sig_path(wd, shard_idx), buf)
    part = partition_of(k_all, num_partitions)
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(num_partitions + 1))
    for p in range(num_partitions):
        sel = order[bounds[p] : bounds[p + 1]]
        if len(sel):
            save_arrays(io.join(wd, "bands", f"p{p:05d}", f"s{shard_idx:06d}.npz"), key=k_all[sel], node=n_all[sel])
    return {"rows": row, "no_signature": no_sig}


def _np_bytes(arr: np.ndarray) -> bytes:
    import io as _io

    buf = _io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _load_sig(path: str) -> np.ndarray:
    if io.is_local(path):
        return np.load(path.removeprefix("file://"), mmap_mode="r")
    import io as _io

    fs, p = io.fs_path(path)
    with fs.open(p, "rb") as f:
        return np.load(_io.BytesIO(f.read()))


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


def _estimated_jaccard(wd: str, u: np.ndarray, v: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Fraction of equal signature values of each pair (reads rows from the per-shard signature files)."""
    out = np.empty(len(u), dtype=np.float32)
    cache: dict[int, np.ndarray] = {}

    def rows(nodes: np.ndarray) -> np.ndarray:
        sh, rw = node_shard(nodes), node_row(nodes)
        res = None
        for s in np.unique(sh):
            s = int(s)
            if s not in cache:
                cache[s] = _load_sig(_sig_path(wd, s))
            sel = sh == s
            part = np.asarray(cache[s][rw[sel]])
            if res is None:
                res = np.empty((len(nodes), part.shape[1]), dtype=np.uint32)
            res[sel] = part
        return res

    for s in range(0, len(u), chunk):
        e = min(len(u), s + chunk)
        out[s:e] = (rows(u[s:e]) == rows(v[s:e])).mean(axis=1)
    return out


def _reduce_minhash(wd: str, p: int, cfg: dict[str, Any], num_partitions: int) -> dict[str, Any]:
    files = list_files(io.join(wd, "bands", f"p{p:05d}"))
    if not files:
        return {"candidates": 0, "edges": 0, "est_hist": [0] * 20}
    arrs = [load_arrays(f) for f in files]
    key = np.concatenate([x["key"] for x in arrs])
    node = np.concatenate([x["node"] for x in arrs])
    del arrs
    u, v = _candidate_pairs(key, node)
    del key, node
    n_cand = len(u)
    hist = [0] * 20
    if cfg["verify"] and n_cand:
        est = _estimated_jaccard(wd, u, v)
        hist = np.bincount(np.minimum((est * 20).astype(np.int64), 19), minlength=20).tolist()
        ok = est >= cfg["verify_at"]
        u, v = u[ok], v[ok]
    # both directions, routed to the partition of the source node
    src = np.concatenate([u, v])
    dst = np.concatenate([v, u])
    part = partition_of(src, num_partitions)
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(num_partitions + 1))
    for q in range(num_partitions):
        sel = order[bounds[q] : bounds[q + 1]]
        if len(sel):
            save_arrays(io.join(wd, "edges", f"q{q:05d}", f"from{p:05d}.npz"), src=src[sel], dst=dst[sel])
    return {"candidates": int(n_cand), "edges": int(len(u)), "est_hist": hist}


def _gather(wd_root: str, shards: list[PhaseShard], s: int, watch: list[int]) -> dict[str, Any]:
    parts = list_files(io.join(wd_root, "minhash", "removed", f"s{s:06d}"))
    return write_removals(wd_root, "minhash", shards, s, parts, watch)


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
    io.write_bytes_atomic(path, buf.getvalue())
    return path


class MinHashDedup(RemovalListStage):
    """Fuzzy deduplication with MinHash-LSH (see the module docstring for the pipeline and defaults).

    Reason: ``dedup:minhash``. Memory: a map task holds one shard's band records
    (``16 * num_bands`` bytes per document) and signatures; a reduce or
    components task holds one partition; partitions grow with the corpus
    (``docs_per_partition``), so per-task memory is set by configuration.
    """

    name = "minhash_dedup"
    version = "1"
    reason = "dedup:minhash"

    def __init__(
        self,
        ngram_size: int = 5,
        num_bands: int = 14,
        rows_per_band: int = 8,
        threshold: float = 0.8,
        verify: bool = True,
        verify_margin: float | None = None,
        seed: int = 1,
        docs_per_partition: int = 250_000,
        min_partitions: int = 4,
        batch_size: int = 4096,
        max_rounds: int = 64,
        measure_curve: bool = True,
    ) -> None:
        super().__init__()
        if ngram_size < 1 or num_bands < 1 or rows_per_band < 1:
            raise ValueError("ngram_size, num_bands and rows_per_band must be positive")
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if docs_per_partition < 1 or min_partitions < 1 or batch_size < 1:
            raise ValueError("docs_per_partition, min_partitions and batch_size must be positive")
        self.ngram_size = ngram_size
        self.num_bands = num_bands
        self.rows_per_band = rows_per_band
        self.threshold = threshold
        self.verify = verify
        self.verify_margin = verify_margin
        self.seed = seed
        self.docs_per_partition = docs_per_partition
        self.min_partitions = min_partitions
        self.batch_size = batch_size
        self.max_rounds = max_rounds
        self.measure_curve = measure_curve

    @property
    def verify_at(self) -> float:
        """The estimated-Jaccard cut of verification: ``threshold`` plus the margin."""
        k = self.num_bands * self.rows_per_band
        margin = self.verify_margin
        if margin is None:
            margin = math.sqrt(self.threshold * (1.0 - self.threshold) / k)
        return min(1.0, self.threshold + margin)

    def _cfg(self) -> dict[str, Any]:
        return {
            "ngram_size": self.ngram_size,
            "num_bands": self.num_bands,
            "rows_per_band": self.rows_per_band,
            "threshold": self.threshold,
            "verify": self.verify,
            "verify_at": self.verify_at,
            "seed": self.seed,
            "batch_size": self.batch_size,
        }

    def fit(self, ctx: GlobalContext) -> dict[str, Any]:
        timer = Timer()
        shards = ordered_shards(ctx.shards)
        wd = workdir_of(ctx, "minhash")
        cfg = self._cfg()
        n_docs = sum(run_tasks(count_rows, [(s.path,) for s in shards], ctx.num_workers))
        num_partitions = max(self.min_partitions, math.ceil(n_docs / self.docs_per_partition))
        logger.info(
            "minhash: %d documents in %d shards, %d partitions, %dx%d bands, threshold %s",
            n_docs,
            len(shards),
            num_partitions,
            self.num_bands,
            self.rows_per_band,
            self.threshold,
        )
        maps = run_tasks(_map_minhash, [(s, i, wd, cfg, num_partitions) for i, s in enumerate(shards)], ctx.num_workers)
        timer.mark("signatures")
        reduces = run_tasks(
            _reduce_minhash, [(wd, p, cfg, num_partitions) for p in range(num_partitions)], ctx.num_workers
        )
        timer.mark("candidates")
        cc = connected_components(
            io.join(wd, "edges"), io.join(wd, "cc"), wd, num_partitions, ctx.num_workers, self.max_rounds, TOP_CLUSTERS
        )
        timer.mark("components")
        watch = sorted({t["rep"] for st in cc["cluster_stats"] for t in st["top"]})
        gathers = run_tasks(_gather, [(ctx.workdir, shards, i, watch) for i in range(len(shards))], ctx.num_workers)
        timer.mark("removal_lists")
        summary = summarize_clusters("minhash", shards, _cc_as_reduces(cc, gathers), gathers, TOP_CLUSTERS)
        est_hist = np.sum([r["est_hist"] for r in reduces], axis=0).astype(int).tolist()
        summary.update(
            {
                "documents_in": n_docs,
                "documents_without_signature": sum(m["no_signature"] for m in maps),
                "partitions": num_partitions,
                "candidate_pairs": sum(r["candidates"] for r in reduces),
                "verified_pairs": sum(r["edges"] for r in reduces),
                "candidate_estimated_jaccard_hist": est_hist if self.verify else None,
                "components_rounds": cc["rounds"],
                "config": cfg,
                "s_curve_theory": {
                    f"{j:.1f}": round(float(s_curve(j, self.num_bands, self.rows_per_band)), 4)
                    for j in np.arange(0.1, 1.01, 0.1)
                },
            }
        )
        plots = []
        if self.measure_curve and shards:
            first = next(io.iter_parquet_batches(shards[0].path, batch_size=200, columns=["text"]), None)
            sample = first.column(0).to_pylist() if first is not None else []
            curve = measure_s_curve(
                sample,
                self.ngram_size,
                self.num_bands,
                self.rows_per_band,
                self.verify_at if self.verify else None,
                self.seed,
            )
            summary["s_curve_measured"] = curve
            try:
                plots.append(
                    _plot_s_curve(curve, self.num_bands, self.rows_per_band, self.threshold, io.join(wd, "s_curve.png"))
                )
            except Exception as e:  # plotting is a nicety; never fail the stage on it
                logger.warning("minhash: S-curve plot failed: %s", e)
        timer.mark("s_curve")
        summary["seconds"] = timer.marks
        logger.info("minhash: %d clusters, %d documents removed", summary["clusters"], summary["documents_removed"])
        return {
            "reason": self.reason,
            "removal": {s.shard_id: g["path"] for s, g in zip(shards, gathers)},
            "summary": summary,
            "plots": plots,
        }


def _cc_as_reduces(cc: dict[str, Any], gathers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Adapt component statistics to :func:`summarize_clusters`, with a few members of the largest clusters."""
    members: dict[int, list[int]] = {}
    for g in gathers:
        for label, nodes in g["watch_members"].items():
            members.setdefault(int(label), []).extend(nodes)
    out = []
    for st in cc["cluster_stats"]:
        top = [
            {"size": t["size"], "rep": t["rep"], "examples": sorted(members.get(t["rep"], []))[:3]} for t in st["top"]
        ]
        out.append({"clusters": st["clusters"], "sizes": st["sizes"], "top": top})
    return out


__all__ = [
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
