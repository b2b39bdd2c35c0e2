# Sourced by the scripts that run the project's commands: from the repository root, with
# PY the project's Python; a clear error when the environment is not set up.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=.venv/bin/python
if [ ! -x "$PY" ]; then
  echo "error: no .venv here: run bash scripts/setup_env.sh first" >&2
  exit 2
fi
