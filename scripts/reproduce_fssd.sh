#!/usr/bin/env bash
# The FSSD repository's benchmark (megvii-research/FSSD_OoD_Detection), reproduced on LeNets
# trained here (models/lenet): Fashion-MNIST vs MNIST with Baseline, ODIN, Mahalanobis, Deep
# Ensemble, MC Dropout, Outlier Exposure and FSSD, mean ± std over 3 repetitions beside the
# FSSD README's numbers; then the same methods on the other OOD sets here (1 repetition).
# Writes results/fssd_fmnist.md and .csv. Resumable: each result is kept in runs/fssd/.
# Usage: bash scripts/reproduce_fssd.sh [OPTIONS for code/fssd_table.py]
#   e.g. bash scripts/reproduce_fssd.sh --sets MNIST --reps 1          (one repetition)
#        bash scripts/reproduce_fssd.sh --other-reps 1 2 3             (std on every set)
set -euo pipefail
source "$(dirname "$0")/venv.sh"
bash scripts/get_data.sh
started=$SECONDS
"$PY" code/fssd_table.py "$@"
echo "reproduce_fssd.sh: $((SECONDS - started)) s"
