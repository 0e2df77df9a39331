"""A driver SIGKILLed (with its whole process group) in the middle of a global fit resumes at the item:
(a) in a MinHash connected-components round after the first, (b) in the global BFF filter pass. The rerun
redoes only the unfinished items (counted per pass) and its removal lists / decision files are byte-identical
to a clean run's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from curation.passes import load_markers
from filters.dedup import BloomDedup, MinHashDedup
from filters.dedup.synthetic import generate_shard

from .conftest import local_ctx, pass_counts, removal_bytes, write_shards

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.integration


def _fit_killed(tmp_path, stage: str, kwargs: dict, shards, workdir: Path, module: str, function: str,
                when: dict[int, object]) -> None:
    spec = {"stage": stage, "kwargs": kwargs, "shards": [[s.shard_id, s.path, s.input_path] for s in shards],
            "workdir": str(workdir), "module": module, "function": function, "when": when}
    path = tmp_path / f"{stage}-spec.json"
    path.write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "tests.filters.dedup.kill_fit", str(path)], cwd=ROOT, env=env,
                          start_new_session=True, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]


def _markers(workdir: Path, name: str) -> int:
    """Items of the pass with a marker (per-item files of an unfinished pass, or gathered ones)."""
    return len(load_markers(str(workdir / "_passes" / name)).entries)


def test_kill_in_a_components_round_after_the_first(tmp_path):
    tables = [generate_shard(s, 600, seed=5, exact_frac=0.04, near_frac=0.08) for s in range(3)]
    shards = write_shards(tmp_path, tables)
    kw = {"docs_per_partition": 300, "min_partitions": 3, "measure_curve": False}
    clean = MinHashDedup(**kw).fit(local_ctx(shards, tmp_path / "clean"))
    rounds = clean.summary["components_rounds"]
    assert rounds >= 4 and clean.summary["partitions"] == 6
    wd = tmp_path / "killed"
    # _round(edge_files, msg_files, cc_dir, k, q, num_partitions): die when round 2 starts partition 3
    _fit_killed(tmp_path, "minhash", kw, shards, wd, "filters.dedup.components", "_round", {3: 2, 4: 3})
    assert [_markers(wd, f"cc_r{k:03d}") for k in range(4)] == [6, 6, 3, 0]
    assert not (wd / "minhash" / "cc" / "labels" / "r000").exists()  # cleaned once round 1 was complete
    ctx = local_ctx(shards, wd)
    resumed = MinHashDedup(**kw).fit(ctx)
    counts = pass_counts(ctx)
    assert {k: counts[k] for k in ("footers", "map", "reduce", "cc_r000", "cc_r001", "cc_r002")} == {
        "footers": (0, 3), "map": (0, 3), "reduce": (0, 6), "cc_r000": (0, 6), "cc_r001": (0, 6), "cc_r002": (3, 3)}
    assert all(counts[f"cc_r{k:03d}"] == (6, 0) for k in range(3, rounds))
    assert counts["cc_final"] == (6, 0) and counts["gather"] == (3, 0)
    assert removal_bytes(resumed) == removal_bytes(clean) and resumed.summary == clean.summary


def test_kill_in_the_global_bff_filter_pass(tmp_path):
    tables = [generate_shard(s, 250, seed=4, exact_frac=0.03, near_frac=0.03, para_frac=0.15, mean_words=100)
              for s in range(3)]
    shards = write_shards(tmp_path, tables)
    kw = {"fp_rate": 1e-6, "min_partitions": 5}
    clean = BloomDedup(**kw).fit(local_ctx(shards, tmp_path / "clean"))
    assert clean.summary["filter"]["filter_items"] == 5 and clean.summary["documents_removed"] > 0
    wd = tmp_path / "killed"
    # _filter_partition(files, lo, hi, whole, flt, wd, f, offsets): die when filter item 2 starts
    _fit_killed(tmp_path, "bff", kw, shards, wd, "filters.dedup.bloom_global", "_filter_partition", {6: 2})
    done = _markers(wd, "filter")
    assert 1 <= done < 5 and _markers(wd, "decide") == 0
    ctx = local_ctx(shards, wd)
    resumed = BloomDedup(**kw).fit(ctx)
    assert pass_counts(ctx) == {"footers": (0, 3), "map": (0, 3), "filter": (5 - done, done), "decide": (3, 0),
                                "gather": (3, 0)}
    assert removal_bytes(resumed) == removal_bytes(clean) and resumed.summary == clean.summary
