"""Selecting documents by quality score: a fixed threshold, or the top fraction of the pool.

DCLM-Baseline keeps the top 10% of its pool by the fastText score (Li et al. 2024,
arXiv:2406.11794, section 4.4), a global quantile that no shard can compute alone.

:class:`TopFractionSelect` computes it **exactly** with bounded memory: every document
gets a sort key ``(score descending, blake2b-64(seed, id) ascending)``, so that ties in
the score are broken deterministically and the number of kept documents is exactly
``k = round(fraction * N)`` (unless two rows share both the id and the score, which
are then kept or dropped together). The k-th key is found by a distributed radix
select: one Ray pass writes each shard's keys to ``workdir`` and returns a 2^16-bin
histogram of the key's first 16 bits; the driver picks the bin holding the k-th key
and, while that bin has more than ``max_candidates`` documents, asks for the histogram
of the next 16 bits inside it (at most 6 digits for the 96-bit key); then the
candidates of that bin are gathered and sorted. Driver memory is O(2^16 +
max_candidates) whatever N is; each shard task holds its own shard's keys (12 bytes
per document). Per-shard histograms merge by addition, so this is also a mergeable
summary, but with no approximation error.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation import io as cio
from curation.stage import Filter, GlobalContext, GlobalStage, ShardContext, StageResult, split_by_reason

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


# -- Ray tasks (module-level functions: no captured state) ------------------------------------
def _keys_path(workdir: str, index: int) -> str:
    return cio.join(workdir, "keys", f"{index:06d}.npz")


def _pass_keys(path: str, out_path: str, column: str, seed: int) -> dict[str, Any]:
    """Read one phase shard, save its keys, return its first-digit and report histograms."""
    table = cio.read_parquet(path, columns=["id", "source", column])
    scores = _score_column(table, column, "top_fraction").cast(pa.float32())
    scores_np = scores.to_numpy(zero_copy_only=False).astype(np.float32)  # nulls -> NaN
    primary = score_keys(scores_np)
    secondary = id_keys(table.column("id").to_pylist(), seed)
    src = table.column("source").combine_chunks().dictionary_encode()
    names = [str(x) for x in src.dictionary.to_pylist()]
    codes = src.indices.to_numpy(zero_copy_only=False).astype(np.int32)
    with cio.atomic_open(out_path, "wb") as f:
        np.savez(f, primary=primary, secondary=secondary, codes=codes)
    finite = np.nan_to_num(scores_np, nan=0.0)
    by_source = {}
    for c, name in enumerate(names):
        sel = finite[codes == c]
        hist, _ = np.histogram(np.clip(sel, 0.0, 1.0), bins=HIST_BINS, range=(0.0, 1.0))
        by_source[name] = {"n": int(len(sel)), "sum": float(sel.sum(dtype=np.float64)), "hist": hist.tolist()}
    return {
        "n": int(len(primary)),
        "hist": np.bincount(_digit(primary, secondary, 0), minlength=1 << _DIGIT_BITS),
        "names": names,
        "by_source": by_source,
    }


def _load_keys(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    fs, p = cio.fs_path(path)
    with fs.open(p, "rb") as f:
        z = np.load(f)
        return z["primary"], z["secondary"], z["codes"]


def _pass_hist(path: str, prefix: list[int], digit: int) -> np.ndarray:
    primary, secondary, _ = _load_keys(path)
    mask = _prefix_mask(primary, secondary, prefix)
    return np.bincount(_digit(primary[mask], secondary[mask], digit), minlength=1 << _DIGIT_BITS)


def _pass_gather(path: str, prefix: list[int]) -> tuple[np.ndarray, np.ndarray]:
    primary, secondary, _ = _load_keys(path)
    mask = _prefix_mask(primary, secondary, prefix)
    return primary[mask], secondary[mask]


def _pass_count(path: str, names: list[str], cut: tuple[int, int] | None, keep_all: bool) -> dict[str, int]:
    primary, secondary, codes = _load_keys(path)
    if keep_all:
        kept = np.ones(len(primary), dtype=bool)
    elif cut is None:
        kept = np.zeros(len(primary), dtype=bool)
    else:
        kept = _key_le(primary, secondary, *cut)
    counts = np.bincount(codes[kept], minlength=len(names))
    return {name: int(counts[i]) for i, name in enumerate(names)}


def _run(fn: Any, arg_lists: list[tuple], num_workers: int) -> list[Any]:
    """Run ``fn(*args)`` for each args as Ray tasks, at most ``num_workers`` in flight; ordered results."""
    import ray

    remote = ray.remote(num_cpus=1, max_retries=3)(fn)
    pending: dict[Any, int] = {}
    results: list[Any] = [None] * len(arg_lists)
    limit = max(1, int(num_workers))
    for i, args in enumerate(arg_lists):
        if len(pending) >= limit:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                results[pending.pop(ref)] = ray.get(ref)
        pending[remote.remote(*args)] = i
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            results[pending.pop(ref)] = ray.get(ref)
    return results


class TopFractionSelect(GlobalStage):
    """Keep the top ``fraction`` of all documents by ``column`` (exact; module docstring).

    The kept count is ``round(fraction * N)`` over the N documents reaching the stage
    (ties broken by a seeded hash of the id). Dropped rows get ``quality:not_top_fraction``.
    ``fit`` writes a per-source score histogram PNG into the workdir and puts the
    threshold and the kept fraction per source in ``state["summary"]``.
    """

    name = "quality_top_fraction"
    version = "1"

    def __init__(
        self,
        fraction: float = 0.1,
        column: str = "quality_score",
        max_candidates: int = 1 << 20,
        plot: bool = True,
    ) -> None:
        super().__init__()
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must be in [0, 1], got {fraction}")
        if max_candidates < 1:
            raise ValueError("max_candidates must be >= 1")
        self.fraction = float(fraction)
        self.column = column
        # neither changes which documents are kept (tested), so they stay out of the recipe hash
        self._max_candidates = int(max_candidates)
        self._plot = plot

    # -- fit -----------------------------------------------------------------------------------
    def fit(self, ctx: GlobalContext) -> dict[str, Any]:
        workdir = ctx.workdir
        cio.makedirs(workdir)
        self._check_inputs(ctx)
        key_paths = [_keys_path(workdir, i) for i in range(len(ctx.shards))]
        first = _run(
            _pass_keys,
            [(s.path, kp, self.column, ctx.seed) for s, kp in zip(ctx.shards, key_paths)],
            ctx.num_workers,
        )
        n_total = sum(r["n"] for r in first)
        n_keep = int(math.floor(self.fraction * n_total + 0.5))
        passes = 1
        cut: tuple[int, int] | None = None
        if 0 < n_keep < n_total:
            cut, extra = self._select(first, key_paths, n_keep, n_total, ctx.num_workers)
            passes += extra
        names = sorted({name for r in first for name in r["names"]})
        counts = _run(
            _pass_count,
            [(kp, r["names"], cut, n_keep >= n_total) for kp, r in zip(key_paths, first)],
            ctx.num_workers,
        )
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
            "hist_bins": HIST_BINS,
            "by_source": by_source,
        }
        plots = []
        if self._plot and names:
            plots.append(_plot(hists, threshold, self.fraction, cio.join(workdir, "quality_score_hist.png")))
        logger.info(
            "top fraction %.4f of %d docs: keep %d, threshold score %s, %d passes",
            self.fraction,
            n_total,
            n_kept,
            threshold,
            passes,
        )
        state = {
            "fraction": self.fraction,
            "seed": ctx.seed,
            "n_total": n_total,
            "n_keep": n_keep,
            "keep_all": n_keep >= n_total,
            "cut": list(cut) if cut is not None else None,
            "summary": summary,
            "plots": plots,
        }
        self._state = state
        return state

    def _check_inputs(self, ctx: GlobalContext) -> None:
        """Fail in the driver, with a clear message, before any Ray pass."""
        import pyarrow.parquet as pq

        for shard in ctx.shards:
            fs, p = cio.fs_path(shard.path)
            with fs.open(p, "rb") as f:
                names = pq.read_schema(f).names
            missing = [c for c in ("id", "source", self.column) if c not in names]
            if missing:
                raise ValueError(
                    f"{self.name}: shard {shard.shard_id} lacks column(s) {missing}; "
                    "run QualityScorer before this stage"
                )

    def _select(
        self, first: list[dict[str, Any]], key_paths: list[str], k: int, n_total: int, num_workers: int
    ) -> tuple[tuple[int, int], int]:
        """Radix select of the k-th smallest key; returns (cut key, passes used)."""
        rank = k  # 1-based rank of the cut key among the docs matching ``prefix``
        prefix: list[int] = []
        hist = np.sum([r["hist"] for r in first], axis=0)
        candidates = n_total
        passes = 0
        for d in range(_N_DIGITS):
            if candidates <= self._max_candidates:
                break
            if d > 0:
                hist = np.sum(_run(_pass_hist, [(kp, prefix, d) for kp in key_paths], num_workers), axis=0)
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
        parts = _run(_pass_gather, [(kp, prefix) for kp in key_paths], num_workers)
        passes += 1
        primary = np.concatenate([p for p, _ in parts])
        secondary = np.concatenate([s for _, s in parts])
        order = np.lexsort((secondary, primary))
        i = order[rank - 1]
        return (int(primary[i]), int(secondary[i])), passes

    # -- apply ---------------------------------------------------------------------------------
    def process(self, table: pa.Table, shard: ShardContext | None = None) -> StageResult:
        state = self.state
        if table.num_rows == 0 or state["keep_all"]:
            return split_by_reason(table, None)
        if state["cut"] is None:
            keep = np.zeros(table.num_rows, dtype=bool)
        else:
            scores = _score_column(table, self.column, self.name).cast(pa.float32())
            primary = score_keys(scores.to_numpy(zero_copy_only=False))
            secondary = id_keys(table.column("id").to_pylist(), state["seed"])
            keep = _key_le(primary, secondary, *state["cut"])
        reasons = pc.if_else(pa.array(keep), pa.scalar(None, pa.string()), REASON_NOT_TOP)
        return split_by_reason(table, reasons)


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
    cio.write_bytes_atomic(path, buf.getvalue())
    return path if not cio.is_local(path) else os.path.abspath(path)
