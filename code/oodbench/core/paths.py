"""Where the project keeps things, and the one exception type users see (layer 0).

Every folder can be moved with an environment variable, so that a test suite or
a second checkout never touches the repository's own data, runs or results:
ODIN_DATA_DIR, ODIN_MODELS_DIR, ODIN_RUNS_DIR, ODIN_RESULTS_DIR, ODIN_FIGURES_DIR,
and ODIN_MIRROR for the local mirror the setup copies from.
"""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]   # code/oodbench/core/paths.py


def _folder(variable, default):
    value = os.environ.get(variable)
    return Path(value) if value else ROOT / default


def data_dir():
    return _folder("ODIN_DATA_DIR", "data")


def models_dir():
    return _folder("ODIN_MODELS_DIR", "models")


def runs_dir():
    return _folder("ODIN_RUNS_DIR", "runs")


def cache_dir():
    return runs_dir() / ".cache"


def results_dir():
    return _folder("ODIN_RESULTS_DIR", "results")


def figures_dir():
    return _folder("ODIN_FIGURES_DIR", "figures")


def shown(path):
    """``path`` relative to the repository when it lies inside it (for messages)."""
    path = Path(path)
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


class UserError(Exception):
    """A problem with the user's input or files: shown as one line, no traceback."""


def mirror_dir():
    """The local mirror to copy from: $ODIN_MIRROR, else ../shared when it exists."""
    env = os.environ.get("ODIN_MIRROR")
    if env:
        return Path(env)
    default = ROOT.parent / "shared"
    return default if default.is_dir() else None


INTERRUPTED = 130   # the shell's status for a command stopped by Ctrl-C


def report_errors(run):
    """Call ``run()`` for exit status 0; a UserError becomes one line on stderr and status 2;
    Ctrl-C one line and status 130 (every file is written whole or not at all, and a run
    folder is complete or marked unfinished, so the same command resumes or starts clean)."""
    try:
        run()
        return 0
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: nothing half-written was kept; the same command starts again "
              "where the finished work ends", file=sys.stderr)
        return INTERRUPTED
