#!/usr/bin/env bash
# The known-answer calibration of the CPU proxies (issue 17): the exact commands behind sensitivity.json,
# sensitivity.md and sensitivity.png in this folder. Run from the repository root with ../shared/data beside it:
#   bash train_small/eval/results/sensitivity/run.sh [OUT]        (OUT defaults to runs/calibration)
#
# Clean text: five English domains of ../shared/data/corpora/text read in their native formats
# (train_small/eval/corpora.py: Wikipedia, Gutenberg books in 2,000-word pieces, Reuters news, Stack Exchange
# threads, the Python docs), 4 MB of each domain's training part as the pool (Stack Exchange holds 2.4 MB);
# 400 kB of each domain's held-out reference part (>= 120k tokens) scored per document.
# Mixes: clean, and the same pool with 25% of its documents degraded by each kind of filters/degrade.py.
# Metrics: reference bits per byte (token-weighted over the domains); the nine quick tasks (0-shot, 300
# examples each): the correct continuation's bits per byte, the centred normalised probability of the correct
# choice, accuracy. Every trial also fits its n-gram floor.
#
# The grid was run in three parts on the 2-core development machine, cheapest first, because the whole grid
# (cpu-1m and cpu-4m x 1M and 4M tokens x 6 mixes x 3 seeds) is about 9 hours there; the analysis (step 4)
# reads every finished trial of the whole grid and lists the ones not run (settings.trials_not_run). Rerunning
# a step resumes at the trial; a step run with more seeds or degradations adds trials to the same analysis.
set -euo pipefail
OUT=${1:-runs/calibration}
PY=${PYTHON:-python}
C=(-o "$OUT" --pool-bytes 20000000 --reference-bytes 400000 --workers 2 --no-progress)

# 1. cpu-1m (1.1M parameters) on 1M tokens: all five degradations, 3 seeds
$PY pipelines/calibrate.py "${C[@]}" --proxies cpu-1m --budgets 1m --seeds 3
# 2. cpu-1m on 4M tokens: all five degradations, 2 seeds
$PY pipelines/calibrate.py "${C[@]}" --proxies cpu-1m --budgets 4m --seeds 2
# 3. cpu-4m (4.6M parameters) on 1M tokens: two degradations, 2 seeds
$PY pipelines/calibrate.py "${C[@]}" --proxies cpu-4m --budgets 1m --seeds 2 --degrade shuffle:0.25 --degrade foreign:0.25
# 4. the analysis of the whole grid
$PY pipelines/calibrate.py -o "$OUT" --proxies cpu-1m,cpu-4m --budgets 1m,4m --seeds 3 --analyse-only
cp "$OUT/sensitivity.json" "$OUT/sensitivity.md" "$OUT/sensitivity.png" train_small/eval/results/sensitivity/

# 5. Added later: cpu-4m on 4M tokens, clean against boilerplate (the degradation no configuration above orders on
#    reference bits per byte), 2 seeds, about 75 minutes on the 2 cores. The trials of steps 1-3 were not kept, so
#    this corner of the grid was run in a folder of its own and has its own analysis (sensitivity/cpu-4m-4M/).
#    Same inputs and seed as steps 1-3: the mixes' token counts, the degraded fraction and the bigram floor's bits
#    per byte equal theirs (settings.stream_tokens, settings.achieved, floor).
B=(-o "$OUT-cpu-4m-4M" --proxies cpu-4m --budgets 4m --seeds 2 --degrade boilerplate:0.25 --no-progress)
$PY pipelines/calibrate.py "${B[@]}" --pool-bytes 20000000 --reference-bytes 400000 --workers 2
$PY pipelines/calibrate.py "${B[@]}" --analyse-only
mkdir -p train_small/eval/results/sensitivity/cpu-4m-4M
cp "$OUT-cpu-4m-4M/sensitivity.json" "$OUT-cpu-4m-4M/sensitivity.md" "$OUT-cpu-4m-4M/sensitivity.png" \
  train_small/eval/results/sensitivity/cpu-4m-4M/
