"""The worker side of the runner: one shard (or split of a file) through one phase.

:func:`run_shard` reads its input (the raw file in phase 0, the previous phase's
parquet later), applies the phase's stages batch by batch with the accounting
checked, and writes its outputs, each one complete object
(:func:`curation.storage.atomic_open`): the documents always, the dropped records
and the quarantine only when there are some (an empty file per shard would double
the objects of a run for nothing). It returns its stats, which the pass keeps in the
item's completion marker (:mod:`curation.passes`), gathered with the other items'
markers when the pass ends: there is no stats file per shard.

Set-up once per worker process: the first task of a phase in a process keeps its
deserialised copy of the stages, calls ``setup()`` on every stage, and later
tasks of that phase in the same process reuse it (``_WORKER_CACHE``).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curation import storage
from curation.passes import report_outputs
from curation.readers.base import RAW_SNIPPET_BYTES
from curation.schema import DOC_SCHEMA, DROPPED_SCHEMA, QUARANTINE_SCHEMA
from curation.stage import ShardContext, Stage, StageResult, empty_dropped
from curation.stats import ShardStats, check_invariant, count_by_source, source_groups

logger = logging.getLogger(__name__)

READ_STAGE = "read"


def split_spec(split: Any, index: int, nbytes: float) -> dict[str, Any]:
    """A :class:`curation.readers.Split` as the JSON-able dict an :class:`InputSpec` carries."""
    return {"kind": split.kind, "start": split.start, "stop": split.stop, "first_row": split.first_row,
            "index": index, "bytes": int(nbytes)}


def split_of(spec: dict[str, Any]) -> Any:
    """The reader's :class:`curation.readers.Split` of a split dict."""
    from curation.readers import Split

    return Split(spec["kind"], spec["start"], spec["stop"], spec.get("first_row"))


def count_split_records(path: str, split: dict[str, Any]) -> int:
    """Records (lines) that start in a split: the runner's counting pass, for file-global row numbers."""
    from curation.readers import count_records

    return count_records(path, split_of(split))


@dataclass
class InputSpec:
    """One unit of input: a file and how to read it, or one split of a large file.

    ``split`` (from :func:`curation.readers.plan_splits`) is a row-group range of a
    parquet file or a byte range of an uncompressed JSON-lines file, with the index
    of its first record in the file, so ids do not depend on how the file was split.
    """

    path: str
    format: str | None = None  # None: detected from the path
    source: str | None = None  # None: the reader's default source name
    split: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def file_id(self) -> str:
        """The file's id: its sanitised name plus a hash of the path's bytes (a name that is not valid
        UTF-8 comes surrogate-escaped from the OS layer: hashed as the original bytes)."""
        base = os.path.basename(self.path.rstrip("/"))
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", storage.printable(base))[:80]
        digest = hashlib.sha1(self.path.encode("utf-8", "surrogateescape")).hexdigest()[:8]
        return f"{stem}-{digest}"

    @property
    def shard_id(self) -> str:
        """The work unit's id: the file's, plus ``~NNNNN`` for a split (so splits sort in file order)."""
        if self.split is None:
            return self.file_id
        return f"{self.file_id}~{int(self.split['index']):05d}"


