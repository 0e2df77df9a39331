"""Executor.run(num_gpus=...): each Ray task holds that many GPUs (a cluster declaring one GPU, in a
subprocess so that its Ray is its own)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CHILD = """
import json, os, sys
sys.path.insert(0, {root!r})
import ray
from ray._private import ray_constants
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ray_constants.ENABLE_RAY_CLUSTER = False
ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, _node_ip_address="127.0.0.1", configure_logging=False,
         runtime_env={{"env_vars": {{"PYTHONPATH": {root!r}}}}})
from curation.passes import ExecConfig, Executor, Item

def gpus(i):
    return [str(g) for g in ray.get_gpu_ids()]

ex = Executor(ExecConfig(mode="ray", num_workers=2, progress=False, memory_per_worker=64 << 20))
items = [Item(str(i), (i,)) for i in range(2)]
with_gpu = ex.run("gpu", gpus, items, marker_dir={out!r} + "/gpu", num_gpus=1).results
without = ex.run("cpu", gpus, items, marker_dir={out!r} + "/cpu").results
print(json.dumps({{"with": with_gpu, "without": without}}))
ray.shutdown()
"""


def test_tasks_hold_the_gpus_they_ask_for(tmp_path):
    code = CHILD.format(root=ROOT, out=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["with"] == [["0"], ["0"]]  # one GPU each (the cluster's only one, so one task at a time)
    assert got["without"] == [[], []]
