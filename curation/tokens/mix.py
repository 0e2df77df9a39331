"""Mixes: which windows of each curated source go into one token stream, and how often.

A source is a curation run's output directory (``<run>/data/*.parquet``, with
``run.json`` giving its ``recipe_hash``), a folder of parquet files, or a glob.
Each source takes either a *weight* or a *token budget*:

* no weights and no budgets: every window of every source, once;
* weights (all sources): proportions ``w_s / sum(w)``. The total is
  ``total_tokens`` when given (sources repeat when their share exceeds them);
  otherwise the largest total that needs no repetition: the scarcest source
  relative to its weight is used exactly once, the others are subsampled
  (DCLM-style "mix without upsampling");
* budgets (all sources): ``tokens`` per source, upsampled by repetition when a
  budget exceeds what the source holds.

Rehydration (off by default): deduplication keeps one document per duplicate cluster and
records the cluster's size on it (``dup_cluster_size``, filters/dedup). FineWeb-2 found that
putting some of the duplicates back helps ("rehydration"): a document is packed
``copies(dup_cluster_size)`` times, by a step table ``{smallest size: copies}``. The default
table is FineWeb-2's published one (:data:`FINEWEB2_REHYDRATION`: 1 -> 1, 2 -> 2, 3 -> 3,
4 -> 3, 5-99 -> 5, 100-999 -> 8, 1000+ -> 1, the largest clusters being assumed
boilerplate). Copies go in later passes over the shard (see pack.py), never next to each
other; the window mix below then works on the rehydrated windows.

Counts are in windows (``seq_len + 1`` tokens each, the unit of packing), so a
source's share is within one window of its target (largest-remainder rounding).
A source needing ``T`` windows out of ``W`` takes ``T // W`` full copies of
every window plus a seeded random subset of ``T % W`` windows once more; the
manifest reports ``repetitions`` (window copies beyond the first) and
``subsampled_out`` (windows not used).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from curation import storage
from curation.tokens.tokenizer import parquet_files

_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9, "t": 10**12}
#: FineWeb-2's upsampling weights (its README, "Deduplication"): cluster size from -> copies
FINEWEB2_REHYDRATION: tuple[tuple[int, int], ...] = ((1, 1), (2, 2), (3, 3), (5, 5), (100, 8), (1000, 1))
CLUSTER_COLUMN = "dup_cluster_size"


def rehydration_table(spec: Any) -> tuple[tuple[int, int], ...] | None:
    """A step table from ``None`` (off), ``"fineweb2"``, ``"1:1,2:2,5:4"`` (cluster size from : copies), a dict
    or pairs. Sizes start at 1 and rise; copies are >= 1."""
    if spec is None or spec is False:
        return None
    if spec is True or (isinstance(spec, str) and spec.strip().lower() == "fineweb2"):
        return FINEWEB2_REHYDRATION
    if isinstance(spec, str):
        try:
            pairs = [tuple(int(x) for x in part.split(":")) for part in spec.split(",") if part.strip()]
        except ValueError:
            raise ValueError(f"rehydration table {spec!r}: write SIZE:COPIES pairs, e.g. 1:1,2:2,5:4") from None
    elif isinstance(spec, dict):
        pairs = [(int(k), int(v)) for k, v in spec.items()]
    else:
        pairs = [tuple(int(x) for x in p) for p in spec]
    if any(len(p) != 2 for p in pairs) or not pairs:
        raise ValueError(f"rehydration table {spec!r}: write SIZE:COPIES pairs, e.g. 1:1,2:2,5:4")
    table = tuple(sorted((int(a), int(b)) for a, b in pairs))
    sizes = [a for a, _ in table]
    if sizes[0] != 1 or len(set(sizes)) != len(sizes):
        raise ValueError(f"rehydration table {spec!r}: the sizes must start at 1 and differ")
    if any(c < 1 for _, c in table):
        raise ValueError(f"rehydration table {spec!r}: copies must be >= 1 (dedup already removed the rest)")
    return table


def rehydration_copies(sizes: np.ndarray, table: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Copies of each document: the table's entry for the largest size <= its cluster size (null/< 1: size 1)."""
    keys = np.array([a for a, _ in table], dtype=np.int64)
    copies = np.array([b for _, b in table], dtype=np.int64)
    s = np.maximum(np.asarray(sizes, dtype=np.int64), 1)
    return copies[np.searchsorted(keys, s, side="right") - 1]


@dataclass(frozen=True)
class SourceSpec:
    """One input of a mix: a path and either a weight or a token budget (or neither)."""

    path: str
    weight: float | None = None
    tokens: int | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if self.weight is not None and self.tokens is not None:
            raise ValueError(f"{self.path}: give a weight or a token budget, not both")
        if self.weight is not None and (not math.isfinite(self.weight) or self.weight < 0):
            raise ValueError(f"{self.path}: weight must be a finite number >= 0, got {self.weight}")
        if self.tokens is not None and self.tokens < 0:
            raise ValueError(f"{self.path}: token budget must be >= 0, got {self.tokens}")


