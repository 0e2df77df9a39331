"""A driver SIGKILLed (with its whole process group) in the verify pass of an exact-substring fit resumes at
the item: the rerun runs only the unfinished verify items and everything after them, and its decision files
are byte-identical to a clean run's.

The child side is this module: ``python -m tests.filters.dedup.test_substring_kill SPEC.json``."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from filters.dedup import SubstringDedup

from .conftest import local_ctx, pass_counts, removal_bytes, write_shards

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.integration
KW = {"min_len": 6, "min_words_after": 5, "anchors_per_partition": 40, "verify_tokens_per_item": 150,
      "min_partitions": 3}


def _child(spec_path: str) -> int:
    from curation.stage import PhaseShard
    from tests.filters.dedup.conftest import local_ctx as ctx_of
    from tests.kill_hook import kill_when

    spec = json.loads(Path(spec_path).read_text())
    kill_when(spec)
    shards = [PhaseShard(*s) for s in spec["shards"]]
    SubstringDedup(**spec["kwargs"]).fit(ctx_of(shards, Path(spec["workdir"])))
    return 3  # the watched item never started: the test fails on this code


def test_kill_in_the_verify_pass(tmp_path):
    from .test_substring import docs, planted_corpus

    texts = planted_corpus(random.Random(9), 60)
    shards = write_shards(tmp_path, [docs(texts[i : i + 20], prefix=f"d{i:03d}-") for i in range(0, 60, 20)])
    clean = SubstringDedup(**KW).fit(local_ctx(shards, tmp_path / "clean"))
    n_verify = clean.summary["verify_items"]
    assert clean.summary["verify_ranges"] > 5 and clean.summary["documents_cut"] > 0
    wd = tmp_path / "killed"
    # _verify(files, wd, key, cfg): die when the sixth hash range starts (items run heaviest first)
    spec = {"kwargs": KW, "shards": [[s.shard_id, s.path, s.input_path] for s in shards], "workdir": str(wd),
            "module": "filters.dedup.substring", "function": "_verify", "when": {2: "r00005"}}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "tests.filters.dedup.test_substring_kill",
                           str(tmp_path / "spec.json")], cwd=ROOT, env=env, start_new_session=True,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    done = len(list((wd / "_passes" / "verify").glob("*.json")))
    assert 0 < done < n_verify and not (wd / "_passes" / "decide").exists()
    ctx = local_ctx(shards, wd)
    resumed = SubstringDedup(**KW).fit(ctx)
    counts = pass_counts(ctx)
    assert {k: counts[k] for k in ("footers", "anchors", "repeats", "contexts")} == {
        "footers": (0, 3), "anchors": (0, 3), "repeats": (0, clean.summary["partitions"]), "contexts": (0, 3)}
    assert counts["verify"] == (n_verify - done, done) and counts["decide"] == (3, 0)
    assert removal_bytes(resumed) == removal_bytes(clean) and resumed.summary == clean.summary


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1]))
