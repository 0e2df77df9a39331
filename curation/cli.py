"""The ``curate`` command line, and the flags every recipe script shares.

    curate run pipelines/baseline.py -- --output runs/b1      run a recipe script
    curate stats runs/b1                                     per-stage counts
    curate quarantine runs/b1 --reason malformed_json        list quarantined input
    curate dropped runs/b1 --reason dedup:exact              list dropped documents
    curate report runs/b1                                    rebuild report.md and plots
"""

from __future__ import annotations

import argparse
import logging
import os
import runpy
import sys
from typing import Any

from curation import storage
from curation.passes import DEFAULT_MEMORY_PER_WORKER, Executor
from curation.readers.base import DEFAULT_BATCH_SIZE, DEFAULT_MAX_DOC_BYTES
from curation.runner import DEFAULT_LOCAL_BELOW_BYTES, DEFAULT_MAX_SHARD_BYTES, InputSpec, RunConfig, executor_for

INPUT_HELP = (
    "input files: a path, glob or directory, local or any fsspec URL (s3://, gs://, hf://...), "
    "optionally followed by @FORMAT or @FORMAT:SOURCE to override detection, e.g. "
    "'data/pile/*.jsonl.zst@pile' or 's3://bucket/rw/*.parquet@refinedweb:refinedweb'. "
    "Formats: refinedweb (parquet: content, url, ...), pile (jsonl.zst), redpajama (jsonl[.gz|.zst]), "
    "dolma (jsonl.gz/.zst), jsonl and parquet (generic). Repeatable."
)


def add_run_arguments(p: argparse.ArgumentParser, default_output: str | None = None) -> None:
    """The flags shared by every recipe script (see ``pipelines/baseline.py``)."""
    g = p.add_argument_group("run")
    g.add_argument("--input", "-i", action="append", default=[], metavar="GLOB[@FORMAT[:SOURCE]]", help=INPUT_HELP)
    g.add_argument("--output", "-o", default=default_output, required=default_output is None,
                   help="run directory (local or fsspec URL): data/, stats/, quarantine/, dropped/, report.md"
                   + (f" (default: {default_output})" if default_output else ""))
    g.add_argument("--workers", "-w", type=int, default=os.cpu_count() or 1,
                   help="shard tasks in parallel; with a local Ray also the CPUs it starts with "
                   "(default: all cores, %(default)s here)")
    g.add_argument("--address", default=None,
                   help="join an existing Ray cluster (e.g. 'auto' or 'ray://head:10001'); "
                   "default: $RAY_ADDRESS, else an embedded local Ray bound to 127.0.0.1")
    g.add_argument("--no-resume", dest="resume", action="store_false",
                   help="recompute every shard; by default shards already complete for the same recipe hash "
                   "are skipped (a changed recipe recomputes the phases it changes)")
    g.add_argument("--limit", type=int, default=None,
                   help="read at most this many documents per input shard (a laptop sample); part of the recipe hash")
    g.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                   help="documents per Arrow batch handed to the stages (default %(default)s)")
    g.add_argument("--max-doc-bytes", type=int, default=DEFAULT_MAX_DOC_BYTES,
                   help="documents larger than this (UTF-8 bytes) are quarantined as doc_too_large "
                   "(default %(default)s)")
    g.add_argument("--seed", type=int, default=0, help="seed for every seeded step (default %(default)s)")
    g.add_argument("--max-retries", type=int, default=3,
                   help="retries of a work item whose worker or node died, or that hit a transient storage "
                   "error (OSError); other errors are not retried (default %(default)s)")
    g.add_argument("--executor", choices=["auto", "ray", "local"], default=None,
                   help="where work items run: ray (embedded local cluster on 127.0.0.1, or --address), local "
                   "(one after another in this process), auto (local when the whole input is under --local-below "
                   "and no cluster address is given, else ray); default auto (a recipe may choose otherwise, "
                   "e.g. ray for the demo pool, which is there to show the distributed path)")
    g.add_argument("--local-below", type=parse_size, default=DEFAULT_LOCAL_BELOW_BYTES, metavar="SIZE",
                   help="with --executor auto, inputs smaller than this run in-process, where starting Ray would "
                   f"cost more than the work (default {DEFAULT_LOCAL_BELOW_BYTES >> 20}M)")
    g.add_argument("--memory-per-worker", type=parse_size, default=DEFAULT_MEMORY_PER_WORKER, metavar="SIZE",
                   help="memory budget of one task (e.g. 2G, 512M): Ray runs no more tasks on a node than its "
                   "memory holds, and structures that grow with the corpus (Bloom filter, band and edge "
                   "partitions, candidate lists) are split into enough partitions to fit it; a configuration "
                   f"that cannot fit is refused before any shard runs (default {DEFAULT_MEMORY_PER_WORKER >> 30}G)")
    g.add_argument("--max-shard-bytes", type=parse_size, default=DEFAULT_MAX_SHARD_BYTES, metavar="SIZE",
                   help="a file larger than this becomes several work items: parquet by row groups, uncompressed "
                   "JSON lines by byte ranges at line starts (compressed streams stay whole; the report lists "
                   f"them); 0 never splits (default {DEFAULT_MAX_SHARD_BYTES >> 30}G)")
    g.add_argument("--dashboard", action="store_true",
                   help="start the Ray dashboard with the embedded cluster (http://127.0.0.1:8265)")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    g.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="logging level (default %(default)s)")


