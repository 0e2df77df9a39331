#!/usr/bin/env python
"""Score one data mix: train the fixed-recipe proxy on its token stream, evaluate it, write result.json.

    python pipelines/score.py --data out/tokens --recipe tiny --out out/score \\
        --eval-dir ../shared/data/eval --tasks cpu --max-examples 100 --num-fewshot 0 \\
        --heldout clean='heldout/*.parquet'

The result JSON records the recipe, the data manifest's sha256, the seed, the git
commit and every metric (held-out loss per domain, each task's accuracy, centered
accuracy and probability of the correct answer, the CORE-like aggregate). A rerun
with the same settings reuses a finished result; an interrupted one resumes training.

Held-out text: without --heldout, the domain ``demo_clean`` is used: 200 documents of
the demo pool generator's clean prose drawn with a seed that no pool uses (fresh
documents, so in no training mix); --no-heldout skips held-out loss. See
``python -m train_small.eval score --help`` for every flag.
"""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train_small.eval.__main__ import main  # noqa: E402

DEFAULT_HELDOUT_DOCS = 200
DEFAULT_HELDOUT_SEED = "score-heldout-v1"  # a string seed: no integer pool seed can collide with it


def default_heldout(out_dir: str) -> str:
    """Write (once) the default held-out domain and return its path."""
    from demopool import clean_prose

    path = os.path.join(out_dir, "heldout_default", "demo_clean.jsonl")
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        rng = random.Random(DEFAULT_HELDOUT_SEED)
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            for _ in range(DEFAULT_HELDOUT_DOCS):
                f.write(json.dumps({"text": clean_prose(rng, rng.randint(100, 600))}) + "\n")
        os.replace(path + ".tmp", path)
    return path


def run(argv: list[str]) -> int:
    if "-h" in argv or "--help" in argv:
        print(__doc__)
        return main(["score", "--help"])
    if "--no-heldout" in argv:
        argv = [a for a in argv if a != "--no-heldout"]
    elif not any(a == "--heldout" or a.startswith("--heldout=") for a in argv):
        out = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--out"), None)
        out = out or next((a.split("=", 1)[1] for a in argv if a.startswith("--out=")), None)
        if out:
            argv = [*argv, "--heldout", f"demo_clean={default_heldout(out)}"]
    return main(["score", *argv])


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
