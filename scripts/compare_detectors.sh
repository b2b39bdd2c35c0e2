#!/usr/bin/env bash
# Every detector x every OOD set here, per model (default densenet10):
#   results/detectors_<model>.md/.csv and figures/detectors_<model>.png.
# The baseline and ODIN rows are the runs of the model's results table (code/table.py, same
# (T, eps), same run folders); the other detectors score from the shared, cached feature pass.
# Resumable: finished runs, tuning grids and features are reused (runs/, runs/.cache).
# Usage: bash scripts/compare_detectors.sh [MODEL ...] [-- OPTIONS for code/compare.py],
#   e.g. bash scripts/compare_detectors.sh densenet10 resnet56 -- --tune-images 200
# (the committed tables were tuned on 200 held-out images a side; the default is 1,000).
set -euo pipefail
source "$(dirname "$0")/venv.sh"
models=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do models+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
[ ${#models[@]} -eq 0 ] && models=(densenet10)
bash scripts/get_data.sh
for nn in "${models[@]}"; do
  started=$SECONDS
  "$PY" code/compare.py --nn "$nn" "$@"
  echo "compare_detectors.sh: $nn in $((SECONDS - started)) s"
done
