#!/usr/bin/env bash
# LA-OOD's co-training on resnet56, the study of docs/laood.md#co-training: the network
# co-trained for 5 epochs with lambda 0 (plain fine-tuning, the control), 0.001 (the
# authors') and 0.01 (cotrain.py: models/cotrained/resnet56_lambda<L>/), then each network
# before and after, every detector, every OOD set of the study (cotrain_table.py:
# results/cotrain_resnet56_tune200_n2000.md, .csv, figures/cotrain_resnet56_tune200_n2000.png).
# Resumable: a stopped co-training goes on from its last finished epoch; finished runs,
# features, fits and tunings are reused.
# Usage: bash scripts/cotrain_study.sh [MODEL] [-- OPTIONS for code/cotrain_table.py]
#   e.g. bash scripts/cotrain_study.sh resnet56 -- --epoch 1     (the epoch-1 checkpoints)
set -euo pipefail
source "$(dirname "$0")/venv.sh"
model=resnet56
if [ $# -gt 0 ] && [ "$1" != "--" ]; then model=$1; shift; fi
[ $# -gt 0 ] && shift
bash scripts/get_data.sh
runs=()
for lam in 0 0.001 0.01; do
  folder="models/cotrained/${model}_lambda${lam}"
  if [ ! -f "$folder/epoch5.json" ]; then
    started=$SECONDS
    "$PY" code/cotrain.py --nn "$model" --lambda "$lam" --out "$folder"
    echo "cotrain_study.sh: $model lambda $lam $((SECONDS - started)) s"
  fi
  runs+=("$folder")
done
"$PY" code/cotrain_table.py --nn "$model" --runs "${runs[@]}" --tune-images 200 \
  --max-images 2000 "$@"