_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """'2G', '512M', '64k', '1.5g' or a number of bytes -> bytes."""
    t = str(text).strip().lower().removesuffix("ib").removesuffix("b")
    unit = t[-1] if t and t[-1] in _UNITS else ""
    try:
        value = float(t[: len(t) - len(unit)])
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 2G, 512M, 1048576)") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a size cannot be negative: {text!r}")
    return int(value * _UNITS[unit])


def parse_input(arg: str) -> tuple[str, str | None, str | None]:
    """'GLOB@FORMAT:SOURCE' -> (glob, format, source)."""
    if "@" in arg:
        pattern, spec = arg.rsplit("@", 1)
        fmt, _, source = spec.partition(":")
        return pattern, fmt or None, source or None
    return arg, None, None


def inputs_from_args(items: list[str]) -> list[InputSpec]:
    specs: list[InputSpec] = []
    for item in items:
        pattern, fmt, source = parse_input(item)
        paths = storage.expand(pattern)
        if not paths:
            raise SystemExit(f"error: --input {item!r} matched no file")
        specs.extend(InputSpec(p, fmt, source) for p in paths)
    return specs


def executor_from_args(args: argparse.Namespace, input_bytes: int = 0) -> Executor:
    """The executor the run flags ask for (``--executor``, ``--workers``, ``--address``, ``--memory-per-worker``,
    ...): :func:`curation.runner.executor_for` over :func:`config_from_args`, the one builder."""
    return executor_for(config_from_args(args), input_bytes)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    return RunConfig(
        output_dir=args.output,
        num_workers=args.workers,
        address=args.address,
        resume=args.resume,
        batch_size=args.batch_size,
        max_doc_bytes=args.max_doc_bytes,
        limit=args.limit,
        seed=args.seed,
        max_retries=args.max_retries,
        progress=args.progress,
        dashboard=args.dashboard,
        executor=args.executor or "auto",
        memory_per_worker=args.memory_per_worker,
        max_shard_bytes=args.max_shard_bytes or None,
        local_below_bytes=args.local_below,
    )


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=getattr(logging, level), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


# ---------------------------------------------------------------------------------------------
# subcommands


def _cmd_run(args: argparse.Namespace) -> int:
    sys.argv = [args.recipe, *args.recipe_args]
    runpy.run_path(args.recipe, run_name="__main__")
    return 0


def _stage_rows(stats: dict[str, Any]) -> list[list[str]]:
    rows = [["stage", "in", "kept", "dropped", "quarantined", "top reasons"]]
    for st in stats["stages"]:
        t = stats["totals"][st["name"]]
        dropped = sum(v[0] for v in t["dropped"].values())
        quar = sum(v[0] for v in t["quarantined"].values())
        reasons = sorted({**t["dropped"], **t["quarantined"]}.items(), key=lambda kv: -kv[1][0])[:3]
        rows.append([st["name"], f"{t['in']:,}", f"{t['kept']:,}", f"{dropped:,}", f"{quar:,}",
                     ", ".join(f"{r}={v[0]}" for r, v in reasons)])
    return rows


