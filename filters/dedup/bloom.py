"""BFF-style Bloom-filter paragraph and document deduplication (DCLM's ``dedup/bff``).

Recommended DCLM settings (``dedup/bff/README.md``, ``--remove-type old-both``):
13-gram word shingles (``min_ngram_size = max_ngram_size = 13``), false-positive
rate 0.01, ``filtering_threshold = 0.8``:

* a *paragraph* is a newline-delimited window of the text (the ``\\n`` belongs to
  the paragraph it opens); its n-grams are the token 13-grams inside it (a
  paragraph with fewer than 13 tokens has none and is always kept);
* a paragraph is removed when more than 80% of its n-grams were seen before;
* the whole document is removed when more than 80% of all its n-grams were;
* a document whose remaining text is blank is removed too (bff skips it).

"Seen before" means: present in the Bloom filter (earlier batches, shards or,
in global mode, the whole corpus before this document), or occurring in an
earlier paragraph of the same batch (checked exactly, which is what sequential
insertion gives). Tokens are word runs and single punctuation marks
(:func:`~filters.dedup.hashing.bff_tokens`), case-sensitive, as bff's.

**One deliberate difference from bff.** bff inserts the n-grams of *kept*
paragraphs only; here every n-gram is inserted. The decision for a paragraph then
depends only on the text before it, never on earlier decisions, which lets a
batch be decided at once with numpy. The two agree except when a later text
repeats the (at most 20%) novel n-grams of a removed paragraph; the test suite
compares with a sequential reference of bff's rule on crafted inputs.

**Order dependence.** Like bff, the result depends on document order: the first
copy in the order of processing is kept, later ones are removed. Here the order
is fixed: shards sorted by id, rows in file order, so results are identical
across runs and worker counts (bff itself shuffles files across threads and is
not reproducible). In per-shard mode (:class:`BloomDedupShard`, how
DCLM-Baseline ran it on shards of the pool) duplicates across shards survive.

**The filter and its sizing.** A register-blocked Bloom filter (Putze, Sanders &
Singler, "Cache-, Hash- and Space-Efficient Bloom Filters", 2007): each n-gram
picks one 64-bit word and sets ``k`` bits inside it, so an insert or a lookup
touches one word instead of ``k`` scattered ones (7x fewer random memory accesses
than a classic filter, which made the global pass ~5x faster). Its false-positive
rate is ``E_L[(1 - (63/64)**(k L))**k]`` with ``L ~ Poisson(64 n / m)`` the load of
a word; :func:`bloom_size` picks the smallest ``m`` (and the best ``k``) that meets
``fp_rate`` for ``n`` expected n-grams: 12.0 bits (1.5 bytes) per n-gram and k=6 at
p=0.01, against 9.6 bits for a classic filter (which bff uses). The memory is
logged before the filter is allocated, and ``max_memory_bytes`` refuses a
configuration that needs more. In global mode the filter is split by hash range
across ``num_actors`` Ray actors.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation import io
from curation.stage import GlobalContext, GlobalStage, Mapper, PhaseShard, ShardContext, StageResult, split_by_reason

from .common import (
    Timer,
    list_files,
    load_arrays,
    merge_per_source,
    ordered_shards,
    partition_of,
    run_tasks,
    save_arrays,
    text_bytes_estimate,
    workdir_of,
)
from .hashing import bff_tokens, fmix64, hash_tokens, ngram_spans, range_hashes, split_words

logger = logging.getLogger(__name__)

REASON_DOC = "dedup:bff_doc"
REASON_EMPTY = "dedup:bff_paragraphs"
BYTES_PER_NGRAM_GUESS = 5  # one token per ~5 bytes of text: the n-gram count is ~ the token count


WORD_BITS = 64
MAX_HASHES = 10  # k bit positions are cut from one 64-bit hash, 6 bits each


def false_positive_rate(bits: int, k: int, n: int) -> float:
    """False-positive rate of the blocked filter after ``n`` insertions (Poisson load per 64-bit word)."""
    lam = n * WORD_BITS / bits
    p_load = math.exp(-lam)
    total = 0.0
    load = 0
    while True:
        if load:
            p_load *= lam / load
        total += p_load * (1.0 - (1.0 - 1.0 / WORD_BITS) ** (k * load)) ** k
        load += 1
        if load > lam and p_load < 1e-12:
            return total


def bloom_size(expected: int, fp_rate: float) -> tuple[int, int]:
    """(bits, hash count) of the smallest blocked filter meeting ``fp_rate`` after ``expected`` insertions."""
    if expected < 1:
        raise ValueError("expected item count must be positive")
    if not 0.0 < fp_rate < 1.0:
        raise ValueError(f"fp_rate must be in (0, 1), got {fp_rate}")

    def best(bits_per_item: float) -> tuple[float, int]:
        return min((false_positive_rate(round(bits_per_item * 1e6), k, 10**6), k) for k in range(1, MAX_HASHES + 1))

    lo, hi = 0.5, 8.0
    while best(hi)[0] > fp_rate:
        hi *= 2
        if hi > 4096:
            raise ValueError(f"fp_rate {fp_rate} is too small for a blocked filter")
    for _ in range(40):
        mid = (lo + hi) / 2
        if best(mid)[0] > fp_rate:
            lo = mid
        else:
            hi = mid
    bits = max(WORD_BITS, math.ceil(hi * expected / WORD_BITS) * WORD_BITS)
    return bits, best(hi)[1]


class BloomFilter:
    """A register-blocked Bloom filter over 64-bit item hashes, as a numpy array of 64-bit words.

    An item's word is ``h1 mod W`` and its ``k`` bits are 6-bit slices of ``h2``,
    with ``h1``, ``h2`` two re-mixings of the item hash (so one 64-bit hash per
    n-gram is enough).
    """

    def __init__(self, num_bits: int, num_hashes: int, seed: int = 0) -> None:
        if num_bits < WORD_BITS or not 1 <= num_hashes <= MAX_HASHES:
            raise ValueError(f"a Bloom filter needs at least 64 bits and 1..{MAX_HASHES} hash functions")
        self.num_bits = (num_bits + WORD_BITS - 1) // WORD_BITS * WORD_BITS
        self.num_hashes = num_hashes
        self.seed = seed
        self.words = np.zeros(self.num_bits // WORD_BITS, dtype=np.uint64)
        self.inserted = 0

    @classmethod
    def for_capacity(cls, expected: int, fp_rate: float, seed: int = 0) -> BloomFilter:
        bits, k = bloom_size(expected, fp_rate)
        return cls(bits, k, seed)

    @property
    def nbytes(self) -> int:
        return int(self.words.nbytes)

    def _locate(self, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = self.seed % (1 << 64)
        k1 = np.uint64((s * 0x9E3779B97F4A7C15 + 1) % (1 << 64))
        k2 = np.uint64((s * 0xC2B2AE3D27D4EB4F + 2) % (1 << 64))
        word = fmix64(h ^ k1) % np.uint64(len(self.words))
        h2 = fmix64(h ^ k2)
        mask = np.zeros(len(h), dtype=np.uint64)
        one, six, low = np.uint64(1), np.uint64(6), np.uint64(63)
        for i in range(self.num_hashes):
            mask |= one << ((h2 >> (six * np.uint64(i))) & low)
        return word, mask

    def contains(self, h: np.ndarray) -> np.ndarray:
        word, mask = self._locate(np.asarray(h, dtype=np.uint64))
        return (self.words[word] & mask) == mask

    def add(self, h: np.ndarray) -> None:
        word, mask = self._locate(np.asarray(h, dtype=np.uint64))
        np.bitwise_or.at(self.words, word, mask)
        self.inserted += len(word)

    def fill_ratio(self) -> float:
        return float(np.unpackbits(self.words.view(np.uint8)).mean()) if self.words.size else 0.0


# --------------------------------------------------------------------------- the batch computation


def bff_batch_ngrams(text: pa.Array | pa.ChunkedArray, ngram_size: int, min_ngram_size: int) -> dict[str, np.ndarray]:
    """Paragraphs and n-gram hashes of a batch.

    Returns ``para_doc`` (document of each paragraph, in order), ``para_count``
    (paragraphs per document), ``ngram_para`` (paragraph of each n-gram) and ``hash``.
    """
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    paras = pc.split_pattern(text.cast(pa.large_string()), "\n")
    para_count = pc.list_value_length(paras).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = paras.flatten()
    para_doc = np.repeat(np.arange(len(para_count), dtype=np.int64), para_count)
    tok_off, toks = split_words(bff_tokens(flat))
    th = hash_tokens(toks, key="bff-token-key-01")
    seg, starts, ends = ngram_spans(tok_off, ngram_size, min_n=min_ngram_size)
    return {"para_doc": para_doc, "para_count": para_count, "ngram_para": seg, "hash": range_hashes(th, starts, ends)}


def seen_earlier_in_batch(h: np.ndarray, para: np.ndarray) -> np.ndarray:
    """True where the same hash occurs in an earlier paragraph of the batch (paragraph order = text order)."""
    if len(h) == 0:
        return np.zeros(0, dtype=bool)
    order = np.lexsort((para, h))
    hs, ps = h[order], para[order]
    start = np.r_[True, hs[1:] != hs[:-1]]
    gid = np.cumsum(start) - 1
    first_para = ps[start][gid]
    out = np.empty(len(h), dtype=bool)
    out[order] = ps > first_para
    return out


def bff_decide(
    ng: dict[str, np.ndarray], seen: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Paragraph and document decisions (old-both) from per-n-gram ``seen`` flags.

    Returns (para_removed, doc_removed, para_total, para_contained).
    """
    n_para = len(ng["para_doc"])
    total = np.bincount(ng["ngram_para"], minlength=n_para)
    contained = np.bincount(ng["ngram_para"], weights=seen, minlength=n_para).astype(np.int64)
    para_removed = (total > 0) & (contained > threshold * total)
    n_docs = len(ng["para_count"])
    d_total = np.bincount(ng["para_doc"], weights=total, minlength=n_docs)
    d_cont = np.bincount(ng["para_doc"], weights=contained, minlength=n_docs)
    doc_removed = (d_total > 0) & (d_cont > threshold * d_total)
    return para_removed, doc_removed, total, contained


