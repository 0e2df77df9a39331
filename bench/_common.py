"""What every benchmark shares (DESIGN.md, Conventions): timing with equal repetitions on
both sides, rows that record min and median and the commit they measured, the machine,
and where results go.

    t_ours = measure(lambda: ours(x), reps=args.reps)              # CPU seconds by default
    t_ref = measure(lambda: ref(x), reps=args.reps)
    rows.append(compare("chain_vs_datatrove", "seconds", t_ours, t_ref, "datatrove chain",
                        target=10.0, input="...", kind="time"))
    save(rows, "heuristics", args)        # bench/results/heuristics.json (.quick.json with --quick)

A ratio is oriented so that higher is better: reference time / our time for times
(``kind="time"``, also memory), our rate / reference rate for throughputs
(``kind="rate"``). It is computed from the medians; the mins are kept beside it.
A target is fixed in the script before measuring; ``met`` says whether the ratio
reached it, and a missed row is written like any other.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")


def commit() -> str:
    """The short git commit of the checkout (``+dirty`` when tracked files other than the benchmark results,
    which the benchmarks themselves write, differ from it), or 'unknown'."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        sha = out.stdout.strip() or "unknown"
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", ".", ":!bench/results"], cwd=ROOT,
                               capture_output=True)
        return sha + ("+dirty" if dirty.returncode == 1 else "")
    except OSError:
        return "unknown"


def machine() -> str:
    """CPU model, cores, memory, load, and the GPU when torch (already imported) sees one."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    desc = f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, load avg {load:.1f}, Python {platform.python_version()}"
    torch = sys.modules.get("torch")
    if torch is not None:
        gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA"
        desc += f", torch {torch.__version__}, {gpu}"
    return desc


@dataclass
class Timing:
    """Repeated measurements of one side of a comparison (seconds, bytes, ... as the metric says)."""

    values: list[float] = field(default_factory=list)
    clock: str = "cpu"

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def reps(self) -> int:
        return len(self.values)


CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.process_time, "wall": time.perf_counter}


def measure(fn: Callable[[], Any], reps: int, clock: str = "cpu", warmup: int = 0) -> Timing:
    """Run ``fn`` ``reps`` times (after ``warmup`` untimed runs); CPU seconds of this process or wall seconds.

    CPU seconds count only this process: use ``wall`` for anything that runs in other
    processes (Ray workers, subprocesses).
    """
    tick = CLOCKS[clock]
    for _ in range(warmup):
        fn()
    t = Timing(clock=clock)
    for _ in range(reps):
        t0 = tick()
        fn()
        t.values.append(tick() - t0)
    return t


def as_timing(x: Timing | float | int) -> Timing:
    return x if isinstance(x, Timing) else Timing([float(x)], clock="single")


def compare(
    name: str,
    metric: str,
    ours: Timing | float,
    reference: Timing | float,
    reference_name: str,
    target: float | None,
    input: str,
    kind: str = "time",
    **extra: Any,
) -> dict[str, Any]:
    """One result row. ``kind="time"``: lower is better (ratio = reference / ours); ``"rate"``: higher is better.

    Both sides must have the same number of repetitions.
    """
    o, r = as_timing(ours), as_timing(reference)
    if o.reps != r.reps:
        raise ValueError(f"{name}: {o.reps} repetitions of ours against {r.reps} of the reference")
    if kind not in ("time", "rate"):
        raise ValueError(f"kind must be 'time' or 'rate', got {kind!r}")
    if kind == "time":
        ratio = r.median / o.median if o.median else float("inf")
        ratio_min = r.min / o.min if o.min else float("inf")
    else:
        ratio = o.median / r.median if r.median else float("inf")
        ratio_min = o.min / r.min if r.min else float("inf")
    row = {
        "name": name,
        "metric": metric,
        "ours": o.median,
        "reference": r.median,
        "reference_name": reference_name,
        "ratio": ratio,
        "target": target,
        "met": None if target is None else bool(ratio >= target),
        "input": input,
        "reps": o.reps,
        "clock": o.clock,
        "ours_min": o.min,
        "ours_median": o.median,
        "reference_min": r.min,
        "reference_median": r.median,
        "ratio_of_mins": ratio_min,
        "ours_values": o.values,
        "reference_values": r.values,
    }
    row.update(extra)
    return row


def bench_parser(description: str) -> argparse.ArgumentParser:
    """The flags every benchmark takes: --quick, --reps, --out."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small inputs, finishes within ~60 s on 2 cores")
    p.add_argument("--reps", type=int, default=None, help="repetitions of every measurement, equal on both sides")
    p.add_argument("--out", default=None,
                   help="result JSON (default bench/results/<name>.json, or <name>.quick.json with --quick)")
    return p


def save(rows: list[dict[str, Any]], name: str, args: argparse.Namespace | None = None) -> str:
    """Stamp every row with the commit, machine, command and mode; write the JSON list; print a table."""
    quick = bool(getattr(args, "quick", False))
    out = getattr(args, "out", None) or os.path.join(RESULTS, f"{name}{'.quick' if quick else ''}.json")
    sha, mach = commit(), machine()
    cmd = "python " + " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])
    for r in rows:
        r.setdefault("commit", sha)
        r.setdefault("machine", mach)
        r.setdefault("command", cmd)
        r.setdefault("quick", quick)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(rows, f, indent=1, default=float)
        f.write("\n")
    print_table(rows)
    print(f"wrote {out}")
    return out


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'row':44s} {'ours':>12s} {'reference':>12s} {'ratio':>8s} {'target':>7s}  met")
    for r in rows:
        tgt = "" if r.get("target") is None else f"{r['target']:g}"
        met = {True: "yes", False: "NO", None: "-"}[r.get("met")]
        ours, ref, ratio = (f"{r[k]:{w}}" if r.get(k) is not None else "-" for k, w in
                            (("ours", ".4g"), ("reference", ".4g"), ("ratio", ".3f")))  # None: not measured
        print(f"{r['name'][:44]:44s} {ours:>12s} {ref:>12s} {ratio:>8s} {tgt:>7s}  {met}")
