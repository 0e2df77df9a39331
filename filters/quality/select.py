"""Selecting documents by quality score: a fixed threshold, or the top fraction of the pool.

DCLM-Baseline keeps the top 10% of its pool by the fastText score (Li et al. 2024,
arXiv:2406.11794, section 4.4), a global quantile that no shard can compute alone.

:class:`TopFractionSelect` computes it **exactly** with bounded memory: every document
gets a sort key ``(score descending, blake2b-64(seed, id) ascending)``, so that ties in
the score are broken deterministically and the number of kept documents is exactly
``k = round(fraction * N)`` (unless two rows share both the id and the score, which
are then kept or dropped together). The k-th key is found by a distributed radix
select, a sequence of passes (:mod:`curation.passes`, so a killed driver resumes at the item):

1. ``keys``, one item per shard: save the shard's keys and the 2^16-bin histogram of
   their first 16 bits to ``workdir``;
2. the histograms are summed (reduce passes of ``FAN_IN`` files per item while there
   are more), and the driver picks the bin holding the k-th key; while that bin holds
   more than ``max_candidates`` documents, a ``hist-d<d>`` pass counts the next 16
   bits inside it (at most 6 digits for the 96-bit key);
3. ``gather`` saves each shard's candidates (the keys in that bin), one ``cut`` item
   sorts them and returns the k-th key; ``count`` counts the kept documents per source.

Memory: the driver holds one 2^16-bin histogram and a few numbers per shard and
source, never per-document state; a shard task holds its shard's keys (12 bytes per
document); the ``cut`` task at most ``max_candidates`` keys, which defaults to
``memory_per_worker // CANDIDATE_BYTES``. Per-shard histograms merge by addition, so
this is also a mergeable summary, but with no approximation error.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation import storage
from curation.passes import Item, report_outputs
from curation.stage import (
    Filter,
    FittedState,
    GlobalContext,
    GlobalStage,
    ShardContext,
    StageResult,
    split_by_reason,
)

logger = logging.getLogger(__name__)

REASON_BELOW = "quality:below_threshold"
REASON_MISSING = "quality:missing_score"
REASON_NOT_TOP = "quality:not_top_fraction"

_DIGIT_BITS = 16
_N_DIGITS = 6  # 32-bit score key + 64-bit id hash
HIST_BINS = 50  # score histogram bins over [0, 1] for the report


def _score_column(table: pa.Table, column: str, stage: str) -> pa.Array:
    if column not in table.column_names:
        raise ValueError(f"{stage}: column {column!r} missing; run QualityScorer before this stage")
    col = table.column(column)
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


class QualityThreshold(Filter):
    """Keep documents with ``quality_score >= min_score``.

    Reasons: ``quality:below_threshold``; ``quality:missing_score`` for a null or NaN
    score (never silently kept).
    """

    name = "quality_threshold"
    version = "1"

    def __init__(self, min_score: float, column: str = "quality_score") -> None:
        if not (isinstance(min_score, (int, float)) and math.isfinite(min_score)):
            raise ValueError(f"min_score must be a finite number, got {min_score!r}")
        self.min_score = float(min_score)
        self.column = column

    def decide(self, table: pa.Table) -> pa.Array:
        scores = _score_column(table, self.column, self.name).cast(pa.float64())
        missing = pc.fill_null(pc.or_kleene(pc.is_null(scores), pc.is_nan(scores)), True)
        below = pc.fill_null(pc.less(scores, self.min_score), False)
        null = pa.scalar(None, pa.string())
        return pc.if_else(missing, REASON_MISSING, pc.if_else(below, REASON_BELOW, null))


# -- sort keys --------------------------------------------------------------------------------
def score_keys(scores: np.ndarray) -> np.ndarray:
    """uint32 keys whose ascending order is descending score (NaN ranks last, -0.0 == 0.0)."""
    s = np.asarray(scores, dtype=np.float32).copy()
    s[np.isnan(s)] = -np.inf
    s += np.float32(0.0)  # -0.0 -> +0.0
    bits = s.view(np.uint32)
    ascending = np.where(bits >> np.uint32(31), ~bits, bits | np.uint32(0x80000000))
    return (~ascending).astype(np.uint32)


def id_keys(ids: list[str | None], seed: int) -> np.ndarray:
    """uint64 tie-break keys: blake2b-64 of the id, salted with ``seed``."""
    salt = int(seed).to_bytes(8, "little", signed=True)
    out = np.empty(len(ids), dtype=np.uint64)
    for i, doc_id in enumerate(ids):
        h = hashlib.blake2b((doc_id or "").encode("utf-8"), digest_size=8, salt=salt + bytes(8))
        out[i] = int.from_bytes(h.digest(), "little")
    return out


def _digit(primary: np.ndarray, secondary: np.ndarray, d: int) -> np.ndarray:
    if d == 0:
        return (primary >> np.uint32(16)).astype(np.int64)
    if d == 1:
        return (primary & np.uint32(0xFFFF)).astype(np.int64)
    shift = np.uint64(16 * (5 - d))
    return ((secondary >> shift) & np.uint64(0xFFFF)).astype(np.int64)


def _prefix_mask(primary: np.ndarray, secondary: np.ndarray, prefix: list[int]) -> np.ndarray:
    mask = np.ones(len(primary), dtype=bool)
    for d, v in enumerate(prefix):
        mask &= _digit(primary, secondary, d) == v
    return mask


def _key_le(primary: np.ndarray, secondary: np.ndarray, cut_p: int, cut_s: int) -> np.ndarray:
    p = np.uint32(cut_p)
    return (primary < p) | ((primary == p) & (secondary <= np.uint64(cut_s)))


# -- pass items (module-level functions: no captured state) ------------------------------------
def _save_hist(path: str, counts: np.ndarray) -> None:
    """A 2^16-bin histogram, stored sparse (a shard fills at most as many bins as it has documents)."""
    nz = np.flatnonzero(counts)
    with storage.atomic_open(path, "wb") as f:
        np.savez(f, bins=nz.astype(np.uint32), counts=counts[nz].astype(np.int64))


def _add_hist(acc: np.ndarray, path: str) -> np.ndarray:
    fs, p = storage.fs_path(path)
    with fs.open(p, "rb") as f:
        z = np.load(f)
        np.add.at(acc, z["bins"].astype(np.int64), z["counts"])
    return acc


def _pass_keys(path: str, keys_out: str, column: str, seed: int) -> dict[str, Any]:
    """Read one phase shard, save its keys and its first-digit histogram (one object: the histogram as the
    ``bins``/``counts`` arrays of the keys file); return counts and report histograms."""
    import pyarrow.parquet as pq

    fs, p = storage.fs_path(path)
    with fs.open(p, "rb") as f:
        names = pq.read_schema(f).names
    missing = [c for c in ("id", "source", column) if c not in names]
    if missing:
        raise ValueError(f"top_fraction: {path} lacks column(s) {missing}; run QualityScorer before this stage")
    table = storage.read_parquet(path, columns=["id", "source", column])
    scores = _score_column(table, column, "top_fraction").cast(pa.float32())
    scores_np = scores.to_numpy(zero_copy_only=False).astype(np.float32)  # nulls -> NaN
    primary = score_keys(scores_np)
    secondary = id_keys(table.column("id").to_pylist(), seed)
    src = table.column("source").combine_chunks().dictionary_encode()
    names = [str(x) for x in src.dictionary.to_pylist()]
    codes = src.indices.to_numpy(zero_copy_only=False).astype(np.int32)
    hist = np.bincount(_digit(primary, secondary, 0), minlength=1 << _DIGIT_BITS)
    nz = np.flatnonzero(hist)
    with storage.atomic_open(keys_out, "wb") as f:
        np.savez(f, primary=primary, secondary=secondary, codes=codes, bins=nz.astype(np.uint32),
                 counts=hist[nz].astype(np.int64))
    finite = np.nan_to_num(scores_np, nan=0.0)
    by_source = {}
    for c, name in enumerate(names):
        sel = finite[codes == c]
        hist, _ = np.histogram(np.clip(sel, 0.0, 1.0), bins=HIST_BINS, range=(0.0, 1.0))
        by_source[name] = {"n": int(len(sel)), "sum": float(sel.sum(dtype=np.float64)), "hist": hist.tolist()}
    return {"n": int(len(primary)), "names": names, "by_source": by_source}


def _load_keys(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    fs, p = storage.fs_path(path)
    with fs.open(p, "rb") as f:
        z = np.load(f)
        return z["primary"], z["secondary"], z["codes"]


def _pass_hist(path: str, prefix: list[int], digit: int, out: str) -> int:
    """The histogram of digit ``digit`` over this shard's keys that start with ``prefix``; returns their count."""
    primary, secondary, _ = _load_keys(path)
    mask = _prefix_mask(primary, secondary, prefix)
    _save_hist(out, np.bincount(_digit(primary[mask], secondary[mask], digit), minlength=1 << _DIGIT_BITS))
    return int(mask.sum())


