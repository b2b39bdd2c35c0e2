"""An entry point run under torchrun with a fault injected, for tests/test_shards.py.

    python -m torch.distributed.run ... tests/helpers/faulty_rank.py main.py ARGS

KILL_RANK=r KILL_AT=<set>: rank r kills itself (SIGKILL, as an out-of-memory kill) when it
starts scoring <set>, in the first attempt only (torchrun's restart count 0).
FAKE_GPUS=n: torch says CUDA is there with n devices (no GPU is used: the run stops first).
OTHER_DISKS=<folder>: ranks other than 0 get runs/, results/ and figures/ of their own under
<folder>/rank<r>, as if on other machines: rank 0 must be the only one to read and write them.
"""
import os
import runpy
import signal
import sys
from pathlib import Path

CODE = Path(__file__).resolve().parents[2] / "code"
sys.path.insert(0, str(CODE))

if os.environ.get("OTHER_DISKS") and os.environ.get("RANK", "0") != "0":
    for name in ("runs", "results", "figures"):
        os.environ[f"ODIN_{name.upper()}_DIR"] = str(
            Path(os.environ["OTHER_DISKS"]) / f"rank{os.environ['RANK']}" / name)

from oodbench.scoring import odin_scoring  # noqa: E402
import torch  # noqa: E402

if os.environ.get("KILL_RANK") == os.environ.get("RANK") and \
        os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0":
    score_dataset = odin_scoring.score_dataset

    def dying(*args, **kwargs):
        if kwargs.get("desc") == os.environ["KILL_AT"]:
            os.kill(os.getpid(), signal.SIGKILL)
        return score_dataset(*args, **kwargs)
    odin_scoring.score_dataset = dying

if "FAKE_GPUS" in os.environ:
    torch.cuda.is_available = lambda: True
    torch.cuda.device_count = lambda: int(os.environ["FAKE_GPUS"])

script = sys.argv[1]
sys.argv = [script, *sys.argv[2:]]
runpy.run_path(str(CODE / script), run_name="__main__")
