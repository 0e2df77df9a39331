"""The Ray shard runner: one task per input shard, resumable, exactly-once outputs.

A recipe is a list of stages. The runner splits it at every :class:`GlobalStage`
into *phases*: phase 0 reads the input files and applies the stages before the
first global stage; each later phase starts by fitting its global stage over all
shards of the previous phase (Ray map/reduce inside ``fit``), then applies it and
the stages after it to every shard. The unit of work is always one input shard,
so results never depend on Ray's block layout or the number of workers.

Layout of a run directory::

    run.json                     recipe, inputs, recipe hash, status
    data/<shard>.parquet         final documents (last phase)
    phases/p<k>/<shard>.parquet  documents between phases (inputs of global stages)
    dropped/p<k>/<shard>.parquet id, source, stage, reason, nbytes of every dropped doc
    quarantine/p<k>/<shard>.parquet  bad input / rows that made a stage fail
    stats/p<k>/<shard>.json      per-shard, per-stage counts; written last = completion marker
    global/<i>_<name>/           a global stage's artefacts and state.json
    stats.json, report.md, *.png merged stats and the report (curation.report)

Exactly once: every output is written under a temporary name and renamed into
place, the shard's stats last. A rerun skips a shard whose stats carry the same
phase hash (the hash of the reader settings and every stage up to the end of that
phase), and recomputes it otherwise, so a recipe change invalidates exactly the
phases it touches. A worker killed mid-shard is retried by Ray (``max_retries``);
a killed driver is simply rerun.

Set-up once per worker process: stages are shipped with ``ray.put`` once per
phase; the first task of a phase in a worker process keeps its deserialised copy,
calls ``setup()`` on every stage, and later tasks of that phase in the same
process reuse it (``_WORKER_CACHE``). Plain tasks (rather than an actor pool) keep
Ray's automatic retry on worker death and let Ray place work freely.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curation import io
from curation.readers.base import DEFAULT_BATCH_SIZE, DEFAULT_MAX_DOC_BYTES, RAW_SNIPPET_BYTES
from curation.schema import DOC_SCHEMA, DROPPED_SCHEMA, QUARANTINE_SCHEMA
from curation.stage import (
    GlobalContext,
    GlobalStage,
    PhaseShard,
    ShardContext,
    Stage,
    StageResult,
    empty_dropped,
    recipe_hash,
)
from curation.stats import ShardStats, check_invariant, count_by_source, merge_shard_stats, source_groups

logger = logging.getLogger(__name__)

READ_STAGE = "read"


@dataclass
class InputSpec:
    """One input file and how to read it."""

    path: str
    format: str | None = None  # None: detected from the path
    source: str | None = None  # None: the reader's default source name

    @property
    def shard_id(self) -> str:
        base = os.path.basename(self.path.rstrip("/"))
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", base)[:80]
        digest = hashlib.sha1(self.path.encode()).hexdigest()[:8]
        return f"{stem}-{digest}"


@dataclass
class RunConfig:
    output_dir: str
    num_workers: int = 2
    address: str | None = None
    resume: bool = True
    batch_size: int = DEFAULT_BATCH_SIZE
    max_doc_bytes: int = DEFAULT_MAX_DOC_BYTES
    limit: int | None = None  # documents read per shard (a laptop sample)
    seed: int = 0
    max_retries: int = 3
    progress: bool = True
    dashboard: bool = False
    report: bool = True
    reader_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunResult:
    output_dir: str
    recipe_hash: str
    stats: dict[str, Any]
    failed_shards: list[str]
    skipped_shards: int
    processed_shards: int
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.failed_shards


# ---------------------------------------------------------------------------------------------
# phases


@dataclass
class Phase:
    index: int
    stages: list[Stage]  # the global stage (if any) comes first
    hash: str
    global_stage: GlobalStage | None = None
    state_digest: str = ""  # the fitted global state this phase applies (part of shard completeness)


def split_phases(stages: list[Stage], base: dict[str, Any]) -> list[Phase]:
    """Split a recipe at its global stages; each phase's hash covers everything up to its end."""
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"stage names must be unique within a recipe; repeated: {dup}")
    groups: list[list[Stage]] = [[]]
    for st in stages:
        if isinstance(st, GlobalStage) and groups[-1]:
            groups.append([])
        groups[-1].append(st)
    phases, upto = [], []
    for i, grp in enumerate(groups):
        upto = upto + grp
        g = grp[0] if grp and isinstance(grp[0], GlobalStage) else None
        phases.append(Phase(i, grp, recipe_hash(upto, base), g))
    if phases[0].global_stage is not None:
        # A recipe that starts with a global stage needs a plain read phase before it.
        phases.insert(0, Phase(0, [], recipe_hash([], base), None))
        for j, ph in enumerate(phases):
            ph.index = j
    return phases