def _pass_sum(paths: list[str], out: str) -> int:
    """Sum histogram files into one (a reduce item); returns the documents it counts."""
    acc = np.zeros(1 << _DIGIT_BITS, dtype=np.int64)
    for p in paths:
        _add_hist(acc, p)
    _save_hist(out, acc)
    return int(acc.sum())


def _pass_gather(path: str, prefix: list[int], out: str) -> int:
    """Save this shard's keys that start with ``prefix`` (the candidates; nothing when it has none); returns
    their count."""
    primary, secondary, _ = _load_keys(path)
    mask = _prefix_mask(primary, secondary, prefix)
    if mask.any():
        with storage.atomic_open(out, "wb") as f:
            np.savez(f, primary=primary[mask], secondary=secondary[mask])
        report_outputs(out)
    return int(mask.sum())


def _pass_cut(paths: list[str], rank: int) -> list[int]:
    """The ``rank``-th smallest (1-based) of the candidates saved by the gather pass, as ``[primary, secondary]``."""
    primary, secondary = [], []
    for path in paths:
        fs, p = storage.fs_path(path)
        with fs.open(p, "rb") as f:
            z = np.load(f)
            primary.append(z["primary"])
            secondary.append(z["secondary"])
    pri, sec = np.concatenate(primary), np.concatenate(secondary)
    i = np.lexsort((sec, pri))[rank - 1]
    return [int(pri[i]), int(sec[i])]


