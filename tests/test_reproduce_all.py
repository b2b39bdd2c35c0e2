"""reproduce_all.py: the plan before any work (done / skipped with the reason / to run, an
estimate each), steps stamped when they finish, a finished step never run again unless its
outputs changed, a failed step stops the run with its log and leaves the finished ones."""
import fnmatch

import pytest

from oodbench.commands import reproduce_all
from oodbench.commands.reproduce_all import Step
from oodbench.core.paths import ROOT


@pytest.fixture
def tiny(tmp_path, monkeypatch, private_outputs):
    """Two steps that write a file each (absolute paths), and a third that fails."""
    script = tmp_path / "step.py"
    script.write_text("import sys, pathlib\n"
                      "if sys.argv[1] == 'fail':\n    print('no space left'); sys.exit(3)\n"
                      "path = pathlib.Path(sys.argv[1])\n"
                      "path.write_text(path.read_text() + 'x' if path.exists() else 'x')\n")
    made = [tmp_path / "a.md", tmp_path / "b.md"]
    steps = [Step("first", (str(script), str(made[0])), (str(made[0]),), 10),
             Step("second", (str(script), str(made[1])), (str(made[1]),), 20,
                  reads=("first",)),
             Step("third, needs a missing model", (str(script), "fail"), (), 30,
                  ("densenet100",))]
    monkeypatch.setattr(reproduce_all, "steps", lambda: steps)
    monkeypatch.setattr(reproduce_all, "machine_speed",           # half as fast here
                        lambda: {f: s / 2 for f, s in reproduce_all.REFERENCE_SPEED.items()})
    return made, steps


