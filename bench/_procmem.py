"""Memory of every process of a run, sampled: the driver, the task processes, and Ray's own servers.

The unit is the unique set size (USS: the pages only that process maps; a page shared by several
processes, e.g. a memory-mapped file or a library, is not counted once per process). Processes are
classified so that Ray's fixed cost is reported apart from ours:

* ``driver``: the root process (the job's own Python);
* ``task``: processes that run work items (Ray workers, ``ray::...`` / ``default_worker.py``, and any
  other descendant that is not a Ray server, e.g. datatrove's pool workers);
* ``ray``: Ray's servers (gcs_server, raylet, dashboard, agents, log monitor), whatever they hold.

    with TreeSampler(proc.pid) as s:
        proc.wait()
    s.summary()  # {"largest_ours_mib", "driver_peak_mib", "task_peak_mib", "ray_fixed_peak_mib", ...}
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psutil

RAY_SERVERS = ("gcs_server", "raylet", "dashboard", "agent", "log_monitor", "monitor.py", "runtime_env",
               "plasma", "redis")


def classify(proc: psutil.Process, root: int) -> str:
    if proc.pid == root:
        return "driver"
    try:
        cmd = " ".join(proc.cmdline())
        name = proc.name()
    except (psutil.Error, OSError):
        return "gone"
    if "default_worker.py" in cmd or name.startswith("ray::") or cmd.startswith("ray::"):
        return "task"
    if any(s in name or s in cmd for s in RAY_SERVERS) and ("ray" in cmd or "ray" in name):
        return "ray"
    return "task"


class TreeSampler:
    """Samples the USS of ``root`` and all its descendants every ``interval`` seconds, in a thread."""

    def __init__(self, root: int, interval: float = 0.25) -> None:
        self.root = root
        self.interval = interval
        self.peak: dict[str, float] = {"driver": 0.0, "task": 0.0, "ray": 0.0, "total": 0.0}
        self.largest_ours = 0.0
        self.largest_name = ""
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _procs(self) -> list[psutil.Process]:
        try:
            p = psutil.Process(self.root)
            return [p, *p.children(recursive=True)]
        except psutil.Error:
            return []

    def sample(self) -> None:
        sums = {"driver": 0.0, "task": 0.0, "ray": 0.0}
        for proc in self._procs():
            kind = classify(proc, self.root)
            if kind == "gone":
                continue
            try:
                uss = float(proc.memory_full_info().uss)
            except (psutil.Error, OSError):
                continue
            sums[kind] += uss
            if kind in ("driver", "task") and uss > self.largest_ours:
                self.largest_ours = uss
                try:
                    self.largest_name = f"{kind}:{proc.name()}"
                except psutil.Error:
                    self.largest_name = kind
        for k, v in sums.items():
            self.peak[k] = max(self.peak[k], v)
        self.peak["total"] = max(self.peak["total"], sum(sums.values()))
        self.samples += 1

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, Any]:
        mib = 2.0**20
        return {
            "largest_ours_mib": round(self.largest_ours / mib, 1),  # the largest single driver/task process
            "largest_ours_process": self.largest_name,
            "driver_peak_mib": round(self.peak["driver"] / mib, 1),
            "tasks_peak_sum_mib": round(self.peak["task"] / mib, 1),
            "ray_fixed_peak_mib": round(self.peak["ray"] / mib, 1),  # Ray's servers, apart from ours
            "tree_peak_mib": round(self.peak["total"] / mib, 1),
            "samples": self.samples,
        }


def run_sampled(cmd: list[str], env: dict[str, str] | None = None, cwd: str | None = None,
                interval: float = 0.25, timeout: float | None = None) -> dict[str, Any]:
    """Run ``cmd``; return its exit code, wall seconds, output tail and the memory summary."""
    import subprocess

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with TreeSampler(proc.pid, interval) as s:
        out, _ = proc.communicate(timeout=timeout)
    return {"returncode": proc.returncode, "wall_s": time.perf_counter() - t0, "output": out[-4000:],
            **s.summary()}


def run_child(script: str, kind: str, spec: dict[str, Any], root: str) -> dict[str, Any]:
    """Run ``python SCRIPT --child KIND SPEC_JSON`` (a benchmark's child mode, which prints one line
    ``RESULT <json>``), sampled; returns that result merged with the wall time and memory summary."""
    import json
    import os
    import sys

    cmd = [sys.executable, script, "--child", kind, json.dumps(spec)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.path.dirname(script)]),
           "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    r = run_sampled(cmd, env=env, cwd=root, timeout=6 * 3600)
    if r["returncode"] != 0:
        raise RuntimeError(f"{kind} run failed:\n{r['output']}")
    line = next(ln for ln in r["output"].splitlines()[::-1] if ln.startswith("RESULT "))
    return {**json.loads(line[len("RESULT "):]), **{k: v for k, v in r.items() if k != "output"}}


def child_main(argv: list[str], children: dict[str, Any]) -> int:
    """The child side of :func:`run_child`: ``argv`` is ``[KIND, SPEC_JSON]``; runs ``children[KIND](**spec)``
    and prints its result as the one ``RESULT <json>`` line the parent reads."""
    import json

    kind, spec = argv[0], json.loads(argv[1])
    print("RESULT " + json.dumps(children[kind](**spec)), flush=True)
    return 0