def _pass_count(path: str, names: list[str], cut: list[int] | None, keep_all: bool) -> dict[str, int]:
    primary, secondary, codes = _load_keys(path)
    if keep_all:
        kept = np.ones(len(primary), dtype=bool)
    elif cut is None:
        kept = np.zeros(len(primary), dtype=bool)
    else:
        kept = _key_le(primary, secondary, *cut)
    counts = np.bincount(codes[kept], minlength=len(names))
    return {name: int(counts[i]) for i, name in enumerate(names)}


# -- the stage --------------------------------------------------------------------------------
#: bytes per candidate in the task that sorts them (12 bytes of key, loaded, concatenated, plus the sort order),
#: with headroom: ``max_candidates`` defaults to ``memory_per_worker // CANDIDATE_BYTES``
CANDIDATE_BYTES = 64
#: histogram files summed per reduce item (and at most this many read by the driver)
FAN_IN = 64


@dataclass(frozen=True)
class TopFractionConfig:
    """``fraction`` of the documents to keep by ``column``. ``max_candidates``: the most keys sorted in one
    task; None derives it from the memory budget (it changes the number of passes, never the result).
    ``plot``: write the per-source score histogram PNG."""

    fraction: float = 0.1
    column: str = "quality_score"
    max_candidates: int | None = None
    plot: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"fraction must be in [0, 1], got {self.fraction}")
        if self.max_candidates is not None and self.max_candidates < 1:
            raise ValueError("max_candidates must be >= 1")


