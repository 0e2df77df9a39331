#!/usr/bin/env bash
# Every CPU benchmark, one after another (run it on a quiet machine), then the generated tables:
#   bash bench/run_all.sh          # full runs (about two hours on 2 cores), then --quick runs
#   bash bench/run_all.sh quick    # --quick runs only (about ten minutes)
# GPU checks are bench/gpu.sh. A failing script is reported and the others still run.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
SCRIPTS=(heuristics runner extract dedup quality tokens kernels pipeline scale)
failed=()
modes=("--quick")
[ "${1:-full}" = "full" ] && modes=("" "--quick")
for mode in "${modes[@]}"; do
  for b in "${SCRIPTS[@]}"; do
    echo "=== bench/$b.py $mode ($(date +%T))"
    $PY "bench/$b.py" $mode || failed+=("$b $mode")
  done
  # exact-substring dedup writes its own rows (dedup_substring*.json): a separate run of bench/dedup.py
  echo "=== bench/dedup.py --substring $mode ($(date +%T))"
  $PY bench/dedup.py --substring $mode || failed+=("dedup --substring $mode")
done
$PY bench/report.py
$PY bench/capacity.py
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]}"
  exit 1
fi
