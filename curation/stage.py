"""The stage contract (DESIGN.md, "Stages and the runner").

A stage works on one Arrow table (a batch of documents) and returns a
:class:`StageResult`: the rows it keeps, plus one record per dropped row with a
short stable reason. The runner owns the loop, the counters and the writers;
subclasses write only the decision:

* :class:`Filter` implements ``decide(table) -> reasons`` (a string array, null
  where the row is kept);
* :class:`Mapper` implements ``transform(table) -> (table, reasons | None)``:
  changes text or adds columns, and may drop rows too (e.g. a line-removal
  modifier that drops a page when it removed too much);
* :class:`GlobalStage` first runs ``fit(ctx)`` over every shard of its input
  (Ray map/reduce passes: dedup, global quantiles), then is applied per shard.

Stages hold configuration and paths only, never open handles or modules, so
they pickle; costly state (models, compiled regexes) is built in ``setup()``,
which the runner calls once per worker process before the first batch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from curation.schema import DROPPED_SCHEMA, QUARANTINE_SCHEMA, text_nbytes


@dataclass
class ShardContext:
    """What a stage may know about the shard it is processing."""

    shard_id: str
    path: str  # the input file of this shard (the original input, not a phase file)
    phase: int = 0


@dataclass
class StageResult:
    kept: pa.Table
    dropped: pa.Table  # DROPPED_SCHEMA
    quarantined: pa.Table | None = None  # QUARANTINE_SCHEMA, rows that made the stage fail

    @property
    def n_dropped(self) -> int:
        return self.dropped.num_rows


def empty_dropped() -> pa.Table:
    return DROPPED_SCHEMA.empty_table()


def empty_quarantine() -> pa.Table:
    return QUARANTINE_SCHEMA.empty_table()


def split_by_reason(table: pa.Table, reasons: pa.Array | pa.ChunkedArray | None) -> StageResult:
    """Split ``table`` into kept rows (null reason) and dropped records."""
    if reasons is None:
        return StageResult(table, empty_dropped())
    if isinstance(reasons, pa.ChunkedArray):
        reasons = reasons.combine_chunks()
    if len(reasons) != table.num_rows:
        raise ValueError(f"{len(reasons)} reasons for {table.num_rows} rows")
    reasons = reasons.cast(pa.string())
    drop_mask = pc.is_valid(reasons)
    n_drop = pc.sum(drop_mask).as_py() or 0
    if n_drop == 0:
        return StageResult(table, empty_dropped())
    kept = table.filter(pc.invert(drop_mask))
    gone = table.filter(drop_mask)
    dropped = pa.table(
        {
            "id": gone.column("id").cast(pa.string()),
            "source": gone.column("source").cast(pa.string()),
            "reason": reasons.filter(drop_mask),
            "nbytes": text_nbytes(gone),
        },
        schema=DROPPED_SCHEMA,
    )
    return StageResult(kept, dropped)


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(_jsonable(v) for v in value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


class Stage:
    """Base class of every stage. Subclasses set ``name`` and implement ``process``."""

    name: str = "stage"
    #: bump when the stage's logic changes so that finished shards are recomputed
    version: str = "1"

    def setup(self) -> None:
        """Load models, compile regexes: called once per worker process."""

    def process(self, table: pa.Table, shard: ShardContext | None = None) -> StageResult:
        raise NotImplementedError

    def __call__(self, table: pa.Table, shard: ShardContext | None = None) -> StageResult:
        return self.process(table, shard)

    def config(self) -> dict[str, Any]:
        """The settings that define this stage's output (feeds the recipe hash).

        Default: every public attribute. Attributes starting with ``_`` are
        runtime state (loaded models, compiled regexes) and are excluded.
        """
        return {k: _jsonable(v) for k, v in sorted(vars(self).items()) if not k.startswith("_")}

    def fingerprint(self) -> dict[str, Any]:
        cls = type(self)
        return {
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "name": self.name,
            "version": self.version,
            "config": self.config(),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config()})"


class Filter(Stage):
    """Keeps or drops rows. Implement ``decide``; the base class builds the result."""

    name = "filter"

    def decide(self, table: pa.Table) -> pa.Array:
        """Return one reason per row (a string array), null where the row is kept."""
        raise NotImplementedError

    def process(self, table: pa.Table, shard: ShardContext | None = None) -> StageResult:
        if table.num_rows == 0:
            return StageResult(table, empty_dropped())
        return split_by_reason(table, self.decide(table))


class Mapper(Stage):
    """Rewrites rows (text, new columns) and may drop some with a reason."""

    name = "mapper"

    def transform(self, table: pa.Table) -> tuple[pa.Table, pa.Array | None]:
        raise NotImplementedError

    def process(self, table: pa.Table, shard: ShardContext | None = None) -> StageResult:
        if table.num_rows == 0:
            return StageResult(table, empty_dropped())
        new, reasons = self.transform(table)
        if new.num_rows != table.num_rows:
            raise ValueError(f"{self.name}: transform must keep the row count")
        return split_by_reason(new, reasons)


@dataclass
class PhaseShard:
    """One shard of a global stage's input: the parquet file the previous phase wrote."""

    shard_id: str
    path: str  # parquet file holding the shard's documents at this point of the recipe
    input_path: str  # the original input file


