"""A multi-node Ray cluster on this machine, one worker node killed during a global fit.

Three nodes started with `ray start` on 127.0.0.1 (free ports, token authentication on, distinct
`--num-cpus` and custom resources): a head that runs no tasks and two workers. The baseline's dedup
block (exact, MinHash, global BFF) runs against it with `--address`; when the MinHash fit has begun,
one worker node's raylet and its workers are SIGKILLed. Ray retries the lost tasks on the surviving
node (or one rerun finishes the job, resuming at the item); the outputs must be byte-identical to a
single-node run's. The test stops only the processes it started (they all mention its temp dir).

Binding: every node advertises 127.0.0.1 (`--node-ip-address`). Ray's single-machine mode, which also
makes its servers listen on 127.0.0.1 only, refuses a second node (`ray start --address` panics), so
these nodes run in Ray's multi-node mode, where the servers listen on every interface: token
authentication (on, with the test's own token) is what keeps other hosts out.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from curation.passes import load_markers
from tests.pipelines.test_cluster import ray_cli
from tests.stages_for_tests import kill_processes_mentioning

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_ports() -> list[str]:
    """Every port a node would otherwise take by default (two nodes on one machine collide on them)."""
    return [f"--node-manager-port={_free_port()}", f"--object-manager-port={_free_port()}",
            f"--dashboard-agent-listen-port={_free_port()}", f"--dashboard-agent-grpc-port={_free_port()}",
            f"--metrics-export-port={_free_port()}", f"--runtime-env-agent-port={_free_port()}"]


def _outputs(run_dir: str) -> dict[str, str]:
    out = {}
    for sub in ("data", "dropped", "quarantine"):
        for p in sorted(glob.glob(os.path.join(run_dir, sub, "**", "*.parquet"), recursive=True)):
            out[os.path.relpath(p, run_dir)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    out["stats.json"] = hashlib.sha256(open(os.path.join(run_dir, "stats.json"), "rb").read()).hexdigest()
    return out


def _baseline(out: str, demo: str, env: dict, extra: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, "pipelines/baseline.py", "--output", out, "--demo-dir", demo, "--demo-docs", "3000",
           "--blocks", "dedup", "--dedup", "exact,minhash,bff", "--no-tokens", "--no-progress", "--workers", "3",
           *extra]
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def test_multinode_baseline_with_a_worker_node_killed_mid_fit(tmp_path):
    ray = ray_cli()
    temp_dir = f"/tmp/ray_mn_{secrets.token_hex(4)}"
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1", "RAY_USAGE_STATS_ENABLED": "0",
           # a dead node is noticed within seconds, not the default half minute
           "RAY_health_check_period_ms": "500", "RAY_health_check_timeout_ms": "500",
           "RAY_health_check_failure_threshold": "4"}
    env.pop("RAY_ADDRESS", None)
    demo = str(tmp_path / "demo")

    # the single-node reference (in-process: the same passes, no cluster)
    ref = _baseline(str(tmp_path / "single"), demo, env, ["--executor", "local"])
    out_ref = ref.communicate(timeout=300)[0]
    assert ref.returncode == 0, out_ref[-3000:]

    port = _free_port()
    victim_port = None
    try:
        subprocess.run([*ray, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=0",
                        "--resources={\"head\": 1}", "--include-dashboard=false", f"--temp-dir={temp_dir}",
                        *_node_ports()], env=env, check=True, capture_output=True, timeout=120)
        for i, cpus in enumerate((1, 2)):
            ports = _node_ports()
            if i == 1:
                victim_port = ports[0].split("=")[1]
            subprocess.run([*ray, "start", f"--address=127.0.0.1:{port}", "--node-ip-address=127.0.0.1",
                            f"--num-cpus={cpus}", f"--resources={{\"worker{i}\": 1}}", f"--temp-dir={temp_dir}",
                            *ports], env=env, check=True, capture_output=True, timeout=120)
        out = str(tmp_path / "cluster")
        args = ["--executor", "ray", "--address", f"127.0.0.1:{port}"]
        p = _baseline(out, demo, env, args)
        # kill worker node 1 in the middle of the MinHash fit's map pass: some map items done, others in flight
        maps = os.path.join(out, "global", "*minhash*", "fit", "_passes", "map", "*.json")
        t0 = time.time()
        while not glob.glob(maps):
            assert p.poll() is None, p.communicate()[0][-3000:]
            assert time.time() - t0 < 180, "the MinHash fit never started"
            time.sleep(0.02)
        victims = _kill_node(victim_port)
        t_kill = time.time()
        assert victims, "found no process of the victim node"
        log = p.communicate(timeout=300)[0]
        reruns = 0
        if p.returncode != 0:  # a pass whose retries ran out: one rerun resumes at the item
            reruns = 1
            p = _baseline(out, demo, env, args)
            log += p.communicate(timeout=300)[0]
        assert p.returncode == 0, log[-4000:]
        run = json.loads(open(os.path.join(out, "run.json")).read())
        assert run["status"] == "complete" and run["executor"] == "ray"
        assert _outputs(out) == _outputs(str(tmp_path / "single")), f"outputs differ (reruns: {reruns})"
        # the victim node did work before it died; the fit went on without it
        # every item's marker (gathered per pass when the pass ended) says when, where and by whom it ran
        folders = {os.path.dirname(p) for p in glob.glob(os.path.join(out, "**", "_passes", "*", "*"), recursive=True)}
        markers = [(b["finished"], b) for d in folders for lst in load_markers(d).entries.values() for b in lst[:1]]
        assert any(b["pid"] in victims for t, b in markers if t < t_kill), "the victim node ran no item"
        after = [b for t, b in markers if t > t_kill]
        assert after and not any(b["pid"] in victims for b in after)
        map_dir = glob.glob(os.path.dirname(maps))[0]
        assert len(load_markers(map_dir).entries) == run["work_units"]
    finally:
        kill_processes_mentioning(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _kill_node(node_manager_port: str | None) -> set[int]:
    """SIGKILL the raylet of the node with this node manager port, its workers and agents (its child
    processes: Ray renames workers to ``ray::...``, so their command lines no longer name the port);
    returns their pids."""
    import psutil

    marks = (f"node_manager_port={node_manager_port}", f"node-manager-port={node_manager_port}")
    procs = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if any(m in cmd for m in marks):
            procs.append(proc)
            try:
                procs += proc.children(recursive=True)
            except psutil.Error:
                pass
    killed: set[int] = set()
    for proc in procs:
        try:
            proc.send_signal(signal.SIGKILL)
            killed.add(proc.pid)
        except psutil.Error:
            pass
    return killed
