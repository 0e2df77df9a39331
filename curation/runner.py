"""The shard runner: a recipe over input files as passes, resumable, exactly-once outputs.

A recipe is a list of stages. The runner splits it at every :class:`GlobalStage`
into *phases*: phase 0 reads the input files and applies the stages before the
first global stage; each later phase starts by fitting its global stage over all
shards of the previous phase (a sequence of passes inside ``fit``), then applies it
and the stages after it to every shard. Each phase is one pass
(:mod:`curation.passes`) whose items are the work units: an input file, or a split
of a file larger than ``max_shard_bytes`` (parquet row groups, byte ranges of
uncompressed JSON lines). The unit never depends on Ray's block layout or the
number of workers, so neither do the results.

Layout of a run directory::

    run.json                     recipe, inputs, recipe hash, status, work units
    data/<shard>.parquet         final documents (last phase)
    phases/p<k>/<shard>.parquet  documents between phases (inputs of global stages)
    dropped/p<k>/<shard>.parquet id, source, stage, reason, nbytes of every dropped doc (shards that dropped any)
    quarantine/p<k>/<shard>.parquet  bad input / rows that made a stage fail (shards that quarantined any)
    _passes/<pass>/              completion markers (curation.passes): one object per 1,000 items once a pass
                                 ends; they hold every shard's per-stage counts (there is no stats file per shard)
    global/<i>_<name>/           a global stage's state.json, and fit/ (the fit's artefacts and pass markers)
    passes.json                  what every pass of the last run did (items run / complete / failed, objects
                                 written, the driver's storage requests)
    stats.json, report.md, *.png merged stats and the report (curation.report)

Exactly once: every output is one complete object (a rename into place locally, a
single PUT or a completed multipart upload on an object store), then the item's
marker. A rerun skips an item whose marker carries the same hash (the phase's recipe
hash, the task, the input's fingerprint, the upstream item, the fitted state) and whose
outputs exist, and recomputes it otherwise, so a recipe change invalidates exactly the
phases it touches. A worker killed mid-shard is retried by Ray; a killed driver is rerun
and resumes at the item, inside global fits too. The driver lists folders, never probes
file by file: a rerun of a finished run reads O(1) objects per pass and starts no Ray.
When a run completes, files under data/, phases/, dropped/ and quarantine/ that no work
unit of this run wrote (an earlier run over other inputs) are removed.

Execution: ``executor="ray"`` runs items as Ray tasks (an embedded cluster on
127.0.0.1, or ``address``), started once per run and only when an item has to run;
``"local"`` runs them in this process; ``"auto"`` (the default) picks ``local`` for
inputs under ``local_below_bytes`` when no cluster address is given, where Ray's
start-up would cost more than the work.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import os
import subprocess
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from curation import storage
from curation.passes import DEFAULT_LOCAL_BELOW_BYTES, DEFAULT_MEMORY_PER_WORKER, Executor, Item, digest, make_executor
from curation.readers.base import DEFAULT_BATCH_SIZE, DEFAULT_MAX_DOC_BYTES
from curation.shard import READ_STAGE, InputSpec, ShardTask, count_split_records, run_shard, split_spec
from curation.stage import FittedState, GlobalContext, GlobalStage, PhaseShard, Stage, recipe_hash
from curation.stats import merge_shard_stats

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_LOCAL_BELOW_BYTES", "READ_STAGE", "InputSpec", "RunConfig", "RunResult", "Runner",
           "executor_for", "run_recipe"]

DEFAULT_MAX_SHARD_BYTES = 1 << 30


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
    executor: str = "auto"  # "ray" | "local" | "auto"
    memory_per_worker: int = DEFAULT_MEMORY_PER_WORKER
    max_shard_bytes: int | None = DEFAULT_MAX_SHARD_BYTES  # None: never split a file
    local_below_bytes: int = DEFAULT_LOCAL_BELOW_BYTES

    def __post_init__(self) -> None:
        if self.executor not in ("ray", "local", "auto"):
            raise ValueError(f"executor must be 'ray', 'local' or 'auto', got {self.executor!r}")
        if self.max_shard_bytes is not None and self.max_shard_bytes < 1 << 16:
            raise ValueError(f"max_shard_bytes={self.max_shard_bytes} is under 64 KiB")


@dataclass
class RunResult:
    output_dir: str
    recipe_hash: str
    stats: dict[str, Any]
    failed_shards: list[str]
    skipped_shards: int
    processed_shards: int
    seconds: float
    passes: list[dict[str, Any]] = field(default_factory=list)

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


def _size_of(info: dict[str, Any] | None) -> int:
    return int((info or {}).get("size") or 0)


def _weight(path: str, info: dict[str, Any] | None) -> float:
    """Estimated uncompressed bytes of a shard (file size times a typical compression ratio)."""
    return _size_of(info) * _EXPANSION.get(os.path.splitext(path)[1].lower(), 1.0)


def executor_for(cfg: RunConfig, input_bytes: int) -> Executor:
    """The executor a run's settings ask for (:func:`curation.passes.make_executor`, the one builder)."""
    return make_executor(cfg.executor, input_bytes=input_bytes, num_workers=cfg.num_workers, address=cfg.address,
                         local_below_bytes=cfg.local_below_bytes, max_retries=cfg.max_retries,
                         memory_per_worker=cfg.memory_per_worker, progress=cfg.progress, dashboard=cfg.dashboard,
                         resume=cfg.resume)


