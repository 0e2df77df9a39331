"""Cluster use: a real Ray head on 127.0.0.1 with `ray start`, the baseline submitted
through `ray job submit`; and `ray submit` through the cluster launcher's local provider
(ssh to 127.0.0.1: `.ci/ssh-localhost.sh` sets it up, and CI requires it)."""

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


def ray_cli() -> list[str]:
    """The `ray` command as a user's shell finds it (the venv's bin first when it is on PATH), else the
    CLI of the `ray` package this interpreter imports (a venv made with --system-site-packages over a
    Python that already has Ray gets no `ray` executable of its own)."""
    here = os.path.join(os.path.dirname(sys.executable), "ray")
    found = here if os.access(here, os.X_OK) else shutil.which("ray")
    return [found] if found else [sys.executable, "-m", "ray.scripts.scripts"]


RAY = ray_cli()

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
    cmd = [*RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--dashboard-host=127.0.0.1",
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
    cmd = [*RAY, "job", "submit", "--address", dashboard, "--working-dir", ROOT, "--",
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


SSH_KEY = os.environ.get("DCLM_SSH_KEY") or next(
    (k for k in (os.path.expanduser("~/.ssh/dclm_ci_ed25519"), os.path.expanduser("~/.ssh/id_ed25519"))
     if os.path.exists(k)), "")
SSH_OPTS = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR"]


def _ssh_missing() -> str | None:
    """Why `ray submit` through the local provider cannot run here (None when it can)."""
    if shutil.which("ssh") is None:
        return "no ssh client"
    if not SSH_KEY:
        return "no ssh key (~/.ssh/dclm_ci_ed25519 or ~/.ssh/id_ed25519; run .ci/ssh-localhost.sh)"
    try:
        with socket.create_connection(("127.0.0.1", 22), timeout=1):
            pass
    except OSError:
        return "no sshd on 127.0.0.1:22 (run .ci/ssh-localhost.sh)"
    # the node's `python` (a login shell, as the launcher runs it) must import Ray and this package
    probe = "python -c 'import ray, curation'"
    r = subprocess.run(["ssh", "-i", SSH_KEY, *SSH_OPTS, "127.0.0.1", f'bash --login -c -i "{probe}"'],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        return f"ssh 127.0.0.1 works, but its python cannot import ray and curation: {r.stderr[-300:]}"
    return None


def _launcher_config(tmp_path, port: int, temp_dir: str, name: str) -> str:
    """pipelines/cluster.yaml for this machine: the same provider, mounts and auth, with free ports, our own
    temp dir and no `ray stop` (which would stop every Ray of this user on the machine), the package
    already installed on the node (it is this checkout)."""
    import yaml

    cfg = yaml.safe_load(open(os.path.join(ROOT, "pipelines", "cluster.yaml")))
    cfg["cluster_name"] = name
    cfg["auth"] = {"ssh_user": os.environ.get("USER") or "root", "ssh_private_key": SSH_KEY}
    cfg["file_mounts"] = {"~/dclm-curation-ci": ROOT}
    cfg["setup_commands"] = []
    dash, agent = _free_port(), _free_port()
    cfg["head_start_ray_commands"] = [
        f"RAY_AUTH_MODE=token RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 ray start --head --node-ip-address=127.0.0.1 "
        f"--port={port} --dashboard-host=127.0.0.1 --dashboard-port={dash} --dashboard-agent-listen-port={agent} "
        f"--num-cpus=2 --temp-dir={temp_dir} --autoscaling-config=~/ray_bootstrap_config.yaml "
        "--disable-usage-stats"
    ]
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


@pytest.mark.skipif(bool(_ssh_missing()) and not os.environ.get("DCLM_REQUIRE_SSH"),
                    reason="needs key-based ssh to an sshd on 127.0.0.1 (bash .ci/ssh-localhost.sh VENV)")
def test_ray_submit_through_the_local_provider(tmp_path):
    """`ray up` + `ray submit pipelines/baseline.py`, as users start (CI sets DCLM_REQUIRE_SSH=1 so that a
    missing sshd fails instead of skipping)."""
    missing = _ssh_missing()
    assert missing is None, missing
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    env.pop("RAY_ADDRESS", None)
    name = f"dclm-ci-{secrets.token_hex(3)}"
    temp_dir = f"/tmp/ray_submit_{secrets.token_hex(4)}"
    port = _free_port()
    cfg = _launcher_config(tmp_path, port, temp_dir, name)
    out = tmp_path / "run"
    try:
        up = subprocess.run([*RAY, "up", "-y", "--no-config-cache", cfg], env=env, capture_output=True, text=True,
                            timeout=600, cwd=ROOT)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        r = subprocess.run([*RAY, "submit", "--no-config-cache", cfg, os.path.join(ROOT, "pipelines", "baseline.py"),
                            "--", "--output", str(out), "--demo-docs", "200", "--blocks", "heuristics,dedup",
                            "--dedup", "exact,minhash", "--no-tokens", "--no-progress", "--executor", "ray",
                            "--address", f"127.0.0.1:{port}"],
                           env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        run = json.loads((out / "run.json").read_text())
        assert run["status"] == "complete" and run["executor"] == "ray"
        stats = json.loads((out / "stats.json").read_text())
        assert stats["totals"]["read"]["in"] >= 200
        for st in stats["stages"]:
            assert check_invariant(st) == []
    finally:
        # `ray down` would run `ray stop` on the node, stopping every Ray of this user here: stop ours only
        kill_processes_mentioning(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
        for state in (f"/tmp/cluster-{name}.state", f"/tmp/cluster-{name}.lock"):
            if os.path.exists(state):
                os.remove(state)
