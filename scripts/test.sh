#!/usr/bin/env bash
# One command on a fresh machine: environment, data, then the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
bash scripts/get_data.sh
exec .venv/bin/python -m pytest -q tests "$@"
