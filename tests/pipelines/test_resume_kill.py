"""The runner's outputs after a driver SIGKILLed (with its process group) in the middle of a global fit: (a) in
a MinHash connected-components round after the first, (b) in the global BFF filter pass. The rerun resumes at
the item (the counts it reports in passes.json) and data/, dropped/, quarantine/ and stats.json are
byte-identical to a clean run's. (The token shuffle's case: tests/curation/tokens/test_tokens_resume.py.)"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from curation.storage import write_parquet_atomic
from filters.dedup.synthetic import generate_shard

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def _inputs(tmp_path) -> list[str]:
    paths = []
    for s in range(3):
        t = generate_shard(s, 500, seed=6, exact_frac=0.05, near_frac=0.08, para_frac=0.15, mean_words=80)
        p = tmp_path / "in" / f"part-{s}.parquet"
        write_parquet_atomic(str(p), t)
        paths.append(str(p))
    return paths


def _run(tmp_path, name: str, inputs: list[str], out: Path, **watch) -> int:
    spec = {"inputs": inputs, "out": str(out), **watch}
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "tests.pipelines.kill_run", str(path)], cwd=ROOT, env=env,
                          start_new_session=True, capture_output=True, text=True, timeout=600)
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(proc.stderr[-3000:])
    return proc.returncode


def _outputs(run: Path) -> dict[str, str]:
    out = {}
    for sub in ("data", "dropped", "quarantine"):
        for p in sorted((run / sub).rglob("*.parquet")):
            out[str(p.relative_to(run))] = hashlib.sha256(p.read_bytes()).hexdigest()
    out["stats.json"] = hashlib.sha256((run / "stats.json").read_bytes()).hexdigest()
    return out


def _passes(run: Path) -> dict[str, list[tuple[int, int]]]:
    """{pass name: [(ran, skipped), ...]} of the last run (a name repeats: each fit has its map, gather...)."""
    out: dict[str, list[tuple[int, int]]] = {}
    for p in json.loads((run / "passes.json").read_text())["passes"]:
        out.setdefault(p["pass"], []).append((p["ran"], p["skipped"]))
    return out


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clean")
    inputs = _inputs(tmp)
    out = tmp / "run"
    assert _run(tmp, "clean", inputs, out) == 0
    return inputs, out


def test_kill_in_a_components_round_then_rerun(tmp_path, clean):
    inputs, clean_out = clean
    out = tmp_path / "run"
    # components._round(edge_files, msg_files, cc_dir, k, q, num_partitions): die when round 2 starts partition 2
    assert _run(tmp_path, "kill", inputs, out, module="filters.dedup.components", function="_round",
                when={"3": 2, "4": 2}) == -signal.SIGKILL
    assert not (out / "stats.json").exists()
    assert _run(tmp_path, "rerun", inputs, out) == 0
    passes = _passes(out)
    parts = sum(_passes(clean_out)["cc_r000"][0])  # MinHash partitions (from the corpus size and the budget)
    assert parts >= 3
    assert passes["p0"] == [(0, 3)] and passes["p1"] == [(0, 3)]  # read phase and the exact phase: complete
    assert passes["cc_r000"] == [(0, parts)] and passes["cc_r001"] == [(0, parts)]
    ran, skipped = passes["cc_r002"][0]
    assert ran + skipped == parts and skipped == 2  # partitions 0 and 1 of the killed round were complete
    assert _outputs(out) == _outputs(clean_out)


def test_kill_in_the_bff_filter_pass_then_rerun(tmp_path, clean):
    inputs, clean_out = clean
    out = tmp_path / "run"
    # bloom_global._filter_partition(files, lo, hi, whole, flt, wd, f, offsets): die when filter item 2 starts
    assert _run(tmp_path, "kill", inputs, out, module="filters.dedup.bloom_global", function="_filter_partition",
                when={"6": 2}) == -signal.SIGKILL
    assert _run(tmp_path, "rerun", inputs, out) == 0
    passes = _passes(out)
    assert [passes[k] for k in ("p0", "p1", "p2")] == [[(0, 3)]] * 3  # phases before BFF: complete
    assert "cc_r000" not in passes  # the MinHash fit had finished: its saved state is reused, nothing runs
    ran, skipped = passes["filter"][0]
    assert ran + skipped == 5 and 1 <= skipped < 5
    assert _outputs(out) == _outputs(clean_out)
