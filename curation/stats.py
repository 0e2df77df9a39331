"""One counter API for the whole run (STYLE.md: ``stats.py``).

Counts are kept per stage and per source, for documents and bytes:

    in == kept + sum(dropped[reason]) + sum(quarantined[reason])

holds for every (shard, stage, source), and :func:`check_invariant` asserts it.
Dropped documents are counted under ``dropped/<reason>``; a few example ids are
kept per reason for the report. Shard stats are plain JSON and merge by addition.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.schema import text_nbytes

MAX_EXAMPLES = 5
# log10(bytes) bins for length histograms: 10 bins per decade from 1 B to 10 MB
LENGTH_BINS = np.linspace(0.0, 7.0, 71)


def count_by_source(sources: pa.Array, nbytes: pa.Array) -> dict[str, list[int]]:
    """{source: [rows, bytes]} for parallel arrays (one group-by)."""
    if len(sources) == 0:
        return {}
    t = pa.table({"s": sources, "b": nbytes}).group_by("s").aggregate([("b", "count"), ("b", "sum")])
    return {
        s: [int(c), int(b or 0)]
        for s, c, b in zip(t.column("s").to_pylist(), t.column("b_count").to_pylist(), t.column("b_sum").to_pylist())
    }


def source_groups(table: pa.Table) -> dict[str, list[int]]:
    """{source: [docs, text bytes]} of a document table."""
    return count_by_source(table.column("source"), text_nbytes(table))


def _by_source_reason(sources: pa.Array, reasons: pa.Array, nbytes: pa.Array) -> dict[tuple[str, str], list[int]]:
    if len(sources) == 0:
        return {}
    t = (
        pa.table({"s": sources, "r": reasons, "b": nbytes})
        .group_by(["s", "r"])
        .aggregate([("b", "count"), ("b", "sum")])
    )
    return {
        (s, r): [int(c), int(b or 0)]
        for s, r, c, b in zip(
            t.column("s").to_pylist(),
            t.column("r").to_pylist(),
            t.column("b_count").to_pylist(),
            t.column("b_sum").to_pylist(),
        )
    }


def _blank() -> dict[str, Any]:
    return {"in": 0, "in_bytes": 0, "kept": 0, "kept_bytes": 0, "dropped": {}, "quarantined": {}}


def _add_pair(d: dict[str, list[int]], key: str, pair: list[int]) -> None:
    cur = d.setdefault(key, [0, 0])
    cur[0] += pair[0]
    cur[1] += pair[1]


class StageCounter:
    """Counts for one stage, per source."""

    def __init__(self) -> None:
        self.by_source: dict[str, dict[str, Any]] = {}
        self.examples: dict[str, list[str]] = {}

    def _src(self, source: str) -> dict[str, Any]:
        return self.by_source.setdefault(source, _blank())

    def add_in(self, table: pa.Table | dict[str, list[int]]) -> None:
        """Count a stage's input: a table, or its ``source_groups`` computed once."""
        groups = table if isinstance(table, dict) else source_groups(table)
        for s, (n, b) in groups.items():
            d = self._src(s)
            d["in"] += n
            d["in_bytes"] += b

    def add_in_counts(self, source: str, n: int, nbytes: int) -> None:
        d = self._src(source)
        d["in"] += n
        d["in_bytes"] += nbytes

    def add_kept(self, table: pa.Table | dict[str, list[int]]) -> None:
        groups = table if isinstance(table, dict) else source_groups(table)
        for s, (n, b) in groups.items():
            d = self._src(s)
            d["kept"] += n
            d["kept_bytes"] += b

    def add_dropped(self, dropped: pa.Table) -> None:
        if dropped.num_rows == 0:
            return
        groups = _by_source_reason(dropped.column("source"), dropped.column("reason"), dropped.column("nbytes"))
        for (s, r), pair in groups.items():
            _add_pair(self._src(s)["dropped"], r, pair)
        self._examples(dropped, "dropped")

    def add_quarantined(self, quarantine: pa.Table) -> None:
        if quarantine.num_rows == 0:
            return
        nbytes = pc.binary_length(quarantine.column("raw")).cast(pa.int64())
        nbytes = pc.fill_null(nbytes, 0)
        sources = pc.fill_null(quarantine.column("source"), "unknown")
        groups = _by_source_reason(sources, quarantine.column("reason"), nbytes)
        for (s, r), pair in groups.items():
            _add_pair(self._src(s)["quarantined"], r, pair)
        self._examples(quarantine, "quarantined")

    def _examples(self, table: pa.Table, kind: str) -> None:
        """Keep the first few ids per (source, kind, reason): keys are ``source|kind/reason``."""
        ids = table.column("id").to_pylist()
        reasons = table.column("reason").to_pylist()
        sources = table.column("source").to_pylist()
        for i, r, s in zip(ids, reasons, sources):
            lst = self.examples.setdefault(f"{s or 'unknown'}|{kind}/{r}", [])
            if len(lst) < MAX_EXAMPLES and i is not None:
                lst.append(i)

    def to_json(self) -> dict[str, Any]:
        return {"by_source": self.by_source, "examples": self.examples}


