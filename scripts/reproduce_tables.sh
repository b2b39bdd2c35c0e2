#!/usr/bin/env bash
# Every results table and figure that can be made here: each model against every OOD set,
# baseline and ODIN (results/<model>.md/.csv, figures/<model>/, results/README.md).
#   release models: the release's (T, eps), rebuilt/extra sets tuned by (a), and the three
#                   tuning modes side by side (results/<model>_modes.md)
#   other models:   tuned by (b), on TIN_val
# Resumable: finished runs and tuning grids are reused (runs/, runs/.cache); --force rescores.
# Options go to code/table.py, e.g. --tune-images 200 (default 1000, the paper's), --force,
# --gpu 0 / --device cpu, --batch-size 128. Run bash scripts/setup_env.sh first.
set -euo pipefail
source "$(dirname "$0")/venv.sh"
bash scripts/get_data.sh
started=$SECONDS
for nn in densenet10 densenet100 wideresnet10 wideresnet100; do
  "$PY" code/table.py --nn "$nn" --compare-modes "$@"
done
for nn in resnet20 resnet32 resnet44 resnet56 dice_densenet10 necas_densenet10 \
          dice_densenet100 resnet56_cifar100; do
  "$PY" code/table.py --nn "$nn" --settings transfer "$@"
done
"$PY" code/table.py --index     # results/README.md: the index of the tables made
echo "reproduce_tables.sh: every table in $((SECONDS - started)) s; index: results/README.md"