class Runner:
    """Runs a recipe (a list of stages) over input files as passes (Ray or in-process)."""

    def __init__(self, stages: list[Stage], inputs: list[InputSpec], config: RunConfig,
                 executor: Executor | None = None) -> None:
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
        self.executor = executor
        self.units: list[InputSpec] = []
        self.unsplittable: list[str] = []
        self._infos: dict[str, dict[str, Any] | None] | None = None

    # paths ---------------------------------------------------------------------------------
    def _phase_output(self, phase: int, shard: str) -> str:
        if phase == len(self.phases) - 1:
            return storage.join(self.out, "data", f"{shard}.parquet")
        return storage.join(self.out, "phases", f"p{phase}", f"{shard}.parquet")

    def _task(self, spec: InputSpec, phase: Phase) -> ShardTask:
        sid = spec.shard_id
        input_path = spec.path if phase.index == 0 else self._phase_output(phase.index - 1, sid)
        return ShardTask(
            spec=spec,
            phase=phase.index,
            phase_hash=phase.hash,
            input_path=input_path,
            output_path=self._phase_output(phase.index, sid),
            dropped_path=storage.join(self.out, "dropped", f"p{phase.index}", f"{sid}.parquet"),
            quarantine_path=storage.join(self.out, "quarantine", f"p{phase.index}", f"{sid}.parquet"),
            batch_size=self.cfg.batch_size,
            max_doc_bytes=self.cfg.max_doc_bytes,
            limit=self.cfg.limit,
            reader_options=self.cfg.reader_options,
            final=phase.index == len(self.phases) - 1,
            state_digest=phase.state_digest,
        )

    def _item(self, spec: InputSpec, phase: Phase, upstream: Any = None,
              sizes: dict[str, dict[str, Any] | None] | None = None) -> Item:
        """The pass item of one work unit in one phase: it reads the unit's input (the file, or the previous
        phase's output, after that phase's item) and writes the phase's output."""
        task = self._task(spec, phase)
        info = (sizes or {}).get(task.input_path)
        weight = _weight(task.input_path, info) if phase.index == 0 else float(_size_of(info))
        if spec.split is not None and phase.index == 0:
            weight = float(spec.split.get("bytes") or weight)
        params = {"state": phase.state_digest, "split": spec.split, "format": spec.format, "source": spec.source}
        after = (upstream.item_digest(spec.shard_id),) if upstream is not None else ()
        return Item(spec.shard_id, (task,), inputs=(task.input_path,), params=params, weight=weight,
                    outputs=(task.output_path,), after=after)

    def input_infos(self) -> dict[str, dict[str, Any] | None]:
        """Listing infos (size, ETag or mtime) of the input files: one listing per input folder."""
        if self._infos is None:
            self._infos = storage.stat_many(s.path for s in self.inputs)
            missing = [p for p, i in self._infos.items() if i is None]
            if missing:  # its shard quarantines it (unreadable_file) and the run goes on
                logger.warning("%d input file(s) not found, e.g. %s", len(missing), missing[:3])
        return self._infos

    # running -------------------------------------------------------------------------------
    def validate(self) -> None:
        """Fail fast, before any shard runs (missing models, bad settings, a budget that cannot hold)."""
        budget = self.cfg.memory_per_worker
        if self.cfg.max_doc_bytes * 8 > budget:
            raise ValueError(
                f"--max-doc-bytes={self.cfg.max_doc_bytes} needs about {8 * self.cfg.max_doc_bytes >> 20} MiB per "
                f"worker for one document's copies; raise --memory-per-worker (now {budget >> 20} MiB) or lower "
                "--max-doc-bytes"
            )
        for st in self.stages:
            check = getattr(st, "validate", None)
            if callable(check):
                check()
            if isinstance(st, GlobalStage):
                st.check_budget(budget)

    def _executor(self) -> Executor:
        if self.executor is None:
            total = sum(_size_of(i) for i in self.input_infos().values())
            self.executor = executor_for(self.cfg, total)
        return self.executor

    def plan_units(self, executor: Executor) -> list[InputSpec]:
        """The work units: every input file, files over ``max_shard_bytes`` cut into splits.

        A JSON-lines split does not know the index of its first record; a counting pass
        (one item per split, newlines only) fills it in, so generated ids are the same
        whatever the split size.
        """
        limit = self.cfg.max_shard_bytes
        infos = self.input_infos()
        units: list[InputSpec] = []
        self.unsplittable = []
        to_count: list[int] = []
        for spec in self.inputs:
            size = _size_of(infos.get(spec.path))
            if limit is None or size <= limit:
                units.append(spec)
                continue
            from curation.readers import detect_format, plan_splits

            fmt = spec.format or detect_format(spec.path)
            splits = plan_splits(spec.path, fmt, limit)
            if not splits or len(splits) == 1:
                if not splits:
                    self.unsplittable.append(spec.path)
                units.append(spec)
                continue
            # byte ranges do not know their first line number: count every split of such a file
            count = any(sp.first_row is None for sp in splits)
            for i, sp in enumerate(splits):
                if count:
                    to_count.append(len(units))
                nbytes = sp.stop - sp.start if sp.kind == "bytes" else size / len(splits)
                units.append(dataclasses.replace(spec, split=split_spec(sp, i, nbytes)))
        if self.unsplittable:
            logger.info("%d input files are over --max-shard-bytes but cannot be split (compressed streams): %s",
                        len(self.unsplittable), self.unsplittable[:5])
        if to_count:
            items = [Item(units[i].shard_id, (units[i].path, units[i].split), inputs=(units[i].path,),
                          params=units[i].split, weight=float(units[i].split["bytes"])) for i in to_count]
            counted = executor.run("plan-count", count_split_records, items,
                                   marker_dir=storage.join(self.out, "_passes", "plan-count"),
                                   progress="counting records")
            first: dict[str, int] = {}
            for i, n in zip(to_count, counted.results):  # splits of a file are in file order
                path = units[i].path
                units[i] = dataclasses.replace(units[i], split=dict(units[i].split, first_row=first.get(path, 0)))
                first[path] = first.get(path, 0) + int(n)
        return units

    def run(self) -> RunResult:
        t_start = time.time()
        self.validate()
        storage.makedirs(self.out)
        executor = self._executor()
        self.units = self.plan_units(executor)
        meta = {
            "recipe_hash": self.recipe_hash,
            "phases": [{"index": p.index, "hash": p.hash, "stages": [s.name for s in p.stages]} for p in self.phases],
            "stages": [s.fingerprint() for s in self.stages],
            "inputs": [asdict(s) | {"path": storage.printable(s.path), "shard_id": s.shard_id} for s in self.inputs],
            "work_units": len(self.units),
            "unsplittable_inputs": [storage.printable(p) for p in self.unsplittable],
            "config": {k: v for k, v in asdict(self.cfg).items() if k not in ("address",)},
            "executor": executor.cfg.mode,
            "git_commit": _git_commit(),
            "status": "running",
            "started": t_start,
        }
        storage.write_json_atomic(storage.join(self.out, "run.json"), meta)

        failed: list[str] = []
        skipped = processed = 0
        shard_stats: list[dict[str, Any]] = []
        upstream = None
        listing = self.input_infos()  # this phase's inputs: listed once, for the fit, the weights and the hashes
        for phase in self.phases:
            if phase.global_stage is not None:
                if failed:
                    logger.error("not fitting %s: %d shards failed in an earlier phase", phase.global_stage.name,
                                 len(failed))
                    break
                self._fit_global(phase, executor, listing)
            tasks = [self._task(u, phase) for u in self.units]
            items = [self._item(u, phase, upstream, listing) for u in self.units]
            res = executor.run(
                f"p{phase.index}", run_shard, items, marker_dir=storage.join(self.out, "_passes", f"p{phase.index}"),
                config={"phase": phase.hash}, version="runner/3", on_error="collect", listing=listing,
                shared=phase.stages, progress=f"phase {phase.index}/{len(self.phases) - 1}", count=_docs_in,
            )  # fmt: skip
            shard_stats.extend(r for r in res.results if r is not None)
            failed.extend(res.failed)
            skipped += len(res.skipped)
            processed += len(res.ran)
            self._harmonise_empty_outputs(tasks, res.results)
            upstream = res
            if phase.index + 1 < len(self.phases):
                listing = storage.stat_many(t.output_path for t in tasks)
            logger.info("phase %d: %d shards run, %d skipped (complete), %d failed so far", phase.index,
                        len(res.ran), len(res.skipped), len(failed))

        if not failed:
            self._remove_stale_outputs(shard_stats)
        merged = merge_shard_stats(shard_stats)
        merged["recipe_hash"] = self.recipe_hash
        merged["failed_shards"] = failed
        merged["global"] = self._global_summaries()
        merged["unsplittable_inputs"] = [storage.printable(p) for p in self.unsplittable]
        merged["work_units"] = len(self.units)
        # stats.json holds only what the input and recipe decide (byte-identical across reruns, worker
        # counts and crashes); timings go to timings.json, what each pass did to passes.json
        timings = {"stage_seconds": merged.pop("seconds"), "global": {}}
        for g in merged["global"]:
            timings["global"][g["name"]] = {"fit_seconds": g.pop("seconds", None),
                                            "marks": g["summary"].pop("seconds", None)}
        storage.write_json_atomic(storage.join(self.out, "stats.json"), merged)
        storage.write_json_atomic(storage.join(self.out, "timings.json"), timings)
        storage.write_json_atomic(storage.join(self.out, "passes.json"), passes_report(executor))
        meta.update(status="failed" if failed else "complete", finished=time.time(), failed_shards=failed)
        storage.write_json_atomic(storage.join(self.out, "run.json"), meta)
        if self.cfg.report:
            from curation.report import write_report

            write_report(self.out)
        return RunResult(self.out, self.recipe_hash, merged, failed, skipped, processed, time.time() - t_start,
                         list(executor.log))

    def _fit_global(self, phase: Phase, executor: Executor, listing: dict[str, Any]) -> None:
        g = phase.global_stage
        assert g is not None
        root = storage.join(self.out, "global", f"{phase.index:02d}_{g.name}")
        state_path = storage.join(root, "state.json")
        prev = phase.index - 1
        shards = [PhaseShard(u.shard_id, self._phase_output(prev, u.shard_id), u.path) for u in self.units]
        # the fit is reused only for the same recipe over the same (unchanged) phase inputs (``listing``: the
        # previous phase's outputs, listed once)
        inputs = {s.shard_id: storage.fingerprint_of(listing[s.path]) if listing.get(s.path) else "missing"
                  for s in shards}
        fit_key = digest({"hash": phase.hash, "inputs": inputs})
        saved = _read_json_or_none(state_path) if self.cfg.resume else None
        if saved is not None and saved.get("fit_key") == fit_key:
            logger.info("global stage %s: reusing the fitted state", g.name)
            g.load_state(saved["state"])
            phase.state_digest = digest({"state": saved["state"], "fit": fit_key})
            return
        # one folder per stage, emptied when a fit over other inputs (or another recipe) starts, so that files
        # of an earlier fit are never read; an interrupted fit of the same key resumes in it
        workdir = storage.join(root, "fit")
        key_file = storage.join(workdir, "FIT_KEY")
        old_key = _read_bytes_or_none(key_file)
        if old_key is None or old_key.decode() != fit_key:
            storage.rm_tree(workdir)
            storage.makedirs(workdir)
            storage.write_bytes_atomic(key_file, fit_key.encode())
        # num_workers is the tasks in flight only: no stage may let it change its partitioning (results must
        # not depend on it)
        ctx = GlobalContext(shards=shards, workdir=workdir, num_workers=self.cfg.num_workers or 1,
                            seed=self.cfg.seed, executor=executor, fit_key=fit_key,
                            memory_per_worker=self.cfg.memory_per_worker)
        logger.info("global stage %s: fitting over %d shards", g.name, len(shards))
        t0 = time.time()
        state = g.fit(ctx)
        g.load_state(state)
        if not isinstance(state, FittedState):
            raise TypeError(f"{g.name}.fit() returned {type(state).__name__}; a global stage returns a FittedState")
        blob = state.to_json()
        storage.write_json_atomic(state_path, {"hash": phase.hash, "fit_key": fit_key, "inputs": inputs, "state": blob,
                                               "seconds": time.time() - t0})
        # a fit over changed inputs invalidates every shard of the phase that applies it
        phase.state_digest = digest({"state": blob, "fit": fit_key})

    def _harmonise_empty_outputs(self, tasks: list[ShardTask], results: list[Any]) -> None:
        """Give shards that kept no document the same columns as the others.

        A shard whose rows were all dropped before a stage that adds columns (``lang``,
        ``quality_score``) would otherwise carry fewer columns than its siblings, and a
        reader of the whole output (pyarrow.dataset, HF datasets) would reject the mix.
        Schemas come from the items' results; only an empty output whose schema differs
        from the reference is read (its footer: harmonised by an earlier run already?).
        """
        schemas: dict[str, Any] = {}
        rows: dict[str, int] = {}
        for t, r in zip(tasks, results):
            if r is None or "output_schema" not in r:
                continue
            schemas[t.output_path] = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(r["output_schema"])))
            rows[t.output_path] = int(r["output_rows"])
        full = [schemas[p] for p in sorted(schemas) if rows[p] > 0]
        if not full:
            return
        ref = full[0]
        for p, sch in sorted(schemas.items()):
            if rows[p] == 0 and not sch.equals(ref):
                fs, path = storage.fs_path(p)
                with fs.open(path, "rb") as f:
                    if pq.ParquetFile(f).metadata.schema.to_arrow_schema().equals(ref):
                        continue
                storage.write_parquet_atomic(p, ref.empty_table())

    def _remove_stale_outputs(self, results: list[dict[str, Any]]) -> None:
        """Delete what no work unit of this run wrote: ``*.tmp-*`` files that killed writers left behind,
        and outputs of an earlier run in this folder over other inputs or with side files this run's shards
        no longer have. One listing per output folder, one bulk delete."""
        expected: set[str] = set()
        for phase in self.phases:
            for u in self.units:
                expected.add(self._phase_output(phase.index, u.shard_id))
        for r in results:
            t_phase, sid = int(r["phase"]), r["shard"]
            if r.get("dropped_rows"):
                expected.add(storage.join(self.out, "dropped", f"p{t_phase}", f"{sid}.parquet"))
            if r.get("quarantine_rows"):
                expected.add(storage.join(self.out, "quarantine", f"p{t_phase}", f"{sid}.parquet"))
        stale = [path for sub in ("data", "phases", "dropped", "quarantine")
                 for path in storage.list_dir(storage.join(self.out, sub), recursive=True) if path not in expected]
        if stale:
            logger.info("removing %d files of earlier runs or killed writers (e.g. %s)", len(stale), stale[0])
            storage.remove(stale)

    def _global_summaries(self) -> list[dict[str, Any]]:
        out = []
        for phase in self.phases:
            g = phase.global_stage
            if g is None:
                continue
            state_path = storage.join(self.out, "global", f"{phase.index:02d}_{g.name}", "state.json")
            saved = _read_json_or_none(state_path)
            if saved is not None:
                st = saved.get("state", {})
                plots = [_relative(p, self.out) for p in st.get("plots", [])]
                out.append({"name": g.name, "summary": st.get("summary", {}), "plots": plots,
                            "seconds": saved.get("seconds")})
        return out