@dataclass(frozen=True)
class TopFractionState(FittedState):
    """The fitted cut: documents whose key ``(score desc, id hash)`` is <= ``cut`` are kept."""

    fraction: float = 0.0
    seed: int = 0
    n_total: int = 0
    n_keep: int = 0
    keep_all: bool = False
    cut: tuple[int, int] | None = None

    @classmethod
    def from_json(cls, blob: dict[str, Any]) -> TopFractionState:
        state = super().from_json(blob)
        cut = None if state.cut is None else (int(state.cut[0]), int(state.cut[1]))
        return dataclasses.replace(state, cut=cut)


class TopFractionSelect(GlobalStage):
    """Keep the top ``fraction`` of all documents by ``column`` (exact; module docstring).

    The kept count is ``round(fraction * N)`` over the N documents reaching the stage
    (ties broken by a seeded hash of the id). Dropped rows get ``quality:not_top_fraction``.
    ``fit`` writes a per-source score histogram PNG into the workdir and puts the
    threshold and the kept fraction per source in the state's ``summary``.
    """

    name = "quality_top_fraction"
    version = "1"
    state_type = TopFractionState

    def __init__(
        self,
        fraction: float = 0.1,
        column: str = "quality_score",
        max_candidates: int | None = None,
        plot: bool = True,
    ) -> None:
        super().__init__()
        self.cfg = TopFractionConfig(float(fraction), column, max_candidates, plot)

    @property
    def fraction(self) -> float:
        return self.cfg.fraction

    @property
    def column(self) -> str:
        return self.cfg.column

    def config(self) -> dict[str, Any]:
        # max_candidates and plot do not change which documents are kept (tested): not in the recipe hash
        return {"column": self.cfg.column, "fraction": self.cfg.fraction}

    def max_candidates(self, memory_per_worker: int) -> int:
        return self.cfg.max_candidates or max(1, memory_per_worker // CANDIDATE_BYTES)

    def check_budget(self, memory_per_worker: int) -> None:
        need = self.max_candidates(memory_per_worker) * CANDIDATE_BYTES
        if need > memory_per_worker:
            raise ValueError(f"{self.name}: max_candidates={self.cfg.max_candidates} needs about {need / 2**20:.0f} "
                             f"MiB in the task that sorts them, over --memory-per-worker "
                             f"({memory_per_worker / 2**20:.0f} MiB); lower max_candidates or raise "
                             "--memory-per-worker")

    # -- fit -----------------------------------------------------------------------------------
    def fit(self, ctx: GlobalContext) -> TopFractionState:
        """Radix select over passes. Driver memory: O(2^16 + shards x sources) (a 2^16-bin histogram, summed
        from files ``FAN_IN`` at a time, and a few numbers per shard and source), never per document; the
        candidates (at most ``max_candidates``) are sorted in one task."""
        workdir = ctx.workdir
        storage.makedirs(workdir)
        self.check_budget(ctx.memory_per_worker)
        max_candidates = self.max_candidates(ctx.memory_per_worker)
        n_shards = len(ctx.shards)
        key_paths = [storage.join(workdir, "keys", f"{i:06d}.npz") for i in range(n_shards)]
        items = [Item(s.shard_id, (s.path, kp, self.column, ctx.seed), inputs=(s.path,), outputs=(kp,))
                 for s, kp in zip(ctx.shards, key_paths)]
        keys = ctx.run_pass("keys", _pass_keys, items)
        first = keys.results
        n_total = sum(r["n"] for r in first)
        n_keep = int(math.floor(self.fraction * n_total + 0.5))
        passes = 1
        cut: tuple[int, int] | None = None
        if 0 < n_keep < n_total:
            hist = _sum_hists(ctx, "d0", key_paths, keys)  # the first digit's histograms are in the key files
            cut, extra = self._select(ctx, hist, key_paths, keys, n_keep, n_total, max_candidates)
            passes += extra
        names = sorted({name for r in first for name in r["names"]})
        items = [Item(s.shard_id, (kp, r["names"], None if cut is None else list(cut), n_keep >= n_total))
                 for s, kp, r in zip(ctx.shards, key_paths, first)]
        counts = ctx.run_pass("count", _pass_count, items, after=[keys]).results
        passes += 1
        kept_by_source = {name: sum(c.get(name, 0) for c in counts) for name in names}
        by_source: dict[str, Any] = {}
        hists: dict[str, np.ndarray] = {}
        for name in names:
            parts = [r["by_source"][name] for r in first if name in r["by_source"]]
            n = sum(p["n"] for p in parts)
            hists[name] = np.sum([p["hist"] for p in parts], axis=0)
            by_source[name] = {
                "n": n,
                "kept": kept_by_source[name],
                "kept_fraction": kept_by_source[name] / n if n else None,
                "mean_score": sum(p["sum"] for p in parts) / n if n else None,
                "hist": hists[name].tolist(),
            }
        threshold = _score_of_key(cut[0]) if cut is not None else None
        n_kept = sum(kept_by_source.values())
        summary = {
            "fraction": self.fraction,
            "n_in": n_total,
            "n_target": n_keep,
            "n_kept": n_kept,
            "threshold": threshold,
            "threshold_note": "documents scoring above are kept; at exactly this score ties are cut by id hash",
            "method": "exact distributed radix select",
            "passes": passes,
            "max_candidates": max_candidates,
            "hist_bins": HIST_BINS,
            "by_source": by_source,
        }
        plots: list[str] = []
        if self.cfg.plot and names:
            plots.append(_plot(hists, threshold, self.fraction, storage.join(workdir, "quality_score_hist.png")))
        logger.info("top fraction %.4f of %d docs: keep %d, threshold score %s, %d passes", self.fraction, n_total,
                    n_kept, threshold, passes)
        state = TopFractionState(summary=summary, plots=tuple(plots), fraction=self.fraction, seed=ctx.seed,
                                 n_total=n_total, n_keep=n_keep, keep_all=n_keep >= n_total, cut=cut)
        self._state = state
        return state

    def _select(self, ctx: GlobalContext, hist: np.ndarray, key_paths: list[str], keys: Any, k: int,
                n_total: int, max_candidates: int) -> tuple[tuple[int, int], int]:
        """Radix select of the k-th smallest key; returns (cut key, passes over the shards used)."""
        rank = k  # 1-based rank of the cut key among the docs matching ``prefix``
        prefix: list[int] = []
        candidates = n_total
        passes = 0
        for d in range(_N_DIGITS):
            if candidates <= max_candidates:
                break
            if d > 0:
                outs = [storage.join(ctx.workdir, "hist", f"d{d}", f"{i:06d}.npz") for i in range(len(key_paths))]
                items = [Item(f"{i:06d}", (kp, prefix, d, out), outputs=(out,))
                         for i, (kp, out) in enumerate(zip(key_paths, outs))]
                res = ctx.run_pass(f"hist-d{d}", _pass_hist, items, after=[keys])
                hist = _sum_hists(ctx, f"d{d}", outs, res)
                passes += 1
            cum = np.cumsum(hist)
            v = int(np.searchsorted(cum, rank))
            rank -= int(cum[v - 1]) if v > 0 else 0
            prefix = [*prefix, v]
            candidates = int(hist[v])
        if len(prefix) == _N_DIGITS:  # the prefix is the whole key
            p = (prefix[0] << 16) | prefix[1]
            s = 0
            for v in prefix[2:]:
                s = (s << 16) | v
            return (p, s), passes
        outs = [storage.join(ctx.workdir, "candidates", f"{i:06d}.npz") for i in range(len(key_paths))]
        items = [Item(f"{i:06d}", (kp, prefix, out)) for i, (kp, out) in enumerate(zip(key_paths, outs))]
        gathered = ctx.run_pass("gather", _pass_gather, items, after=[keys])
        passes += 1
        files = [out for out, n in zip(outs, gathered.results) if n]
        (cut,) = ctx.run_pass("cut", _pass_cut, [Item("cut", (files, rank))], after=[gathered]).results
        return (int(cut[0]), int(cut[1])), passes

    # -- apply ---------------------------------------------------------------------------------
    def process(self, table: pa.Table, shard: ShardContext | None = None) -> StageResult:
        state = self.state
        if table.num_rows == 0 or state.keep_all:
            return split_by_reason(table, None)
        if state.cut is None:
            keep = np.zeros(table.num_rows, dtype=bool)
        else:
            scores = _score_column(table, self.column, self.name).cast(pa.float32())
            primary = score_keys(scores.to_numpy(zero_copy_only=False))
            secondary = id_keys(table.column("id").to_pylist(), state.seed)
            keep = _key_le(primary, secondary, *state.cut)
        reasons = pc.if_else(pa.array(keep), pa.scalar(None, pa.string()), REASON_NOT_TOP)
        return split_by_reason(table, reasons)


def _sum_hists(ctx: GlobalContext, name: str, paths: list[str], upstream: Any) -> np.ndarray:
    """The sum of histogram files (``upstream``: the pass that wrote them): reduce passes of ``FAN_IN`` files per
    item while there are more than ``FAN_IN``, then the driver adds the rest one file at a time (O(2^16)
    memory)."""
    level = 0
    while len(paths) > FAN_IN:
        groups = [paths[i : i + FAN_IN] for i in range(0, len(paths), FAN_IN)]
        outs = [storage.join(ctx.workdir, "hist", name, f"sum{level}", f"{g:06d}.npz") for g in range(len(groups))]
        items = [Item(f"{g:06d}", (grp, out), outputs=(out,)) for g, (grp, out) in enumerate(zip(groups, outs))]
        upstream = ctx.run_pass(f"sum-{name}-{level}", _pass_sum, items, after=[upstream])
        paths, level = outs, level + 1
    acc = np.zeros(1 << _DIGIT_BITS, dtype=np.int64)
    for p in paths:
        _add_hist(acc, p)
    return acc


def _score_of_key(primary: int) -> float:
    ascending = np.uint32(~np.uint32(primary))
    bits = np.where(ascending >> np.uint32(31), ascending & np.uint32(0x7FFFFFFF), ~ascending).astype(np.uint32)
    return float(np.array([bits], dtype=np.uint32).view(np.float32)[0])


def _plot(hists: dict[str, np.ndarray], threshold: float | None, fraction: float, path: str) -> str:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(hists)
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    edges = np.linspace(0.0, 1.0, HIST_BINS + 1)
    for ax, name in zip(axes.flat, names):
        h = hists[name]
        ax.bar(edges[:-1], h, width=np.diff(edges), align="edge", color="#4c72b0")
        if threshold is not None:
            ax.axvline(threshold, color="#c44e52", linestyle="--", label=f"cut {threshold:.3f}")
            ax.legend(fontsize=7)
        ax.set_title(f"{name} (n={int(h.sum())})", fontsize=9)
        ax.set_xlabel("quality score")
        ax.set_ylabel("documents")
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.suptitle(f"quality score per source, keep top {fraction:.1%}", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    storage.write_bytes_atomic(path, buf.getvalue())
    return path if not storage.is_local(path) else os.path.abspath(path)