@dataclass
class ShardTask:
    spec: InputSpec
    phase: int
    phase_hash: str
    input_path: str  # the raw input (phase 0) or the previous phase's parquet
    output_path: str
    dropped_path: str  # written only when the shard drops something
    quarantine_path: str  # written only when the shard quarantines something
    batch_size: int
    max_doc_bytes: int
    limit: int | None
    reader_options: dict[str, Any]
    final: bool = False
    state_digest: str = ""  # the fitted global state the phase applies (stages set up for another are stale)


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
            "file": pa.array([storage.printable(file)] * n, pa.string()),
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
        for batch in storage.iter_parquet_batches(task.input_path, batch_size=task.batch_size):
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
        batches = (reader.read_with_dropped(task.spec.path) if task.spec.split is None
                   else reader.read_with_dropped(task.spec.path, split=split_of(task.spec.split)))
        for docs, quarantine, dropped in batches:
            if task.limit is not None and n_docs + docs.num_rows >= task.limit:
                yield docs.slice(0, task.limit - n_docs), quarantine, dropped
                return
            n_docs += docs.num_rows
            yield docs, quarantine, dropped
    except Exception as exc:  # noqa: BLE001 - a reader bug must not kill the run
        logger.exception("reader failed on %s after %d documents", task.spec.path, n_docs)
        q = pa.table(
            {
                "file": [storage.printable(task.spec.path)],
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
    """Streams tables into one parquet object (:func:`curation.storage.atomic_open`: complete or absent).

    ``close`` finishes it; with ``skip_empty``, a sink that was given no row writes nothing."""

    def __init__(self, path: str, schema: pa.Schema | None = None, skip_empty: bool = False) -> None:
        self.path = path
        self.schema = schema
        self.skip_empty = skip_empty
        self._cm = None
        self._writer: pq.ParquetWriter | None = None
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        if self._writer is None and self.skip_empty and table.num_rows == 0:
            return
        if self._writer is None:
            self.schema = self.schema or canonical_schema(table.schema)
            self._cm = storage.atomic_open(self.path, "wb")
            f = self._cm.__enter__()
            opts = dict(storage.PARQUET_OPTIONS)
            if "source" not in self.schema.names:
                opts.pop("use_dictionary")
            self._writer = pq.ParquetWriter(f, self.schema, **opts)
        if table.schema != self.schema:
            table = table.select(self.schema.names).cast(self.schema)
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self, empty_schema: pa.Schema) -> bool:
        """Finish the file; False when nothing was written (``skip_empty`` and no row)."""
        if self._writer is None:
            if self.skip_empty:
                return False
            self.write(empty_schema.empty_table())
        self._writer.close()
        cm, self._cm = self._cm, None
        cm.__exit__(None, None, None)
        return True

    def abort(self) -> None:
        """Give up the file: nothing appears (a no-op once it is closed)."""
        if self._cm is not None:
            cm, self._cm = self._cm, None
            try:
                if self._writer is not None:
                    self._writer.close()
            finally:
                cm.__exit__(RuntimeError, RuntimeError("aborted"), None)


def run_shard(task: ShardTask, stages: list[Stage]) -> dict[str, Any]:
    """Process one shard through one phase; returns its stats (kept in the item's marker) with the output's
    rows and schema, and which side files (dropped, quarantine) it wrote."""
    stages = _worker_stages(f"{task.phase_hash}/{task.state_digest}", stages)
    ctx = ShardContext(shard_id=task.spec.shard_id, path=task.spec.path, phase=task.phase)
    stats = ShardStats(task.spec.shard_id, storage.printable(task.spec.path), task.phase_hash, task.phase)
    out = _ParquetSink(task.output_path)
    dropped_sink = _ParquetSink(task.dropped_path, DROPPED_SCHEMA.append(pa.field("stage", pa.string())),
                                skip_empty=True)
    quarantine_sink = _ParquetSink(task.quarantine_path, QUARANTINE_SCHEMA, skip_empty=True)
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
        blob = stats.to_json()
        for st in blob["stages"]:
            errors = check_invariant(st)
            if errors:
                raise RuntimeError("; ".join(errors))
        out.close(last_schema or DOC_SCHEMA)
        side = [p for p, sink, schema in ((task.dropped_path, dropped_sink, dropped_sink.schema),
                                          (task.quarantine_path, quarantine_sink, QUARANTINE_SCHEMA))
                if sink.close(schema)]
    except BaseException:
        for s in (out, dropped_sink, quarantine_sink):
            s.abort()
        raise
    report_outputs(*side)
    blob["output_rows"] = out.rows
    blob["output"] = task.output_path
    blob["output_schema"] = base64.b64encode(out.schema.serialize().to_pybytes()).decode("ascii")
    blob["dropped_rows"] = dropped_sink.rows
    blob["quarantine_rows"] = quarantine_sink.rows
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