def apply_decisions(
    table: pa.Table, ng: dict[str, np.ndarray], para_removed: np.ndarray, doc_removed: np.ndarray
) -> StageResult:
    """Drop removed documents, cut removed paragraphs out of the others (only affected rows touch Python)."""
    para_start = np.zeros(len(ng["para_count"]) + 1, dtype=np.int64)
    np.cumsum(ng["para_count"], out=para_start[1:])
    reasons: list[str | None] = [None] * table.num_rows
    doc_has_cut = np.zeros(table.num_rows, dtype=bool)
    if len(para_removed):
        np.logical_or.at(doc_has_cut, ng["para_doc"], para_removed)
    touched = np.flatnonzero(doc_has_cut & ~doc_removed)
    for d in np.flatnonzero(doc_removed):
        reasons[int(d)] = REASON_DOC
    new_text = table.column("text")
    if len(touched):
        texts = table.column("text").take(pa.array(touched)).to_pylist()
        replacements = []
        for d, t in zip(touched.tolist(), texts):
            segs = t.split("\n")
            removed = para_removed[para_start[d] : para_start[d + 1]]
            kept = [("\n" if i else "") + s for i, (s, r) in enumerate(zip(segs, removed)) if not r]
            out = "".join(kept)  # bff keeps the newline that opened the first surviving paragraph
            if not out.strip():
                reasons[d] = REASON_EMPTY
            replacements.append(out)
        mask = np.zeros(table.num_rows, dtype=bool)
        mask[touched] = True
        new_text = pc.replace_with_mask(
            table.column("text").combine_chunks(), pa.array(mask), pa.array(replacements, pa.large_string())
        )
        table = table.set_column(table.schema.get_field_index("text"), "text", new_text)
    return split_by_reason(table, pa.array(reasons, pa.string()))