# ---------------------------------------------------------------------------------------------
# the shard task


@dataclass
class ShardTask:
    spec: InputSpec
    phase: int
    phase_hash: str
    input_path: str  # the raw input (phase 0) or the previous phase's parquet
    output_path: str
    dropped_path: str
    quarantine_path: str
    stats_path: str
    batch_size: int
    max_doc_bytes: int
    limit: int | None
    reader_options: dict[str, Any]
    final: bool = False
    input_fingerprint: str = ""


_WORKER_CACHE: dict[str, list[Stage]] = {}


def _worker_stages(phase_hash: str, stages: list[Stage]) -> list[Stage]:
    cached = _WORKER_CACHE.get(phase_hash)
    if cached is None:
        for st in stages:
            st.setup()
        _WORKER_CACHE.clear()  # one phase at a time: free the previous phase's models
        _WORKER_CACHE[phase_hash] = cached = stages
    return cached


def _quarantine_rows(table: pa.Table, stage: str, reason: str, file: str) -> pa.Table:
    texts = table.column("text").to_pylist()
    raw = [t.encode("utf-8", "replace")[:RAW_SNIPPET_BYTES] if isinstance(t, str) else None for t in texts]
    n = table.num_rows
    return pa.table(
        {
            "file": pa.array([file] * n, pa.string()),
            "position": pa.array([-1] * n, pa.int64()),
            "reason": pa.array([reason] * n, pa.string()),
            "stage": pa.array([stage] * n, pa.string()),
            "source": table.column("source").cast(pa.string()),
            "id": table.column("id").cast(pa.string()),
            "raw": pa.array(raw, pa.large_binary()),
        },
        schema=QUARANTINE_SCHEMA,
    )


def apply_stage(stage: Stage, table: pa.Table, shard: ShardContext) -> StageResult:
    """Apply one stage to a batch; rows that make it raise are quarantined, not fatal.

    The batch is tried whole first; on an exception each row is retried alone so
    that one bad document costs only itself. The accounting identity is checked.
    """
    try:
        result = stage(table, shard)
    except Exception as exc:  # noqa: BLE001 - isolated per row below
        logger.warning("stage %s failed on a batch of %d (%r); retrying row by row", stage.name, table.num_rows, exc)
        kept, dropped, quarantined = [], [], []
        for i in range(table.num_rows):
            row = table.slice(i, 1)
            try:
                r = stage(row, shard)
            except Exception as row_exc:  # noqa: BLE001
                reason = f"stage_error:{stage.name}:{type(row_exc).__name__}"
                quarantined.append(_quarantine_rows(row, stage.name, reason, shard.path))
                continue
            kept.append(r.kept)
            dropped.append(r.dropped)
            if r.quarantined is not None:
                quarantined.append(r.quarantined)
        kept_t = pa.concat_tables(kept, promote_options="permissive") if kept else table.slice(0, 0)
        result = StageResult(
            kept_t,
            pa.concat_tables(dropped) if dropped else empty_dropped(),
            pa.concat_tables(quarantined) if quarantined else None,
        )
    n_q = result.quarantined.num_rows if result.quarantined is not None else 0
    if result.kept.num_rows + result.dropped.num_rows + n_q != table.num_rows:
        raise RuntimeError(
            f"stage {stage.name} broke the accounting: in={table.num_rows} kept={result.kept.num_rows} "
            f"dropped={result.dropped.num_rows} quarantined={n_q}"
        )
    return result


