#!/usr/bin/env bash
# LA-OOD (Wang et al., PAKDD 2022; haoliangwang86/LA-OOD) on densenet10 (ODIN's DenseNet-BC-100)
# and resnet56 (a CIFAR ResNet-56) against every OOD set here, LA-OOD's own TIN_lanczos and
# PureColour included: results/laood_<model>.md, .csv, _layers.csv and the figures
# figures/laood_<model>_layers.png and _deciding.png. Features and each layer's fit are
# cached in runs/.cache, so a second run takes minutes. Run compare_detectors.sh first to set
# LA-OOD beside the other detectors in the tables.
# Usage: bash scripts/reproduce_laood.sh [MODEL ...] [-- OPTIONS for code/laood_table.py]
#   e.g. bash scripts/reproduce_laood.sh densenet10 -- --subsample 2000
set -euo pipefail
source "$(dirname "$0")/venv.sh"
models=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do models+=("$1"); shift; done
[ $# -gt 0 ] && shift
[ ${#models[@]} -eq 0 ] && models=(densenet10 resnet56)
bash scripts/get_data.sh
for model in "${models[@]}"; do
  started=$SECONDS
  "$PY" code/laood_table.py --nn "$model" "$@"
  echo "reproduce_laood.sh: $model $((SECONDS - started)) s"
done