# --------------------------------------------------------------------------- per-shard mode


class BloomDedupShard(Mapper):
    """BFF on each shard separately (a fresh filter per shard), as DCLM-Baseline ran it.

    ``expected_ngrams_per_shard`` sizes the filter (1.5 bytes per n-gram at
    p=0.01); the memory is logged when a shard starts. Batches of one shard must
    arrive in order in one process (the runner's shard task does that); when the
    first batch of a shard is seen again (a retried task), the filter restarts.
    """

    name = "bff_shard"
    version = "1"

    def __init__(
        self,
        ngram_size: int = 13,
        min_ngram_size: int = 13,
        threshold: float = 0.8,
        fp_rate: float = 0.01,
        expected_ngrams_per_shard: int = 50_000_000,
        seed: int = 0,
    ) -> None:
        _check(ngram_size, min_ngram_size, threshold, fp_rate)
        self.ngram_size = ngram_size
        self.min_ngram_size = min_ngram_size
        self.threshold = threshold
        self.fp_rate = fp_rate
        self.expected_ngrams_per_shard = expected_ngrams_per_shard
        self.seed = seed
        bloom_size(expected_ngrams_per_shard, fp_rate)  # validates
        self._filter: BloomFilter | None = None
        self._shard: tuple[str, str] | None = None

    def process(self, table: pa.Table, shard: ShardContext | None = None) -> StageResult:
        if table.num_rows == 0:
            return split_by_reason(table, None)
        shard_id = shard.shard_id if shard is not None else ""
        first_id = table.column("id")[0].as_py()
        if self._filter is None or self._shard is None or self._shard[0] != shard_id or self._shard[1] == first_id:
            bits, k = bloom_size(self.expected_ngrams_per_shard, self.fp_rate)
            logger.info(
                "bff: shard %s: Bloom filter of %.1f MiB (%d expected n-grams, fp %.3g, %d hashes)",
                shard_id,
                bits / 8 / 2**20,
                self.expected_ngrams_per_shard,
                self.fp_rate,
                k,
            )
            self._filter = BloomFilter(bits, k, self.seed)
            self._shard = (shard_id, first_id)
        ng = bff_batch_ngrams(table.column("text"), self.ngram_size, self.min_ngram_size)
        seen = self._filter.contains(ng["hash"]) | seen_earlier_in_batch(ng["hash"], ng["ngram_para"])
        self._filter.add(ng["hash"])
        para_removed, doc_removed, _, _ = bff_decide(ng, seen, self.threshold)
        return apply_decisions(table, ng, para_removed, doc_removed)


