#!/usr/bin/env python
"""Score one data mix: train the fixed-recipe proxy on its token stream, evaluate it, write result.json.

    python pipelines/score.py --data out/tokens --recipe tiny --out out/score \\
        --eval-dir ../shared/data/eval --tasks cpu --max-examples 100 --num-fewshot 0 \\
        --heldout clean=out/heldout/*.parquet

The result JSON records the recipe, the data manifest's sha256, the seed, the git
commit and every metric (held-out loss per domain, each task's accuracy, centered
accuracy and probability of the correct answer, the CORE-like aggregate). A rerun
with the same settings reuses a finished result; an interrupted one resumes training.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train_small.eval.__main__ import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["score", *sys.argv[1:]]))
