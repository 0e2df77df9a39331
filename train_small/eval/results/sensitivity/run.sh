#!/usr/bin/env bash
# The known-answer calibration of the CPU proxies (issue 17): the exact command behind sensitivity.json,
# sensitivity.md and sensitivity.png in this folder. Run from the repository root with ../shared/data beside it:
#   bash train_small/eval/results/sensitivity/run.sh [OUT]        (OUT defaults to runs/calibration)
#
# Clean text: five English domains of ../shared/data/corpora/text read in their native formats
# (train_small/eval/corpora.py: Wikipedia, Gutenberg books in 2,000-word pieces, Reuters news, Stack Exchange
# threads, the Python docs), 4 MB of each domain's training part as the pool (Stack Exchange holds 2.4 MB);
# 400 kB of each domain's held-out reference part (>= 120k tokens) scored per document.
# Mixes: clean, and the same pool with 25% of its documents degraded by each kind of filters/degrade.py.
# Proxies: cpu-1m (1.1M parameters) and cpu-4m (4.6M), 1M and 4M training tokens, 3 seeds, none repeated.
# Metrics: reference bits per byte (token-weighted over the domains); the nine quick tasks (0-shot, 300
# examples each): the correct continuation's bits per byte, the centred normalised probability of the correct
# choice, accuracy. Every trial also fits its n-gram floor.
# On 2 cores with nothing else running: about 9 hours (cpu-4m at 4M tokens is half of it); rerunning the command
# resumes at the trial. `--analyse-only` re-analyses the finished trials of the grid without training.
set -euo pipefail
OUT=${1:-runs/calibration}
PY=${PYTHON:-python}
$PY pipelines/calibrate.py -o "$OUT" --pool-bytes 20000000 --reference-bytes 400000 \
    --proxies cpu-1m,cpu-4m --budgets 1m,4m --seeds 3 --workers 2 --no-progress "${@:2}"
cp "$OUT/sensitivity.json" "$OUT/sensitivity.md" "$OUT/sensitivity.png" train_small/eval/results/sensitivity/
