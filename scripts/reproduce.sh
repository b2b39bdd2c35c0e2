#!/usr/bin/env bash
# One command on a fresh machine: environment, data, then the default reproduction
# (densenet10, CIFAR-10 vs iSUN, T=1000, eps=0.0014). Extra arguments go to main.py.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
bash scripts/get_data.sh
cd code
exec ../.venv/bin/python main.py --nn densenet10 --out_dataset iSUN --magnitude 0.0014 \
  --temperature 1000 --gpu 0 "$@"
