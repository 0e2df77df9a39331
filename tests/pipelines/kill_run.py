"""Run a dedup recipe through the runner in this process and SIGKILL this whole process group when a chosen
pass item starts (for tests/pipelines/test_resume_kill.py).

``python -m tests.pipelines.kill_run SPEC.json``: SPEC names the input parquet files, the run directory and the
function of a pass to watch (``module``, ``function``) with ``when``: argument index -> value, all of which must
match. The watched function keeps its module and name, so the markers are those of a normal run. Without
``module`` the recipe simply runs (the clean run and the rerun).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.kill_hook import kill_when


def recipe() -> list:
    from filters.dedup import BloomDedup, ExactDedup, MinHashDedup

    return [ExactDedup(key="text"), MinHashDedup(docs_per_partition=300, min_partitions=3, measure_curve=False),
            BloomDedup(fp_rate=1e-6, min_partitions=5)]


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    if spec.get("module"):
        kill_when(spec)
    from curation.runner import InputSpec, run_recipe

    res = run_recipe(recipe(), [InputSpec(p, "parquet", "web") for p in spec["inputs"]], spec["out"],
                     executor="local", batch_size=256, progress=False, report=False)
    return 0 if res.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
