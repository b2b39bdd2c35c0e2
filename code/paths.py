"""Where the project keeps things, and the one exception type users see."""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "data"
MODELS_DIR = ROOT / "models"
RUNS_DIR = ROOT / "runs"


class UserError(Exception):
    """A problem with the user's input or files: shown as one line, no traceback."""


def mirror_dir():
    """The local mirror to copy from: $ODIN_MIRROR, else ../shared when it exists."""
    env = os.environ.get("ODIN_MIRROR")
    if env:
        return Path(env)
    default = ROOT.parent / "shared"
    return default if default.is_dir() else None


def report_errors(run):
    """Call ``run()`` for exit status 0; a UserError becomes one line on stderr and status 2."""
    try:
        run()
        return 0
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
