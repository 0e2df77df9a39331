"""Cluster use: a real Ray head on 127.0.0.1 with `ray start`, the baseline submitted
through `ray job submit`; and `ray submit` through the local provider where sshd allows."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time

import pytest

from curation.stats import check_invariant
from tests.stages_for_tests import kill_processes_mentioning

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RAY = os.path.join(os.path.dirname(sys.executable), "ray")

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def head_node(tmp_path):
    # Token auth on deliberately (Ray 2.60's default for `ray start`), with our own token,
    # and Ray's single-machine mode so that every server binds to 127.0.0.1.
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(16),
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    env.pop("RAY_ADDRESS", None)
    temp_dir = f"/tmp/ray_test_{secrets.token_hex(4)}"
    port, dash, agent = _free_port(), _free_port(), _free_port()
    # free ports everywhere: another Ray on this machine may hold the default ones
    cmd = [RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--dashboard-host=127.0.0.1",
           f"--dashboard-port={dash}", f"--dashboard-agent-listen-port={agent}", "--num-cpus=2",
           f"--temp-dir={temp_dir}", "--include-dashboard=true"]
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=120)
    try:
        yield env, f"http://127.0.0.1:{dash}", f"127.0.0.1:{port}"
    finally:
        kill_processes_mentioning(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_ray_job_submit_runs_the_baseline(head_node, tmp_path):
    env, dashboard, _ = head_node
    out = tmp_path / "run"
    # the job server may need a moment after `ray start`
    cmd = [RAY, "job", "submit", "--address", dashboard, "--working-dir", ROOT, "--",
           sys.executable, "pipelines/baseline.py", "--output", str(out), "--demo-docs", "300",
           "--blocks", "heuristics", "--no-tokens", "--workers", "2", "--no-progress"]
    for _ in range(20):
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        log = r.stdout + r.stderr
        if r.returncode == 0 or not any(s in log for s in ("Connection", "No available agent", "try again")):
            break
        time.sleep(3)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "succeeded" in r.stdout
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete"
    stats = json.loads((out / "stats.json").read_text())
    assert stats["totals"]["read"]["in"] >= 300
    for st in stats["stages"]:
        assert check_invariant(st) == []
    assert len(os.listdir(out / "data")) == len(run["inputs"])


def _ssh_ready() -> bool:
    if shutil.which("ssh") is None:
        return False
    try:
        with socket.create_connection(("127.0.0.1", 22), timeout=1):
            pass
    except OSError:
        return False
    r = subprocess.run(["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "127.0.0.1", "true"],
                       capture_output=True, timeout=20)
    return r.returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _ssh_ready(), reason="needs key-based ssh to an sshd on 127.0.0.1 (see README, 'ray submit')")
def test_ray_submit_through_the_local_provider(tmp_path):
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    cfg = os.path.join(ROOT, "pipelines", "cluster.yaml")
    out = tmp_path / "run"
    try:
        subprocess.run([RAY, "up", "-y", cfg], env=env, check=True, timeout=900, cwd=ROOT)
        r = subprocess.run([RAY, "submit", cfg, os.path.join(ROOT, "pipelines", "baseline.py"), "--", "--output",
                            str(out), "--demo-docs", "200", "--blocks", "heuristics", "--no-tokens", "--address",
                            "auto"], env=env, capture_output=True, text=True, timeout=900, cwd=ROOT)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        assert json.loads((out / "run.json").read_text())["status"] == "complete"
    finally:
        subprocess.run([RAY, "down", "-y", cfg], env=env, timeout=300, cwd=ROOT)