def passes_report(executor: Executor) -> dict[str, Any]:
    """passes.json: what every pass did, and the objects written and driver requests per stage and in all."""
    objects = sum(p.get("objects_written", 0) for p in executor.log)
    requests: dict[str, int] = {}
    for p in executor.log:
        for k, v in p.get("driver_requests", {}).items():
            requests[k] = requests.get(k, 0) + v
    return {"executor": executor.cfg.mode, "passes": executor.log, "objects_written": objects,
            "driver_requests": dict(sorted(requests.items()))}


def _read_json_or_none(path: str) -> Any:
    try:
        return storage.read_json(path)
    except (FileNotFoundError, ValueError):
        return None


def _read_bytes_or_none(path: str) -> bytes | None:
    try:
        return storage.read_bytes(path)
    except FileNotFoundError:
        return None


def _relative(path: str, root: str) -> str:
    """``path`` relative to the run directory when it lies inside it (so stats.json names no absolute path)."""
    if storage.is_local(path) and storage.is_local(root):
        rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
        return rel if not rel.startswith("..") else path
    return path[len(root.rstrip("/")) + 1:] if path.startswith(root.rstrip("/") + "/") else path


def _docs_in(blob: dict[str, Any]) -> int:
    stages = blob.get("stages") or []
    return sum(d["in"] for d in stages[0]["by_source"].values()) if stages else 0


def run_recipe(stages: list[Stage], inputs: list[InputSpec] | list[str], output_dir: str, **config: Any) -> RunResult:
    """Convenience wrapper: ``run_recipe(stages, ["data/*.jsonl.zst"], "out/run1", num_workers=2)``."""
    specs: list[InputSpec] = []
    for item in inputs:
        if isinstance(item, InputSpec):
            specs.append(item)
        else:
            specs.extend(InputSpec(p) for p in storage.expand(item))
    return Runner(stages, specs, RunConfig(output_dir=output_dir, **config)).run()
