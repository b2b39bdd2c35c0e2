#!/usr/bin/env bash
# Every committed table and figure from nothing, resumable: the environment and the data
# (setup_env.sh, get_data.sh), then code/reproduce_all.py, which prints the plan (each step,
# done / skipped with the reason / to run, its estimated time on this machine) and runs it
# under one progress bar with an ETA. --dry-run prints the plan only, without installing or
# fetching anything when the environment is already there.
# Usage: bash scripts/reproduce_all.sh [--dry-run] [--only TEXT]
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ " $* " == *" --dry-run "* ]] && [ -x .venv/bin/python ]; then
  exec .venv/bin/python code/reproduce_all.py "$@"
fi
bash scripts/setup_env.sh
bash scripts/get_data.sh > /dev/null
exec .venv/bin/python code/reproduce_all.py "$@"