def parse_count(text: str) -> int:
    """'50M' -> 50_000_000; accepts k/M/B/T suffixes and floats ('1.5e6', '2.5B')."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([kmbgt]?)\s*", text.lower())
    if not m:
        raise ValueError(f"not a token count: {text!r} (examples: 5000000, 5M, 2.5B)")
    return int(round(float(m.group(1)) * _SUFFIX[m.group(2)]))


def parse_source(arg: str) -> SourceSpec:
    """CLI form: ``DIR`` | ``DIR:WEIGHT`` | ``DIR:=TOKENS`` (e.g. ``runs/web:0.7``, ``runs/code:=50M``)."""
    path, sep, spec = arg.rpartition(":")
    if not sep or not spec or "/" in spec:
        return SourceSpec(arg)
    if spec.startswith("="):
        return SourceSpec(path, tokens=parse_count(spec[1:]))
    try:
        return SourceSpec(path, weight=float(spec))
    except ValueError:
        return SourceSpec(arg)  # a colon that is part of the path


def as_specs(sources: Any) -> list[SourceSpec]:
    """Normalise the forms build_token_stream accepts into SourceSpecs.

    ``"dir"``, ``["dir", ...]``, ``[("dir", weight), ...]``, ``{"dir": weight}``,
    ``[SourceSpec, ...]`` or dicts ``{"path", "weight"|"tokens", "name"}``.
    """
    if isinstance(sources, (str, SourceSpec)):
        sources = [sources]
    if isinstance(sources, dict):
        sources = list(sources.items())
    specs: list[SourceSpec] = []
    for s in sources:
        if isinstance(s, SourceSpec):
            specs.append(s)
        elif isinstance(s, str):
            specs.append(SourceSpec(s))
        elif isinstance(s, dict):
            specs.append(SourceSpec(s["path"], s.get("weight"), s.get("tokens"), s.get("name")))
        elif isinstance(s, (tuple, list)) and len(s) == 2:
            w = s[1]
            specs.append(SourceSpec(s[0], weight=None if w is None else float(w)))
        else:
            raise ValueError(f"cannot read a source from {s!r}")
    if not specs:
        raise ValueError("no sources given")
    has_w = [s.weight is not None for s in specs]
    has_t = [s.tokens is not None for s in specs]
    if any(has_w) and not all(has_w):
        raise ValueError("give a weight to every source or to none (weights and token budgets do not mix)")
    if any(has_t) and not all(has_t):
        raise ValueError("give a token budget to every source or to none")
    if any(has_w) and sum(s.weight or 0 for s in specs) <= 0:
        raise ValueError("the weights sum to zero")
    explicit = [s.name for s in specs if s.name]
    if len(set(explicit)) != len(explicit):
        raise ValueError(f"two sources share a name: {explicit}")
    return specs


def source_name(spec: SourceSpec, index: int) -> str:
    if spec.name:
        return spec.name
    base = spec.path.rstrip("/").rsplit("/", 1)[-1]
    return base if base and "*" not in base else f"source{index}"


def source_names(specs: list[SourceSpec]) -> list[str]:
    """Names for the manifest: the given name, else the folder's name; repeated names get ``-<index>``."""
    names = [source_name(s, i) for i, s in enumerate(specs)]
    return [n if names.count(n) == 1 or s.name else f"{n}-{i}" for i, (n, s) in enumerate(zip(names, specs))]


def resolve_source(spec: SourceSpec) -> dict[str, Any]:
    """Files and provenance of one source: parquet shards and the run's recipe hash (null if no run.json)."""
    files = parquet_files([spec.path])
    run_json = storage.join(spec.path, "run.json")
    recipe_hash = None
    if storage.exists(run_json):
        try:
            recipe_hash = storage.read_json(run_json).get("recipe_hash")
        except Exception as e:
            raise ValueError(f"{run_json}: unreadable ({e})") from e
    return {"path": spec.path, "files": files, "recipe_hash": recipe_hash}


def largest_remainder(shares: np.ndarray, total: int) -> np.ndarray:
    """Integers summing to ``total``, each within 1 of ``shares * total`` (shares sum to 1)."""
    exact = shares * total
    out = np.floor(exact).astype(np.int64)
    short = total - int(out.sum())
    if short > 0:
        # ties broken by source order (np.argsort stable on the negated fractional part)
        out[np.argsort(-(exact - out), kind="stable")[:short]] += 1
    return out


def target_windows(
    specs: list[SourceSpec], available: list[int], seq_len: int, total_tokens: int | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Windows to take from each source, and the normalised weights (None when no weights)."""
    avail = np.asarray(available, dtype=np.int64)
    window = seq_len + 1
    if specs[0].tokens is not None:
        if total_tokens is not None:
            raise ValueError("total_tokens applies to weights, not to per-source token budgets")
        return np.array([round(s.tokens / window) for s in specs], dtype=np.int64), None
    if specs[0].weight is None:
        if total_tokens is not None:
            shares = avail / max(1, avail.sum())
            return largest_remainder(shares, round(total_tokens / window)), shares
        return avail.copy(), None
    w = np.array([s.weight for s in specs], dtype=np.float64)
    shares = w / w.sum()
    if total_tokens is not None:
        total = round(total_tokens / window)
    else:
        pos = shares > 0
        if np.any(avail[pos] == 0):
            raise ValueError("a source with a positive weight holds no full window; give total_tokens to upsample")
        total = int(np.floor(np.min(avail[pos] / shares[pos]) + 1e-9))
    return largest_remainder(shares, total), shares


def extra_windows(seed: int, source: int, available: int, extra: int) -> np.ndarray:
    """Seeded choice of ``extra`` distinct window indices in [0, available), sorted."""
    if extra == 0:
        return np.empty(0, dtype=np.int64)
    rng = np.random.default_rng([seed, source, 0x6D6978])
    return np.sort(rng.choice(available, size=extra, replace=False)).astype(np.int64)
