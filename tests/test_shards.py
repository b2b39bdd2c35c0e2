"""Sharing the work over torchrun's processes (shards.py): how indices are split, and real
runs on 2 ranks (gloo, CPU) whose files are byte-identical to one process's, a rank killed
mid-run (nothing half-written; torchrun's restart resumes) and a rank without its GPU."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from oodbench.core import shards

ROOT = Path(__file__).resolve().parent.parent
HELPER = ROOT / "tests" / "helpers" / "faulty_rank.py"
RUN = ["--nn", "resnet20", "--out_dataset", "iSUN", "--max-images", "50", "--gpu", "-1"]
FOLDER = "resnet20_iSUN_T1000_eps0.0014_n50"


@pytest.mark.parametrize("n, ranks, align", [(10, 2, 1), (7, 3, 1), (2, 4, 1), (0, 2, 1),
                                             (1000, 7, 1), (100, 3, 32), (9000, 2, 32)])
def test_shards_are_contiguous_in_rank_order_and_cover_every_index(n, ranks, align):
    indices = range(1000, 1000 + n)
    parts = [shards.shard(indices, r, ranks, align) for r in range(ranks)]
    assert [i for part in parts for i in part] == list(indices)
    assert max(map(len, parts)) - min(map(len, parts)) <= align
    # each part starts on a batch boundary of one process's pass
    assert all((part.start - indices.start) % align == 0 for part in parts if len(part))


def test_one_process_runs_everything_itself():
    assert shards.size() == 1 and shards.leader()
    assert shards.map_shards(lambda part: list(part), range(5), None, "x") == [0, 1, 2, 3, 4]
    assert shards.by_leader(lambda x: x + 1)(1) == 2


def launch(outputs, *args, ranks=2, env=None, extra=()):
    """Run ``args`` (a script in code/ and its flags) under torchrun through the helper, its
    runs/, results/ and figures/ in ``outputs``; return the finished process."""
    environment = {**os.environ, "TQDM_DISABLE": "1", **(env or {}),
                   **{f"ODIN_{name.upper()}_DIR": str(outputs / name)
                      for name in ("runs", "results", "figures")}}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={ranks}", *extra, str(HELPER), *args]
    return subprocess.run(command, env=environment, capture_output=True, text=True,
                          timeout=600, cwd=ROOT)


def files(folder):
    """{relative path: bytes} of every file under ``folder`` but run.json (its timing)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "run.json"}


def test_two_ranks_write_what_one_process_writes(installed, tmp_path):
    """main.py (ODIN and a feature detector) and tune.py: score files, cache entries,
    the tuning record and its heat map byte for byte; rank 1, given folders of its own as if
    on another machine, neither reads nor writes any (the run reuses rank 0's cache)."""
    other = tmp_path / "rank1_disk"
    for ranks in (1, 2):
        out = tmp_path / f"ranks{ranks}"
        for args in (["main.py", *RUN], ["main.py", *RUN, "--method", "energy"],
                     ["tune.py", "--nn", "resnet20", "--out_dataset", "iSUN",
                      "--tune-images", "30", "--gpu", "-1"], ["main.py", *RUN]):
            done = launch(out, *args, ranks=ranks, env={"OTHER_DISKS": str(other)})
            assert done.returncode == 0, done.stderr[-3000:]
    assert "scores reused" in done.stdout       # the second ODIN run: from rank 0's cache
    assert done.stdout.count("AUROC:") == 1    # one report: rank 1 prints nothing
    assert [p for p in other.rglob("*") if p.is_file()] == []
    one, two = files(tmp_path / "ranks1"), files(tmp_path / "ranks2")
    assert len(one) >= 9                     # 6 score files, 3+ cache entries, record, map
    assert one.keys() == two.keys()
    assert [name for name in one if one[name] != two[name]] == []


def test_a_killed_rank_fails_the_run_and_a_restart_resumes(installed, tmp_path):
    out = tmp_path / "out"
    killed = launch(out, "main.py", *RUN, env={"KILL_RANK": "1", "KILL_AT": "iSUN"})
    assert killed.returncode != 0
    assert "rank 0: " in killed.stderr and shards.RESUME in killed.stderr  # says why it stopped
    run = out / "runs" / FOLDER
    assert not (run / "softmax_scores").exists() and not (run / "run.json").exists()
    entries = [p.name for p in (out / "runs" / ".cache").iterdir()]
    assert len(entries) == 1 and ".tmp" not in entries[0]  # the finished CIFAR-10 side, whole
    # torchrun restarts the group once (the helper kills in the first attempt only)
    restarted = launch(out, "main.py", *RUN, env={"KILL_RANK": "1", "KILL_AT": "iSUN"},
                       extra=["--max-restarts=1"])
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    assert "CIFAR-10 scores reused" in restarted.stdout + restarted.stderr
    single = launch(tmp_path / "single", "main.py", *RUN, ranks=1)
    assert single.returncode == 0
    assert files(run / "softmax_scores") == files(
        tmp_path / "single" / "runs" / FOLDER / "softmax_scores")


def test_a_rank_without_its_gpu_stops_every_rank_before_any_work(tmp_path):
    done = launch(tmp_path, "main.py", *RUN[:-2], "--gpu", "0", env={"FAKE_GPUS": "1"})
    assert done.returncode != 0
    assert "rank 1: GPU 1 does not exist" in done.stderr
    assert not (tmp_path / "runs").exists()