def _check(ngram_size: int, min_ngram_size: int, threshold: float, fp_rate: float) -> None:
    if ngram_size < 1 or not 1 <= min_ngram_size <= ngram_size:
        raise ValueError("need 1 <= min_ngram_size <= ngram_size")
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must be in [0, 1), got {threshold}")
    if not 0.0 < fp_rate < 1.0:
        raise ValueError(f"fp_rate must be in (0, 1), got {fp_rate}")


# --------------------------------------------------------------------------- global mode


class _FilterShard:
    """One hash range of the global filter (a Ray actor). Calls must arrive in batch order."""

    def __init__(self, index: int, num_actors: int, num_bits: int, num_hashes: int, seed: int) -> None:
        self.index = index
        self.num_actors = num_actors
        self.filter = BloomFilter(num_bits, num_hashes, seed)
        self.next_seq = 0

    def query_insert(self, seq: int, path: str) -> np.ndarray:
        if seq != self.next_seq:
            raise RuntimeError(f"bff filter shard {self.index}: batch {seq} arrived, expected {self.next_seq}")
        self.next_seq += 1
        part = load_arrays(_actor_path(path, self.index))  # this actor's hash range of the batch, in order
        hm = part["hash"]
        seen = self.filter.contains(hm) | seen_earlier_in_batch(hm, part["para"])
        self.filter.add(hm)
        return seen

    def stats(self) -> dict[str, Any]:
        return {"inserted": self.filter.inserted, "fill": self.filter.fill_ratio(), "bytes": self.filter.nbytes}


def _actor_path(batch_path: str, actor: int) -> str:
    return batch_path.replace(".npz", f".a{actor:03d}.npz")


