#!/usr/bin/env bash
# Fill data/ and models/ from the local mirror ($ODIN_MIRROR, default ../shared)
# or the original URLs, verifying every checksum; then rebuild TIN_crop/TIN_resize.
# Idempotent: what is already installed is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
exec "$PY" code/get_data.py "$@"