def _read_batches(task: ShardTask) -> Iterator[tuple[pa.Table, pa.Table, pa.Table]]:
    """(docs, quarantine, dropped) batches of the shard's input for this phase (``dropped``: records
    the reader recognised as not documents, e.g. a WARC file's request records)."""
    if task.phase > 0:
        for batch in io.iter_parquet_batches(task.input_path, batch_size=task.batch_size):
            yield pa.Table.from_batches([batch]), QUARANTINE_SCHEMA.empty_table(), empty_dropped()
        return
    from curation.readers import get_reader

    reader = get_reader(
        task.spec.path,
        format=task.spec.format,
        source=task.spec.source,
        batch_size=task.batch_size,
        max_doc_bytes=task.max_doc_bytes,
        **task.reader_options,
    )
    n_docs = 0
    try:
        for docs, quarantine, dropped in reader.read_with_dropped(task.spec.path):
            if task.limit is not None and n_docs + docs.num_rows >= task.limit:
                yield docs.slice(0, task.limit - n_docs), quarantine, dropped
                return
            n_docs += docs.num_rows
            yield docs, quarantine, dropped
    except Exception as exc:  # noqa: BLE001 - a reader bug must not kill the run
        logger.exception("reader failed on %s after %d documents", task.spec.path, n_docs)
        q = pa.table(
            {
                "file": [task.spec.path],
                "position": [n_docs],
                "reason": [f"read_error:{type(exc).__name__}"],
                "stage": [READ_STAGE],
                "source": [reader.source],
                "id": [None],
                "raw": [str(exc).encode()[:RAW_SNIPPET_BYTES]],
            },
            schema=QUARANTINE_SCHEMA,
        )
        yield DOC_SCHEMA.empty_table(), q, empty_dropped()


def canonical_schema(schema: pa.Schema) -> pa.Schema:
    """The document columns exactly as DOC_SCHEMA declares them (types and nullability),
    every added column nullable, no schema metadata: so that every shard of a run has
    the same schema whichever stage rebuilt which column."""
    fields = []
    for f in schema:
        if f.name in DOC_SCHEMA.names:
            fields.append(DOC_SCHEMA.field(f.name))
        else:
            fields.append(pa.field(f.name, f.type, nullable=True))
    return pa.schema(fields)


class _ParquetSink:
    """Streams tables into one parquet file under a temporary name; ``close`` renames it."""

    def __init__(self, path: str, schema: pa.Schema | None = None) -> None:
        self.path = path
        self.schema = schema
        self._cm = None
        self._writer: pq.ParquetWriter | None = None
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            self.schema = self.schema or canonical_schema(table.schema)
            self._cm = io.atomic_open(self.path, "wb")
            f = self._cm.__enter__()
            opts = dict(io.PARQUET_OPTIONS)
            if "source" not in self.schema.names:
                opts.pop("use_dictionary")
            self._writer = pq.ParquetWriter(f, self.schema, **opts)
        if table.schema != self.schema:
            table = table.select(self.schema.names).cast(self.schema)
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self, empty_schema: pa.Schema) -> None:
        if self._writer is None:
            self.write(empty_schema.empty_table())
        self._writer.close()
        self._cm.__exit__(None, None, None)

    def abort(self) -> None:
        if self._cm is not None:
            try:
                if self._writer is not None:
                    self._writer.close()
            finally:
                self._cm.__exit__(RuntimeError, RuntimeError("aborted"), None)


