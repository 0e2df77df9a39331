"""Run one dedup fit in this process and SIGKILL this whole process group when a chosen item starts.

For tests/filters/dedup/test_dedup_kill.py: ``python -m tests.filters.dedup.kill_fit SPEC.json`` where SPEC
holds ``stage`` (``minhash`` or ``bff``), its keyword arguments, the shards, the fit's workdir, and the pass
function to watch (``module``, ``function``) with ``when``: argument index -> value, all of which must match.
The watched function keeps its module and name, so the pass hashes (and markers) are those of a normal run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.kill_hook import kill_when


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    kill_when(spec)
    from curation.stage import PhaseShard
    from filters.dedup import BloomDedup, MinHashDedup
    from tests.filters.dedup.conftest import local_ctx

    stage = {"minhash": MinHashDedup, "bff": BloomDedup}[spec["stage"]](**spec["kwargs"])
    shards = [PhaseShard(*s) for s in spec["shards"]]
    stage.fit(local_ctx(shards, Path(spec["workdir"])))
    return 3  # the watched item never started: the test fails on this code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