def _print_table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for j, r in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
        if j == 0:
            print("  ".join("-" * w for w in widths))


def _cmd_stats(args: argparse.Namespace) -> int:
    import json

    stats = storage.read_json(storage.join(args.run_dir, "stats.json"))
    if args.json:
        print(json.dumps(stats, indent=1, sort_keys=True))
        return 0
    _print_table(_stage_rows(stats))
    if stats.get("failed_shards"):
        print(f"\nfailed shards: {stats['failed_shards']}")
    return 0


def _list_records(run_dir: str, kind: str, reason: str | None, limit: int) -> int:
    import pyarrow as pa
    import pyarrow.compute as pc

    folder = storage.join(run_dir, kind)
    files = sorted(f for f in storage.list_dir(folder, recursive=True) if f.endswith(".parquet") and ".tmp-" not in f)
    tables = [storage.read_parquet(f) for f in files]
    tables = [t for t in tables if t.num_rows]
    if not tables:
        print(f"no {kind} records")
        return 0
    t = pa.concat_tables(tables, promote_options="permissive")
    if reason:
        t = t.filter(pc.starts_with(t.column("reason"), reason))
    print(f"{t.num_rows:,} {kind} records" + (f" with reason {reason}*" if reason else ""))
    cols = [c for c in ("stage", "reason", "source", "id", "file", "position", "nbytes") if c in t.column_names]
    rows = [cols] + [[str(r[c]) for c in cols] for r in t.slice(0, limit).to_pylist()]
    if "raw" in t.column_names:
        rows[0].append("raw (first 60 bytes)")
        for i, r in enumerate(t.slice(0, limit).column("raw").to_pylist(), start=1):
            rows[i].append(repr((r or b"")[:60]))
    _print_table(rows)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from curation.report import write_report

    print(write_report(args.run_dir))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="curate", description="DCLM-style curation on Ray: run recipes, inspect runs.")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run a recipe script (e.g. pipelines/baseline.py) with its own flags")
    r.add_argument("recipe", help="path of the recipe script")
    r.add_argument("recipe_args", nargs=argparse.REMAINDER, help="flags passed to the recipe (see its --help)")
    r.set_defaults(fn=_cmd_run)
    s = sub.add_parser("stats", help="per-stage counts of a run: in, kept, dropped, quarantined, top reasons")
    s.add_argument("run_dir", help="the run directory (--output of the run)")
    s.add_argument("--json", action="store_true", help="print the full merged stats.json")
    s.set_defaults(fn=_cmd_stats)
    q = sub.add_parser("quarantine", help="list a run's quarantined records (bad input, rows that broke a stage)")
    q.add_argument("run_dir", help="the run directory")
    q.add_argument("--reason", default=None, help="only reasons starting with this prefix")
    q.add_argument("--limit", type=int, default=20, help="rows to print (default %(default)s)")
    q.set_defaults(fn=lambda a: _list_records(a.run_dir, "quarantine", a.reason, a.limit))
    d = sub.add_parser("dropped", help="list a run's dropped documents with stage and reason")
    d.add_argument("run_dir", help="the run directory")
    d.add_argument("--reason", default=None, help="only reasons starting with this prefix")
    d.add_argument("--limit", type=int, default=20, help="rows to print (default %(default)s)")
    d.set_defaults(fn=lambda a: _list_records(a.run_dir, "dropped", a.reason, a.limit))
    rep = sub.add_parser("report", help="rebuild report.md and the PNG plots of a run from its stats.json")
    rep.add_argument("run_dir", help="the run directory")
    rep.set_defaults(fn=_cmd_report)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.cmd != "run":
        setup_logging("WARNING")
    if getattr(args, "recipe_args", None) and args.recipe_args[:1] == ["--"]:
        args.recipe_args = args.recipe_args[1:]
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