def run_shard(task: ShardTask, stages: list[Stage]) -> dict[str, Any]:
    """Process one shard through one phase; returns its stats (also written to disk, last)."""
    stages = _worker_stages(task.phase_hash, stages)
    ctx = ShardContext(shard_id=task.spec.shard_id, path=task.spec.path, phase=task.phase)
    stats = ShardStats(task.spec.shard_id, task.spec.path, task.phase_hash, task.phase)
    out = _ParquetSink(task.output_path)
    dropped_sink = _ParquetSink(task.dropped_path, DROPPED_SCHEMA.append(pa.field("stage", pa.string())))
    quarantine_sink = _ParquetSink(task.quarantine_path, QUARANTINE_SCHEMA)
    last_schema: pa.Schema | None = None
    try:
        for docs, quarantine, read_dropped in _read_batches(task):
            if task.phase == 0:
                t0 = time.perf_counter()
                read = stats.stage(READ_STAGE)
                groups = source_groups(docs)
                read.add_in(groups)
                read.add_kept(groups)
                if quarantine.num_rows:
                    for src, (n, nbytes) in _count_raw(quarantine).items():
                        read.add_in_counts(src, n, nbytes)
                    read.add_quarantined(quarantine)
                    quarantine_sink.write(quarantine)
                if read_dropped.num_rows:
                    for src, (n, nbytes) in count_by_source(read_dropped.column("source"),
                                                            read_dropped.column("nbytes")).items():
                        read.add_in_counts(src, n, nbytes)
                    read.add_dropped(read_dropped)
                    dropped_sink.write(read_dropped.append_column(
                        "stage", pa.array([READ_STAGE] * read_dropped.num_rows, pa.string())))
                stats.add_lengths("in", docs)
                stats.add_time(READ_STAGE, time.perf_counter() - t0)
            table = docs
            groups = source_groups(docs) if task.phase > 0 else groups
            for st in stages:
                t0 = time.perf_counter()
                counter = stats.stage(st.name)
                counter.add_in(groups)
                res = apply_stage(st, table, ctx)
                # the kept rows are the next stage's input: count them once for both
                if not _same_rows_and_text(res.kept, table):
                    groups = source_groups(res.kept)
                counter.add_kept(groups)
                counter.add_dropped(res.dropped)
                if res.dropped.num_rows:
                    d = res.dropped.append_column("stage", pa.array([st.name] * res.dropped.num_rows, pa.string()))
                    dropped_sink.write(d)
                if res.quarantined is not None and res.quarantined.num_rows:
                    counter.add_quarantined(res.quarantined)
                    quarantine_sink.write(res.quarantined)
                table = res.kept
                stats.add_time(st.name, time.perf_counter() - t0)
                if table.num_rows == 0:
                    # keep the counters of later stages present (with zeros) for the report
                    for later in stages[stages.index(st) + 1 :]:
                        stats.stage(later.name)
                    break
            if table.num_rows:
                last_schema = table.schema
                out.write(table)
                if task.final:
                    stats.add_lengths("out", table)
        out.close(last_schema or DOC_SCHEMA)
        dropped_sink.close(dropped_sink.schema)
        quarantine_sink.close(QUARANTINE_SCHEMA)
    except BaseException:
        for s in (out, dropped_sink, quarantine_sink):
            s.abort()
        raise
    blob = stats.to_json()
    blob["output_rows"] = out.rows
    blob["output"] = task.output_path
    blob["input_fingerprint"] = task.input_fingerprint
    for st in blob["stages"]:
        errors = check_invariant(st)
        if errors:
            raise RuntimeError("; ".join(errors))
    io.write_json_atomic(task.stats_path, blob)
    return blob


def _same_rows_and_text(a: pa.Table, b: pa.Table) -> bool:
    """True when ``a`` holds exactly ``b``'s rows with the very same text and source buffers."""
    if a.num_rows != b.num_rows:
        return False
    for name in ("text", "source"):
        x, y = a.column(name), b.column(name)
        if x.num_chunks != y.num_chunks:
            return False
        for cx, cy in zip(x.chunks, y.chunks):
            if cx.offset != cy.offset or len(cx) != len(cy):
                return False
            addresses = [[buf.address if buf else 0 for buf in c.buffers()] for c in (cx, cy)]
            if addresses[0] != addresses[1]:
                return False
    return True


def _count_raw(quarantine: pa.Table) -> dict[str, list[int]]:
    """{source: [records, raw bytes]} of quarantine records (the read stage's input)."""
    nbytes = pc.fill_null(pc.binary_length(quarantine.column("raw")).cast(pa.int64()), 0)
    return count_by_source(pc.fill_null(quarantine.column("source"), "unknown"), nbytes)


