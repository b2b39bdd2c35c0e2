"""Where the project keeps things, and the one exception type users see."""
import os
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