def _bff_hash_shard(shard: PhaseShard, shard_idx: int, wd: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """Map: the n-grams of every batch of one shard, one file per batch."""
    paths = []
    rows = 0
    ngrams = 0
    for b, batch in enumerate(io.iter_parquet_batches(shard.path, batch_size=cfg["batch_size"], columns=["text"])):
        ng = bff_batch_ngrams(batch.column(0), cfg["ngram_size"], cfg["min_ngram_size"])
        path = io.join(wd, "ngrams", f"s{shard_idx:06d}", f"b{b:06d}.npz")
        save_arrays(path, **ng)
        part = partition_of(ng["hash"], cfg["num_actors"])
        for a in range(cfg["num_actors"]):
            mine = part == a
            save_arrays(_actor_path(path, a), hash=ng["hash"][mine], para=ng["ngram_para"][mine])
        paths.append(path)
        rows += batch.num_rows
        ngrams += len(ng["hash"])
    return {"batches": paths, "rows": rows, "ngrams": ngrams}


def _bff_decide_batch(path: str, num_actors: int, threshold: float, *seen_parts: np.ndarray) -> dict[str, Any]:
    ng = load_arrays(path)
    part = partition_of(ng["hash"], num_actors)
    seen = np.zeros(len(ng["hash"]), dtype=bool)
    for a, s in enumerate(seen_parts):
        seen[part == a] = s
    para_removed, doc_removed, _, _ = bff_decide(ng, seen, threshold)
    out = path.replace(".npz", ".decision.npz")
    save_arrays(out, para_removed=para_removed, doc_removed=doc_removed, para_count=ng["para_count"])
    return {
        "path": out,
        "docs_removed": int(doc_removed.sum()),
        "paragraphs_removed": int(para_removed.sum()),
        "ngrams_seen": int(seen.sum()),
    }


def _bff_gather_shard(shard: PhaseShard, shard_idx: int, wd: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """Per shard: apply the decisions to compute removed bytes per source; write the shard's decision file."""
    files = [f for f in list_files(io.join(wd, "ngrams", f"s{shard_idx:06d}")) if f.endswith(".decision.npz")]
    per_source_docs: dict[str, list[int]] = {}
    per_source_paras: dict[str, list[int]] = {}
    rows_done = 0
    ids_out, actions, cut_lists = [], [], []
    batches = io.iter_parquet_batches(shard.path, batch_size=cfg["batch_size"], columns=["id", "text", "source"])
    for f, batch in zip(files, batches):
        dec = load_arrays(f)
        table = pa.Table.from_batches([batch])
        ng = {
            "para_count": dec["para_count"],
            "para_doc": np.repeat(np.arange(len(dec["para_count"])), dec["para_count"]),
        }
        res = apply_decisions(table, ng, dec["para_removed"], dec["doc_removed"])
        for s, _r, nb in zip(
            res.dropped.column("source").to_pylist(),
            res.dropped.column("reason").to_pylist(),
            res.dropped.column("nbytes").to_pylist(),
        ):
            cur = per_source_docs.setdefault(s, [0, 0])
            cur[0] += 1
            cur[1] += nb
        # paragraph cuts: bytes removed from surviving documents
        para_start = np.r_[0, np.cumsum(dec["para_count"])]
        affected = np.zeros(table.num_rows, dtype=bool)
        np.logical_or.at(affected, ng["para_doc"], dec["para_removed"])
        ids = table.column("id").to_pylist()
        dropped_ids = dict(zip(res.dropped.column("id").to_pylist(), res.dropped.column("reason").to_pylist()))
        kept_nb = dict(
            zip(
                res.kept.column("id").to_pylist(),
                pc.binary_length(res.kept.column("text").cast(pa.large_binary())).to_pylist(),
            )
        )
        orig_nb = pc.binary_length(table.column("text").cast(pa.large_binary())).to_pylist()
        sources = table.column("source").to_pylist()
        for d in np.flatnonzero(affected | dec["doc_removed"]).tolist():
            ids_out.append(ids[d])
            if ids[d] in dropped_ids:
                actions.append(dropped_ids[ids[d]])
                cut_lists.append([])
            else:
                actions.append("cut")
                cut = np.flatnonzero(dec["para_removed"][para_start[d] : para_start[d + 1]]).tolist()
                cut_lists.append(cut)
                cur = per_source_paras.setdefault(sources[d], [0, 0])
                cur[0] += len(cut)
                cur[1] += orig_nb[d] - kept_nb[ids[d]]
        rows_done += table.num_rows
    out = pa.table(
        {
            "id": pa.array(ids_out, pa.string()),
            "action": pa.array(actions, pa.string()),
            "paragraphs": pa.array(cut_lists, pa.list_(pa.int32())),
        }
    )
    path = io.join(wd, "decisions", f"{shard_idx:06d}.parquet")
    io.write_parquet_atomic(path, out)
    return {"path": path, "rows": rows_done, "docs": per_source_docs, "paras": per_source_paras}


class BloomDedup(GlobalStage):
    """BFF over the whole corpus with one Bloom filter split across Ray actors.

    ``expected_ngrams`` sizes the filter; when ``None`` it is estimated from the
    text bytes in the shards' parquet footers (one n-gram per ~5 bytes; an
    overestimate only costs memory). ``max_memory_bytes`` bounds the filter.
    Reasons: ``dedup:bff_doc`` (over the document threshold) and
    ``dedup:bff_paragraphs`` (nothing left after paragraph removal); other documents
    lose their duplicate paragraphs.
    """

    name = "bff_dedup"
    version = "1"

    def __init__(
        self,
        ngram_size: int = 13,
        min_ngram_size: int = 13,
        threshold: float = 0.8,
        fp_rate: float = 0.01,
        expected_ngrams: int | None = None,
        max_memory_bytes: int = 8 * 2**30,
        num_actors: int = 2,
        batch_size: int = 2048,
        seed: int = 0,
    ) -> None:
        super().__init__()
        _check(ngram_size, min_ngram_size, threshold, fp_rate)
        if num_actors < 1 or batch_size < 1:
            raise ValueError("num_actors and batch_size must be positive")
        self.ngram_size = ngram_size
        self.min_ngram_size = min_ngram_size
        self.threshold = threshold
        self.fp_rate = fp_rate
        self.expected_ngrams = expected_ngrams
        self.max_memory_bytes = max_memory_bytes
        self.num_actors = num_actors
        self.batch_size = batch_size
        self.seed = seed
        self._cache: tuple[str, dict[str, tuple[str, list[int]]]] | None = None

    def _cfg(self) -> dict[str, Any]:
        return {
            "ngram_size": self.ngram_size,
            "min_ngram_size": self.min_ngram_size,
            "batch_size": self.batch_size,
            "num_actors": self.num_actors,
        }

    def fit(self, ctx: GlobalContext) -> dict[str, Any]:
        import ray

        timer = Timer()
        shards = ordered_shards(ctx.shards)
        wd = workdir_of(ctx, "bff")
        expected = self.expected_ngrams
        if expected is None:
            nbytes = sum(run_tasks(text_bytes_estimate, [(s.path,) for s in shards], ctx.num_workers))
            expected = max(1, nbytes // BYTES_PER_NGRAM_GUESS)
        bits, k = bloom_size(expected, self.fp_rate)
        mem = bits // 8
        logger.info(
            "bff: Bloom filter of %.1f MiB for %d expected n-grams at fp %.3g (%d hashes), over %d actors",
            mem / 2**20,
            expected,
            self.fp_rate,
            k,
            self.num_actors,
        )
        if mem > self.max_memory_bytes:
            raise ValueError(
                f"bff: the filter needs {mem / 2**30:.2f} GiB for {expected} n-grams at fp {self.fp_rate}, "
                f"over max_memory_bytes={self.max_memory_bytes / 2**30:.2f} GiB"
            )
        cfg = self._cfg()
        maps = run_tasks(_bff_hash_shard, [(s, i, wd, cfg) for i, s in enumerate(shards)], ctx.num_workers)
        timer.mark("ngrams")
        per_actor_bits = max(64, (bits // self.num_actors + 63) // 64 * 64)
        actor_cls = ray.remote(num_cpus=0)(_FilterShard) if ray.is_initialized() else None
        if actor_cls is not None:
            actors = [
                actor_cls.remote(a, self.num_actors, per_actor_bits, k, self.seed) for a in range(self.num_actors)
            ]
        else:
            local = [_FilterShard(a, self.num_actors, per_actor_bits, k, self.seed) for a in range(self.num_actors)]
        batch_paths = [p for m in maps for p in m["batches"]]
        decisions: list[dict[str, Any]] = []
        if actor_cls is not None:
            decide = ray.remote(num_cpus=1)(_bff_decide_batch)
            pending: list[Any] = []
            for seq, path in enumerate(batch_paths):
                parts = [act.query_insert.remote(seq, path) for act in actors]  # in order: same caller
                pending.append(decide.remote(path, self.num_actors, self.threshold, *parts))
                if len(pending) >= 2 * max(1, ctx.num_workers):
                    decisions.append(ray.get(pending.pop(0)))
            decisions.extend(ray.get(pending))
            fstats = ray.get([a.stats.remote() for a in actors])
            for a in actors:
                ray.kill(a)
        else:
            for seq, path in enumerate(batch_paths):
                parts = [f.query_insert(seq, path) for f in local]
                decisions.append(_bff_decide_batch(path, self.num_actors, self.threshold, *parts))
            fstats = [f.stats() for f in local]
        timer.mark("filter")
        gathers = run_tasks(_bff_gather_shard, [(s, i, wd, cfg) for i, s in enumerate(shards)], ctx.num_workers)
        timer.mark("decisions")
        total_ngrams = sum(m["ngrams"] for m in maps)
        docs = merge_per_source([g["docs"] for g in gathers])
        paras = merge_per_source([g["paras"] for g in gathers])
        summary = {
            "method": "bff",
            "documents_in": sum(m["rows"] for m in maps),
            "documents_removed": sum(v["documents"] for v in docs.values()),
            "bytes_removed_with_documents": sum(v["bytes"] for v in docs.values()),
            "paragraphs_removed_from_kept_documents": sum(v["documents"] for v in paras.values()),
            "bytes_removed_with_paragraphs": sum(v["bytes"] for v in paras.values()),
            "removed_by_source": docs,
            "paragraph_cuts_by_source": paras,
            "ngrams": total_ngrams,
            "ngrams_seen": sum(d["ngrams_seen"] for d in decisions),
            "filter": {
                "expected_ngrams": int(expected),
                "fp_rate_target": self.fp_rate,
                "bits": int(per_actor_bits * self.num_actors),
                "bytes": int(per_actor_bits * self.num_actors // 8),
                "hashes": k,
                "actors": self.num_actors,
                "fill_ratio": round(float(np.mean([f["fill"] for f in fstats])), 5),
                "fp_rate_at_end": false_positive_rate(per_actor_bits * self.num_actors, k, max(1, total_ngrams)),
            },
            "config": {**cfg, "threshold": self.threshold},
            "seconds": timer.marks,
        }
        logger.info(
            "bff: %d documents removed, %d paragraphs cut",
            summary["documents_removed"],
            summary["paragraphs_removed_from_kept_documents"],
        )
        return {"decisions": {s.shard_id: g["path"] for s, g in zip(shards, gathers)}, "summary": summary}

    def _shard_decisions(self, shard_id: str) -> dict[str, tuple[str, list[int]]]:
        if self._cache is not None and self._cache[0] == shard_id:
            return self._cache[1]
        path = self.state["decisions"].get(shard_id)
        out: dict[str, tuple[str, list[int]]] = {}
        if path is not None:
            t = io.read_parquet(path)
            for i, a, p in zip(
                t.column("id").to_pylist(), t.column("action").to_pylist(), t.column("paragraphs").to_pylist()
            ):
                out[i] = (a, p)
        self._cache = (shard_id, out)
        return out

    def process(self, table: pa.Table, shard: ShardContext | None = None) -> StageResult:
        if shard is None:
            raise ValueError(f"{self.name}: process() needs the ShardContext (shard_id)")
        dec = self._shard_decisions(shard.shard_id)
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
            action, cut = dec[ids[r]]
            if action != "cut":
                reasons[r] = action
                continue
            cut_set = set(cut)
            out = "".join(("\n" if i else "") + s for i, s in enumerate(t.split("\n")) if i not in cut_set)
            if not out.strip():
                reasons[r] = REASON_EMPTY
            repl_rows.append(r)
            repl.append(out)
        if repl_rows:
            mask = np.zeros(table.num_rows, dtype=bool)
            mask[repl_rows] = True
            new_text = pc.replace_with_mask(
                table.column("text").combine_chunks(), pa.array(mask), pa.array(repl, pa.large_string())
            )
            table = table.set_column(table.schema.get_field_index("text"), "text", new_text)
        return split_by_reason(table, pa.array(reasons, pa.string()))