def test_the_plan_before_any_work(tiny, capsys):
    made, _ = tiny
    assert reproduce_all.main(["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "to run    0:00:20  first  (reference time, scaled)" in out      # 10 s at half speed
    assert "to run    0:00:40  second" in out
    assert "skipped" in out and "densenet100" in out and "not found" in out
    assert "To run: 2 steps, about 0:01:00" in out
    assert not made[0].exists()                                         # a plan only


def test_steps_run_once_and_again_only_when_their_outputs_changed(tiny, capsys):
    made, _ = tiny
    assert reproduce_all.main([]) == 0
    assert [p.read_text() for p in made] == ["x", "x"]
    capsys.readouterr()
    assert reproduce_all.main([]) == 0                  # everything done: nothing runs
    assert [p.read_text() for p in made] == ["x", "x"]
    out = capsys.readouterr().out
    assert "done" in out.split("first")[0] and "To run: 0 steps" in out
    made[1].write_text("edited by hand")               # its output changed: run again
    assert reproduce_all.main(["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "to run" in out.split("second")[0].splitlines()[-1]
    assert "(its last run here)" in out                  # the estimate: its measured time


def test_a_failed_step_is_reported_with_its_log_and_the_others_go_on(tiny, capsys):
    made, steps = tiny
    steps.insert(0, Step("broken", (steps[0].argv[0], "fail"), (), 30))
    assert reproduce_all.main([]) == 2
    err = capsys.readouterr().err
    assert "step 'broken' failed (exit 3" in err and "no space left" in err
    assert [p.read_text() for p in made] == ["x", "x"]   # the steps after it ran
    assert reproduce_all.main(["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("done") == 2 and "to run" in out.split("broken")[0]   # resumes


def test_a_step_that_writes_nothing_is_not_done(tiny, capsys):
    made, steps = tiny
    steps[0] = Step("first", steps[0].argv, (str(made[0].with_name("never.md")),), 10)
    assert reproduce_all.main(["--only", "first"]) == 2
    assert "ended without writing" in capsys.readouterr().err
    assert reproduce_all.main(["--dry-run", "--only", "first"]) == 0
    assert "to run" in capsys.readouterr().out


def test_a_step_reading_one_that_ran_again_runs_again(tiny, capsys):
    made, _ = tiny
    assert reproduce_all.main([]) == 0
    capsys.readouterr()
    made[0].write_text("edited by hand")                 # 'first' runs again, so 'second'
    assert reproduce_all.main(["--dry-run"]) == 0       # (which reads it) too
    out = capsys.readouterr().out
    assert "a step it reads runs again" in out.split("second")[1].splitlines()[0]


def test_only_must_name_a_step(tiny, capsys):
    assert reproduce_all.main(["--only", "nothing like it"]) == 2
    assert "no step's name holds it" in capsys.readouterr().err


def test_only_a_whole_name_picks_that_step_alone(monkeypatch):
    steps = [Step(name, ("x",), (), 1) for name in ("table: a", "table: a, paper", "table: b")]
    monkeypatch.setattr(reproduce_all, "steps", lambda: steps)
    assert reproduce_all.chosen_steps("Table: A") == steps[:1]
    assert reproduce_all.chosen_steps("table: a") == steps[:1]
    assert reproduce_all.chosen_steps("table") == steps
    assert reproduce_all.chosen_steps("a, p") == steps[1:2]
    assert reproduce_all.chosen_steps(None) == steps


def test_the_real_plan_remakes_every_committed_result():
    """Every results/*.md committed is a step's output (the tables of models not on these
    machines too: their steps are skipped here with the reason, and run where they are)."""
    made = {p for step in reproduce_all.steps() for p in step.outputs}
    for path in (ROOT / "results").glob("*.md"):
        assert any(fnmatch.fnmatchcase(f"results/{path.name}", p) for p in made), path.name
    for step in reproduce_all.steps():
        assert (ROOT / step.argv[0]).is_file(), step.argv


def test_a_step_alone_is_estimated_with_the_caches_it_would_have_reused(tiny, capsys):
    made, steps = tiny
    steps.append(Step("fourth, reuses first's caches", (steps[0].argv[0], str(made[0])),
                      (str(made[0]),), 10, reuses=("first",), alone_s=50))
    assert reproduce_all.main(["--dry-run", "--only", "fourth"]) == 0   # first never ran
    assert "to run    0:01:40  fourth" in capsys.readouterr().out       # 50 s, half speed
    assert reproduce_all.main(["--dry-run"]) == 0                       # first runs before it
    assert "to run    0:00:20  fourth" in capsys.readouterr().out
    assert reproduce_all.main(["--only", "first"]) == 0                 # first has run here
    capsys.readouterr()
    assert reproduce_all.main(["--dry-run", "--only", "fourth"]) == 0
    assert "to run    0:00:20  fourth" in capsys.readouterr().out


def test_each_finished_step_records_its_time_and_a_new_machine_plans_with_it(tiny, capsys):
    made, steps = tiny
    assert reproduce_all.main(["--only", "first"]) == 0
    assert reproduce_all.main(["--only", "first"]) == 0               # done: not measured again
    made[0].write_text("edited by hand")                              # runs again, with its caches
    assert reproduce_all.main([]) == 0
    rows = reproduce_all.read_times()
    assert list(rows) == ["first", "second"]                          # the plan's order
    assert rows["first"]["calibration"] == "densenet"
    assert rows["first"]["images_s"] == f"{reproduce_all.REFERENCE_SPEED['densenet'] / 2:.1f}"
    assert rows["first"]["done_here_before"] == "first (an earlier run of it)"
    assert rows["second"]["done_here_before"] == "first"
    capsys.readouterr()
    for stamp in (reproduce_all.runs_dir() / "reproduce_all").iterdir():
        stamp.unlink()                                  # another machine, half as fast as
    reproduce_all.files.write_text(                     # the one that measured 'second'
        reproduce_all.results_dir() / reproduce_all.TIMES,
        "step,seconds,calibration,images_s,finished,done_here_before\n"
        f"second,600,densenet,{reproduce_all.REFERENCE_SPEED['densenet']:.1f},2026-12-07,\n")
    assert reproduce_all.main(["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "to run    0:20:00  second  (measured 2026-12-07 at DenseNet-BC-100 154 img/s, " \
           "scaled, from nothing)" in out
    assert "to run    0:00:20  first  (reference time, scaled)" in out
    assert "(1 of them measured before, the rest by reference estimate)" in out


def test_each_step_is_scaled_by_its_own_networks_speed(tiny, monkeypatch, capsys):
    """A machine twice as fast as the reference for a ResNet and half as fast for the
    DenseNet (as an Intel Xeon against the AMD reference, less extreme): each step by its own."""
    made, steps = tiny
    steps.append(Step("fourth, a ResNet's", (steps[0].argv[0], str(made[0])), (str(made[0]),),
                      10, family="resnet"))
    reference = reproduce_all.REFERENCE_SPEED
    monkeypatch.setattr(reproduce_all, "machine_speed", lambda: {
        "densenet": reference["densenet"] / 2, "resnet": reference["resnet"] * 2})
    assert reproduce_all.main(["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "to run    0:00:20  first" in out and "to run    0:00:05  fourth" in out
    assert reproduce_all.main(["--only", "fourth"]) == 0
    row = reproduce_all.read_times()["fourth, a ResNet's"]
    assert row["calibration"] == "resnet" and float(row["images_s"]) == reference["resnet"] * 2


@pytest.mark.parametrize("load, noted", [(0.1, False), (2.6, True)])
def test_a_busy_machine_is_told_its_estimates_are_too_long(tiny, monkeypatch, capsys, load,
                                                           noted):
    monkeypatch.setattr(reproduce_all.os, "getloadavg", lambda: (load, load, load))
    assert reproduce_all.main(["--dry-run"]) == 0
    assert ("busy while it measured its speed (load average 2.6" in capsys.readouterr().out) \
        == noted