# ---------------------------------------------------------------------------------------------
# the driver


def _git_commit() -> str | None:
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except Exception:  # noqa: BLE001
        return None


# rough compression ratios of text: the work of a shard follows its uncompressed size
_EXPANSION = {".gz": 3.5, ".zst": 4.0, ".zstd": 4.0, ".parquet": 3.0, ".bz2": 4.0, ".xz": 4.0}


def _size(path: str) -> float:
    """Estimated uncompressed bytes of a shard (file size times a typical compression ratio)."""
    try:
        fs, p = io.fs_path(path)
        size = int(fs.info(p).get("size") or 0)
    except (OSError, ValueError):
        return 0.0
    return size * _EXPANSION.get(os.path.splitext(p)[1].lower(), 1.0)


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _is_complete(task: ShardTask) -> bool:
    if not io.exists(task.stats_path) or not io.exists(task.output_path):
        return False
    try:
        blob = io.read_json(task.stats_path)
    except Exception:  # noqa: BLE001 - a torn or foreign file: recompute
        return False
    return (
        blob.get("recipe_hash") == task.phase_hash
        and blob.get("input") == task.spec.path
        and blob.get("input_fingerprint") == task.input_fingerprint
    )


class Runner:
    """Runs a recipe (a list of stages) over input files on Ray."""

    def __init__(self, stages: list[Stage], inputs: list[InputSpec], config: RunConfig) -> None:
        if not inputs:
            raise ValueError("no input files")
        ids = [s.shard_id for s in inputs]
        if len(set(ids)) != len(ids):
            raise ValueError("the same input file is listed twice")
        self.stages = stages
        self.inputs = sorted(inputs, key=lambda s: s.path)
        self.cfg = config
        base = {
            "reader": {"batch_size": config.batch_size, "max_doc_bytes": config.max_doc_bytes, "limit": config.limit,
                       "options": config.reader_options},
            "seed": config.seed,
        }
        self.phases = split_phases(stages, base)
        self.recipe_hash = self.phases[-1].hash
        self.out = config.output_dir

    # paths ---------------------------------------------------------------------------------
    def _phase_output(self, phase: int, shard: str) -> str:
        if phase == len(self.phases) - 1:
            return io.join(self.out, "data", f"{shard}.parquet")
        return io.join(self.out, "phases", f"p{phase}", f"{shard}.parquet")

    def _task(self, spec: InputSpec, phase: Phase) -> ShardTask:
        sid = spec.shard_id
        input_path = spec.path if phase.index == 0 else self._phase_output(phase.index - 1, sid)
        try:
            fp = io.fingerprint(input_path)
        except (FileNotFoundError, OSError):
            fp = "missing"  # the reader quarantines it as unreadable_file
        if phase.state_digest:
            fp += "|state:" + phase.state_digest
        return ShardTask(
            spec=spec,
            phase=phase.index,
            phase_hash=phase.hash,
            input_fingerprint=fp,
            input_path=input_path,
            output_path=self._phase_output(phase.index, sid),
            dropped_path=io.join(self.out, "dropped", f"p{phase.index}", f"{sid}.parquet"),
            quarantine_path=io.join(self.out, "quarantine", f"p{phase.index}", f"{sid}.parquet"),
            stats_path=io.join(self.out, "stats", f"p{phase.index}", f"{sid}.json"),
            batch_size=self.cfg.batch_size,
            max_doc_bytes=self.cfg.max_doc_bytes,
            limit=self.cfg.limit,
            reader_options=self.cfg.reader_options,
            final=phase.index == len(self.phases) - 1,
        )

    # running -------------------------------------------------------------------------------
    def validate(self) -> None:
        """Fail fast, before any shard runs (missing models, bad settings)."""
        for st in self.stages:
            check = getattr(st, "validate", None)
            if callable(check):
                check()

    def run(self) -> RunResult:
        import ray

        from curation.ray_utils import init_ray

        t_start = time.time()
        self.validate()
        io.makedirs(self.out)
        meta = {
            "recipe_hash": self.recipe_hash,
            "phases": [{"index": p.index, "hash": p.hash, "stages": [s.name for s in p.stages]} for p in self.phases],
            "stages": [s.fingerprint() for s in self.stages],
            "inputs": [asdict(s) | {"shard_id": s.shard_id} for s in self.inputs],
            "config": {k: v for k, v in asdict(self.cfg).items() if k not in ("address",)},
            "git_commit": _git_commit(),
            "status": "running",
            "started": t_start,
        }
        io.write_json_atomic(io.join(self.out, "run.json"), meta)
        init_ray(self.cfg.address, self.cfg.num_workers, dashboard=self.cfg.dashboard)
        remote = ray.remote(run_shard).options(num_cpus=1, max_retries=self.cfg.max_retries, retry_exceptions=False)

        failed: list[str] = []
        skipped = processed = 0
        shard_stats: list[dict[str, Any]] = []
        for phase in self.phases:
            if phase.global_stage is not None:
                if failed:
                    logger.error("not fitting %s: %d shards failed in an earlier phase", phase.global_stage.name,
                                 len(failed))
                    break
                self._fit_global(phase)
            tasks = [self._task(spec, phase) for spec in self.inputs]
            todo = []
            for t in tasks:
                if self.cfg.resume and _is_complete(t):
                    shard_stats.append(io.read_json(t.stats_path))
                    skipped += 1
                else:
                    todo.append(t)
            if todo:
                # largest shards first (longest-processing-time order): the run does not end
                # with one worker busy on a big shard while the others idle; outputs do not
                # depend on the order
                todo.sort(key=lambda t: (-_size(t.input_path), t.spec.shard_id))
                stages_ref = ray.put(phase.stages)
                results, bad = self._submit(remote, todo, stages_ref, phase)
                shard_stats.extend(results)
                failed.extend(bad)
                processed += len(todo) - len(bad)
            self._harmonise_empty_outputs(tasks)
            logger.info("phase %d: %d shards run, %d skipped (complete), %d failed so far", phase.index,
                        len(todo), len(tasks) - len(todo), len(failed))

        if not failed:
            self._remove_stale_temporaries()
        merged = merge_shard_stats(shard_stats)
        merged["recipe_hash"] = self.recipe_hash
        merged["failed_shards"] = failed
        merged["global"] = self._global_summaries()
        io.write_json_atomic(io.join(self.out, "stats.json"), merged)
        meta.update(status="failed" if failed else "complete", finished=time.time(), failed_shards=failed)
        io.write_json_atomic(io.join(self.out, "run.json"), meta)
        if self.cfg.report:
            from curation.report import write_report

            write_report(self.out)
        return RunResult(self.out, self.recipe_hash, merged, failed, skipped, processed, time.time() - t_start)

    def _submit(self, remote, todo: list[ShardTask], stages_ref, phase: Phase) -> tuple[list[dict], list[str]]:
        import ray

        from curation.progress import Progress

        max_in_flight = max(1, self.cfg.num_workers)
        pending: dict[Any, ShardTask] = {}
        results: list[dict] = []
        failed: list[str] = []
        queue = list(todo)
        bar = Progress(len(todo), f"phase {phase.index}/{len(self.phases) - 1}", enabled=self.cfg.progress)
        while queue or pending:
            while queue and len(pending) < max_in_flight:
                t = queue.pop(0)
                pending[remote.remote(t, stages_ref)] = t
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                t = pending.pop(ref)
                try:
                    blob = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - logged, reported, rerun fixes
                    logger.error("shard %s failed after retries: %s", t.spec.shard_id, exc)
                    failed.append(t.spec.shard_id)
                    bar.update(0, failed=True)
                    continue
                results.append(blob)
                docs = blob["stages"][0]["by_source"] if blob["stages"] else {}
                bar.update(sum(d["in"] for d in docs.values()))
        bar.close()
        return results, failed

    def _fit_global(self, phase: Phase) -> None:
        g = phase.global_stage
        assert g is not None
        workdir = io.join(self.out, "global", f"{phase.index:02d}_{g.name}")
        state_path = io.join(workdir, "state.json")
        prev = phase.index - 1
        shards = [
            PhaseShard(s.shard_id, self._phase_output(prev, s.shard_id), s.path)
            for s in self.inputs
        ]
        # the fit is reused only for the same recipe over the same (unchanged) phase inputs
        inputs = {s.shard_id: io.fingerprint(s.path) for s in shards}
        if self.cfg.resume and io.exists(state_path):
            saved = io.read_json(state_path)
            if saved.get("hash") == phase.hash and saved.get("inputs") == inputs:
                logger.info("global stage %s: reusing the fitted state", g.name)
                g.load_state(saved["state"])
                phase.state_digest = _digest({"state": saved["state"], "inputs": inputs})
                return
        ctx = GlobalContext(shards=shards, workdir=workdir, num_workers=self.cfg.num_workers, seed=self.cfg.seed)
        io.makedirs(workdir)
        logger.info("global stage %s: fitting over %d shards", g.name, len(shards))
        t0 = time.time()
        state = g.fit(ctx)
        g.load_state(state)
        io.write_json_atomic(state_path, {"hash": phase.hash, "inputs": inputs, "state": state,
                                          "seconds": time.time() - t0})
        # a fit over changed inputs invalidates every shard of the phase that applies it
        # (its artefact files may change under the same names)
        phase.state_digest = _digest({"state": state, "inputs": inputs})

    def _harmonise_empty_outputs(self, tasks: list[ShardTask]) -> None:
        """Give shards that kept no document the same columns as the others.

        A shard whose rows were all dropped before a stage that adds columns (``lang``,
        ``quality_score``) would otherwise carry fewer columns than its siblings, and a
        reader of the whole output (pyarrow.dataset, HF datasets) would reject the mix.
        """
        schemas: dict[str, pa.Schema] = {}
        rows: dict[str, int] = {}
        for t in tasks:
            if io.exists(t.output_path):
                fs, path = io.fs_path(t.output_path)
                with fs.open(path, "rb") as f:
                    meta = pq.ParquetFile(f).metadata
                    schemas[t.output_path] = meta.schema.to_arrow_schema()
                    rows[t.output_path] = meta.num_rows
        full = [schemas[p] for p in sorted(schemas) if rows[p] > 0]
        if not full:
            return
        ref = full[0]
        for p, sch in sorted(schemas.items()):
            if rows[p] == 0 and not sch.equals(ref):
                io.write_parquet_atomic(p, ref.empty_table())

    def _remove_stale_temporaries(self) -> None:
        """Delete ``*.tmp-*`` files that killed writers left behind (they are never read)."""
        if not io.is_local(self.out):
            return
        for dirpath, _, files in os.walk(self.out):
            for f in files:
                if ".tmp-" in f:
                    os.remove(os.path.join(dirpath, f))

    def _global_summaries(self) -> list[dict[str, Any]]:
        out = []
        for phase in self.phases:
            g = phase.global_stage
            if g is None:
                continue
            state_path = io.join(self.out, "global", f"{phase.index:02d}_{g.name}", "state.json")
            if io.exists(state_path):
                saved = io.read_json(state_path)
                st = saved.get("state", {})
                out.append({"name": g.name, "summary": st.get("summary", {}), "plots": st.get("plots", []),
                            "seconds": saved.get("seconds")})
        return out


def run_recipe(stages: list[Stage], inputs: list[InputSpec] | list[str], output_dir: str, **config: Any) -> RunResult:
    """Convenience wrapper: ``run_recipe(stages, ["data/*.jsonl.zst"], "out/run1", num_workers=2)``."""
    specs: list[InputSpec] = []
    for item in inputs:
        if isinstance(item, InputSpec):
            specs.append(item)
        else:
            specs.extend(InputSpec(p) for p in io.expand(item))
    return Runner(stages, specs, RunConfig(output_dir=output_dir, **config)).run()