@dataclass
class GlobalContext:
    """Everything a global stage's ``fit`` needs.

    ``workdir`` is reserved for this fit (its artefacts: band files, removal lists,
    sketches); it is specific to the fit's inputs, so files of an earlier fit over
    other inputs are never read. ``executor`` runs the fit's passes; ``fit_key``
    identifies the fit (the phase's recipe hash and the fingerprints of its input
    shards) and is part of every pass's completion hash. ``memory_per_worker`` is the
    budget of one task: structures that grow with the corpus are partitioned to fit it.
    """

    shards: list[PhaseShard]
    workdir: str
    num_workers: int = 1
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    executor: Any = None  # curation.passes.Executor; None: in-process
    fit_key: str = ""
    memory_per_worker: int = 2 << 30

    def __post_init__(self) -> None:
        if self.executor is None:
            from curation.passes import ExecConfig, Executor

            self.executor = Executor(ExecConfig(mode="local", num_workers=max(1, self.num_workers), progress=False))

    def run_pass(self, name: str, fn: Any, items: list[Any], config: Any = None, **options: Any) -> Any:
        """Run one pass of this fit (:meth:`curation.passes.Executor.run`); returns its ``PassResult``.

        Markers go to ``workdir/_passes/<name>``; ``config`` (what defines the pass's outputs
        beyond each item's own params and inputs) is hashed together with ``fit_key``.
        """
        from curation import storage

        return self.executor.run(name, fn, items, marker_dir=storage.join(self.workdir, "_passes", name),
                                 config={"fit": self.fit_key, "config": config}, **options)


@dataclass(frozen=True)
class FittedState:
    """The typed result of a global stage's fit, saved as JSON by the runner.

    ``summary`` goes to the report (counts, timings); ``plots`` are PNG paths. Subclasses
    add what ``process`` needs (removal-list paths, a cut-off, ...).
    """

    summary: dict[str, Any] = field(default_factory=dict)
    plots: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["plots"] = list(self.plots)
        return _jsonable(out) | {"type": f"{type(self).__module__}.{type(self).__qualname__}"}

    @classmethod
    def from_json(cls, blob: dict[str, Any]) -> FittedState:
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in blob.items() if k in names}
        if "plots" in kwargs:
            kwargs["plots"] = tuple(kwargs["plots"])
        return cls(**kwargs)


class GlobalStage(Stage):
    """A stage that needs to see every shard before it can decide (dedup, top-k).

    ``fit(ctx)`` runs passes over ``ctx.shards`` (``ctx.run_pass``) and returns a
    :class:`FittedState` of the stage's ``state_type``. The runner saves it and, on a
    rerun, restores it with ``load_state`` instead of fitting again; a fit interrupted
    midway resumes at the item (each pass skips its complete items). Then
    ``process(table, shard)`` applies the decision to one shard.
    """

    name = "global"
    state_type: type[FittedState] = FittedState

    def __init__(self) -> None:
        self._state: FittedState | None = None

    def fit(self, ctx: GlobalContext) -> FittedState:
        raise NotImplementedError

    def load_state(self, state: FittedState | dict[str, Any]) -> None:
        """Take a fitted state: the typed object, or its JSON (``state.json``)."""
        if isinstance(state, dict):
            state = self.state_type.from_json(state)
        if not isinstance(state, self.state_type):
            raise TypeError(f"{self.name}: expected a {self.state_type.__name__}, got {type(state).__name__}")
        self._state = state

    @property
    def state(self) -> Any:
        if self._state is None:
            raise RuntimeError(f"{self.name}: process() called before fit()/load_state()")
        return self._state

    def check_budget(self, memory_per_worker: int) -> None:
        """Raise ValueError (naming the setting to change) when this stage cannot work within the budget."""


def recipe_hash(stages: list[Stage], extra: dict[str, Any] | None = None) -> str:
    """A stable hash of the stage list (classes, versions, configs) and extra settings."""
    payload = {"stages": [s.fingerprint() for s in stages], "extra": _jsonable(extra or {})}
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