class ShardStats:
    """Stats of one shard over one phase of a recipe (a list of stages)."""

    def __init__(self, shard_id: str, input_path: str, recipe_hash: str, phase: int) -> None:
        self.shard_id = shard_id
        self.input_path = input_path
        self.recipe_hash = recipe_hash
        self.phase = phase
        self.stages: dict[str, StageCounter] = {}
        self.order: list[str] = []
        self.length_hist: dict[str, list[int]] = {}
        self.seconds: dict[str, float] = {}

    def stage(self, name: str) -> StageCounter:
        if name not in self.stages:
            self.stages[name] = StageCounter()
            self.order.append(name)
        return self.stages[name]

    def add_lengths(self, key: str, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        nb = text_nbytes(table).to_numpy(zero_copy_only=False)
        hist, _ = np.histogram(np.log10(np.maximum(nb, 1)), bins=LENGTH_BINS)
        cur = self.length_hist.setdefault(key, [0] * len(hist))
        self.length_hist[key] = [a + int(b) for a, b in zip(cur, hist)]

    def add_time(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def to_json(self) -> dict[str, Any]:
        return {
            "shard": self.shard_id,
            "input": self.input_path,
            "recipe_hash": self.recipe_hash,
            "phase": self.phase,
            "stages": [{"name": n, **self.stages[n].to_json()} for n in self.order],
            "length_hist": self.length_hist,
            "seconds": self.seconds,
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True, indent=1)


def check_invariant(stage_json: dict[str, Any]) -> list[str]:
    """Return the violations of ``in == kept + dropped + quarantined`` (docs) in one stage."""
    errors = []
    for src, d in stage_json["by_source"].items():
        dropped = sum(v[0] for v in d["dropped"].values())
        quarantined = sum(v[0] for v in d["quarantined"].values())
        if d["in"] != d["kept"] + dropped + quarantined:
            errors.append(
                f"stage {stage_json['name']} source {src}: in={d['in']} kept={d['kept']} "
                f"dropped={dropped} quarantined={quarantined}"
            )
    return errors


def merge_stage_json(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge the same stage's counts from several shards."""
    out: dict[str, Any] = {"name": items[0]["name"], "by_source": {}, "examples": {}}
    for item in items:
        for src, d in item["by_source"].items():
            tgt = out["by_source"].setdefault(src, _blank())
            for k in ("in", "in_bytes", "kept", "kept_bytes"):
                tgt[k] += d[k]
            for kind in ("dropped", "quarantined"):
                for r, pair in d[kind].items():
                    _add_pair(tgt[kind], r, pair)
        for r, ids in item["examples"].items():
            lst = out["examples"].setdefault(r, [])
            lst.extend(ids[: max(0, MAX_EXAMPLES - len(lst))])
    return out


def merge_shard_stats(shards: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge shard stats (all phases) into run totals: stages in recipe order."""
    order: list[str] = []
    per_stage: dict[str, list[dict[str, Any]]] = {}
    hist: dict[str, list[int]] = {}
    seconds: dict[str, float] = {}
    for sh in sorted(shards, key=lambda s: (s["phase"], s["shard"])):
        for st in sh["stages"]:
            if st["name"] not in per_stage:
                order.append(st["name"])
                per_stage[st["name"]] = []
            per_stage[st["name"]].append(st)
        for k, h in sh.get("length_hist", {}).items():
            cur = hist.setdefault(k, [0] * len(h))
            hist[k] = [a + b for a, b in zip(cur, h)]
        for k, v in sh.get("seconds", {}).items():
            seconds[k] = seconds.get(k, 0.0) + v
    # Order stages by phase then position: shards of phase p list stages in recipe order.
    stages = [merge_stage_json(per_stage[n]) for n in order]
    totals = {}
    for st in stages:
        t = _blank()
        for d in st["by_source"].values():
            for k in ("in", "in_bytes", "kept", "kept_bytes"):
                t[k] += d[k]
            for kind in ("dropped", "quarantined"):
                for r, pair in d[kind].items():
                    _add_pair(t[kind], r, pair)
        totals[st["name"]] = t
    return {"stages": stages, "totals": totals, "length_hist": hist, "seconds": seconds}
