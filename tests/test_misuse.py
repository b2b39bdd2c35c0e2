"""Misuses a new user makes (issue "Nothing lost, nothing stale"), each a clear early error or
a correct run: a run folder holds one run, whole and checked against run.json; a shorter run
never replaces a whole table; ranges are refused before any work; Ctrl-C leaves nothing
half-written; two identical runs at once both finish complete. The case numbers are the
issue's."""
import json
import multiprocessing
import os
import subprocess
import sys

import pytest
import torch

from oodbench.commands import calmetric, compare, fssd_table, laood_table, main, train
from oodbench.core import files, scorefiles
from oodbench.core.paths import ROOT, UserError, results_dir, runs_dir
from oodbench.pipelines import feature_runs, runs
from oodbench.reports import metric_block

RUN = ["--nn", "resnet20", "--out_dataset", "iSUN", "--max-images", "20", "--gpu", "-1",
       "--compile", "off"]


def score_lines(folder, tag, side):
    return (folder / "softmax_scores" / f"confidence_{tag}_{side}.txt").read_text().splitlines()


def parse_error(parse, argv, capsys):
    """The last stderr line of an argparse refusal (exit 2), asserting no traceback."""
    with pytest.raises(SystemExit) as stop:
        parse(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "Traceback" not in err
    return err.strip().splitlines()[-1]


# 1, 2, 14, 20: a run folder holds one run, whole, checked against run.json

def test_a_folder_holding_another_run_is_refused_or_replaced_whole(installed, tmp_path, capsys):
    """1: before, an Energy run into an ODIN run's folder left ODIN's files beside Energy's
    and calMetric.py printed all three columns."""
    folder = tmp_path / "D"
    assert main.main([*RUN, "--out-dir", str(folder)]) == 0
    odin = {p.name: p.read_bytes() for p in (folder / "softmax_scores").iterdir()}
    capsys.readouterr()
    assert main.main([*RUN, "--method", "energy", "--out-dir", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {folder} holds another run (resnet20_iSUN_T1000_eps0.0014_n20): "
                   "choose another folder, or pass --force to replace that run\n")
    assert {p.name: p.read_bytes() for p in (folder / "softmax_scores").iterdir()} == odin
    assert main.main([*RUN, "--out-dir", str(folder)]) == 0      # the same run: replaced
    assert main.main([*RUN, "--method", "energy", "--out-dir", str(folder), "--force"]) == 0
    assert sorted(p.name for p in (folder / "softmax_scores").iterdir()) == [
        "confidence_Energy_In.txt", "confidence_Energy_Out.txt"]
    assert list(metric_block.run_metrics(folder)) == ["Energy"]
    (folder / "softmax_scores" / "confidence_Our_In.txt").write_text("1000, 0.0, 0.5\n")
    with pytest.raises(UserError, match="confidence_Our_In.txt: not a file of the run"):
        metric_block.run_metrics(folder)


@pytest.fixture
def odin_run(installed, tmp_path):
    folder = tmp_path / "run"
    assert main.main([*RUN, "--out-dir", str(folder)]) == 0
    return folder


@pytest.mark.parametrize("damage, message", [
    (lambda lines: lines[:10], "confidence_Our_In.txt: 10 lines, but run.json records 20"),
    (lambda lines: lines + lines[-1:], "confidence_Our_In.txt: 21 lines, but run.json records"),
    (lambda lines: lines[:-1] + ["1000, 0.0014, 0.5"],
     "confidence_Our_In.txt: its content differs from the sha256 run.json records"),
])
def test_a_score_file_that_lost_or_gained_lines_is_refused(odin_run, damage, message, capsys):
    """2, 20: before, calMetric.py printed metrics over half a file, or over a duplicated
    line, and compare.py counted the run finished because its files existed."""
    path = odin_run / "softmax_scores" / "confidence_Our_In.txt"
    path.write_text("\n".join(damage(path.read_text().splitlines())) + "\n")
    capsys.readouterr()
    assert calmetric.main([str(odin_run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}") and message in err and err.count("\n") == 1
    assert runs.finished(odin_run) is None             # table.py and compare.py rescore it
    assert "scoring the run again" in capsys.readouterr().out


def test_a_bare_score_folder_whose_files_disagree_is_refused(tmp_path):
    """2: a folder of the release's four files without run.json: the files of one side must
    agree in length across methods."""
    scores = [0.1 * i for i in range(8)]
    sides = [(m, s) for m in ("Base", "Our") for s in ("In", "Out")]
    scorefiles.write_scores(tmp_path, 1000, 0.0014, {side: scores for side in sides})
    assert set(metric_block.run_metrics(tmp_path)) == {"Baseline", "ODIN"}
    scorefiles.write_scores(tmp_path, 1000, 0.0014, {("Our", "In"): [0.1, 0.2, 0.3]})
    with pytest.raises(UserError, match=r"the In files disagree in length "
                                        r"\(confidence_Base_In.txt 8, confidence_Our_In.txt 3"):
        metric_block.run_metrics(tmp_path)


def test_an_earlier_versions_run_is_checked_by_its_line_counts(odin_run):
    """run.json written before digests were recorded: each score file must have
    images_per_side lines, and only the run's own files be there."""
    info = json.loads((odin_run / "run.json").read_text())
    for key in ("run", "complete", "files"):
        del info[key]
    (odin_run / "run.json").write_text(json.dumps(info))
    assert scorefiles.problem(odin_run) is None
    path = odin_run / "softmax_scores" / "confidence_Base_Out.txt"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:5]))
    assert scorefiles.problem(odin_run) == (f"{path}: 5 lines, but run.json says 20 images "
                                            "a side")


def test_score_files_without_run_json_are_another_run_unless_the_folder_bears_its_name(
        tmp_path):
    """A bare folder of score files is refused as a run folder (--force replaces them); in
    runs/, a folder named by the run's settings holding score files but no run.json is an
    earlier version's unfinished run of those settings, scored again without --force."""
    scores = {("Our", "In"): [0.5], ("Our", "Out"): [0.5]}
    scorefiles.write_scores(tmp_path / "bare" / "softmax_scores", 1000, 0.0, scores)
    with pytest.raises(UserError, match="holds another run \\(score files that no run.json"):
        scorefiles.check_folder(tmp_path / "bare", "resnet20_iSUN_T1000_eps0.0")
    scorefiles.check_folder(tmp_path / "bare", "resnet20_iSUN_T1000_eps0.0", force=True)
    named = tmp_path / "resnet20_iSUN_T1000_eps0.0"
    scorefiles.write_scores(named / "softmax_scores", 1000, 0.0, scores)
    scorefiles.check_folder(named, "resnet20_iSUN_T1000_eps0.0")
    (named / "run.json").write_text("{not json")          # the same in a damaged run.json
    scorefiles.check_folder(named, "resnet20_iSUN_T1000_eps0.0")
    assert runs.finished(named) is None


def test_ctrl_c_leaves_nothing_and_the_same_command_runs_again(installed, tmp_path,
                                                               capsys, monkeypatch):
    """14: before, Ctrl-C gave a KeyboardInterrupt traceback and left an empty run folder."""
    folder = tmp_path / "deep" / "run"
    real = runs.score_images

    def stopped_on_the_ood_side(model, dataset, indices, desc, settings):
        if desc == "iSUN":
            raise KeyboardInterrupt
        return real(model, dataset, indices, desc, settings)
    monkeypatch.setattr(runs, "score_images", stopped_on_the_ood_side)
    assert main.main([*RUN, "--out-dir", str(folder)]) == 130
    assert "\ninterrupted: nothing half-written was kept" in capsys.readouterr().err
    assert not (tmp_path / "deep").exists()
    monkeypatch.setattr(runs, "score_images", real)
    assert main.main([*RUN, "--out-dir", str(folder)]) == 0
    assert scorefiles.problem(folder) is None


def test_a_run_stopped_while_written_is_never_read_as_finished(odin_run, monkeypatch, capsys):
    """14: Ctrl-C between two score files: run.json says the run is being written, calMetric.py
    refuses it, and the next command writes it whole."""
    real = files.write_text
    calls = []

    def stop_after_two(path, text):     # run.json's "being written", then one score file
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real(path, text)
    monkeypatch.setattr(files, "write_text", stop_after_two)
    assert main.main([*RUN, "--out-dir", str(odin_run)]) == 130
    capsys.readouterr()
    assert calmetric.main([str(odin_run)]) == 2
    assert "its run was stopped while being written" in capsys.readouterr().err
    assert runs.finished(odin_run) is None
    monkeypatch.setattr(files, "write_text", real)
    assert main.main([*RUN, "--out-dir", str(odin_run)]) == 0
    assert scorefiles.problem(odin_run) is None


# 3, 4: a shorter run never replaces a whole table; an out-name is a name

def test_a_shortened_fssd_run_writes_its_own_table(capsys):
    """3: before, --max-images 1200 --reps 1 --methods Baseline wrote results/fssd_fmnist.md
    over the full table, its header still saying 9,000 images."""
    args = fssd_table.parse_args(["--max-images", "1200", "--reps", "1", "--sets", "MNIST",
                                  "--methods", "Baseline"])
    assert fssd_table.table_name(args) == "fssd_fmnist_n1200_sets-MNIST_reps1_methods-Baseline"
    assert fssd_table.table_name(fssd_table.parse_args([])) == "fssd_fmnist"
    assert fssd_table.table_name(fssd_table.parse_args(
        ["--methods", "Mahalanobis (TIN val)", "FSSD"])) == \
        "fssd_fmnist_methods-MahalanobisTINval-FSSD"
    with pytest.raises(UserError, match="--out-name fssd_fmnist is the whole protocol's table"):
        fssd_table.table_name(fssd_table.parse_args(["--max-images", "1200",
                                                     "--out-name", "fssd_fmnist"]))


@pytest.mark.parametrize("name", ["../../etc/x", "a/b", "..", ".hidden", ""])
def test_an_out_name_with_a_folder_in_it_is_refused_while_parsing(name, capsys):
    """4: before, --out-name ../../etc/x scored for minutes, then died with a traceback."""
    line = parse_error(fssd_table.parse_args, ["--out-name", name], capsys)
    assert "argument --out-name: must be a plain file name" in line


# 5, 6, 7, 13, 20: train.py

@pytest.mark.parametrize("argv, message", [
    (["--lr", "inf"], "argument --lr: must be a finite number > 0, got inf"),
    (["--lr", "nan"], "argument --lr: must be a finite number > 0, got nan"),
    (["--lr", "-1"], "argument --lr: must be a finite number > 0, got -1"),
    (["--epochs", "0"], "argument --epochs: must be at least 1, got 0"),
    (["--max-steps", "-3"], "argument --max-steps: must be at least 1, got -3"),
    (["--seed", "-1"], "argument --seed: must be from 0 to 4294967295, got -1"),
    (["--oe", "--init", "x.pt", "--outliers", "NoSuchSet"],
     "argument --outliers: invalid choice: 'NoSuchSet' (choose from 'TIN_val_grey')"),
])
def test_train_refuses_bad_settings_while_parsing(argv, message, capsys):
    """5, 7, 13, 20: before, --lr inf saved a checkpoint full of NaN, --lr nan and -1 ended in
    the optimiser's traceback, and --outliers listed only the sets it refuses."""
    assert parse_error(train.parse_args, ["--out", "m.pt", *argv], capsys).endswith(message)


def test_training_stops_at_a_loss_that_is_not_finite(installed, tmp_path):
    """5: a finite but far too large rate: training stops at the first non-finite loss and
    writes no checkpoint."""
    out = tmp_path / "m.pt"
    with pytest.raises(UserError, match=r"epoch 1, step \d: the loss is nan, not finite: "
                                        "training stopped and nothing saved"):
        train.run(train.parse_args(["--out", str(out), "--lr", "1e30", "--epochs", "1",
                                    "--max-steps", "5"]))
    assert not out.exists() and not out.with_name("m.pt.partial").exists()


def test_a_partial_that_does_not_fit_the_network_says_how_to_start_over(installed, tmp_path):
    """6: before, a .partial of another network ended in load_state_dict's traceback."""
    out = tmp_path / "m.pt"
    recipe = train.recipe_of(train.parse_args(["--out", str(out), "--epochs", "1",
                                               "--max-steps", "2"]))
    other = torch.nn.Linear(3, 2)
    optimiser = torch.optim.Adadelta(other.parameters())
    torch.save(dict(recipe=recipe, epoch=0, model=other.state_dict(),
                    optimiser=optimiser.state_dict(),
                    scheduler=torch.optim.lr_scheduler.StepLR(optimiser, 1).state_dict()),
               out.with_name("m.pt.partial"))
    with pytest.raises(UserError, match=r"m.pt.partial does not fit this network or optimiser "
                                        r"\(Error\(s\) in loading state_dict for LeNet.*\): "
                                        "delete it to train from the start"):
        train.run(train.parse_args(["--out", str(out), "--epochs", "1", "--max-steps", "2"]))


# 8-12, 15, 18: every range is checked before any work

@pytest.fixture
def no_work(monkeypatch):
    """Any model load or feature pass fails the test: the error must come before."""
    def fail(*args, **kwargs):
        pytest.fail("work started before the arguments were checked")
    for target in (runs, feature_runs):
        monkeypatch.setattr(target, "load_model", fail)
    monkeypatch.setattr(feature_runs.FeatureScorer, "train_features", fail)
    monkeypatch.setattr(runs, "load_scorer", fail)


@pytest.mark.parametrize("argv, message", [
    (["--tune-images", "5000"], "error: --tune-images must be from 1 to 1000"),
    (["--skip", "10", "--tune-images", "20"],
     "error: --tune-images must be from 1 to 10: the tuning images (indices 0..N-1) must lie "
     "before the evaluated ones (from --skip 10)"),
    (["--skip", "0"], "error: --skip 0 leaves no held-out images to tune on"),
])
def test_compare_refuses_tuning_images_outside_the_held_out_ones(argv, message, no_work, capsys):
    """8, 9: before, --tune-images 0 or 5000 gave blank MSP and ODIN rows and exit 0, and
    --skip 10 --tune-images 20 tuned on evaluated images while the note said otherwise."""
    assert compare.main(["--nn", "resnet20", "--gpu", "-1", *argv]) == 2
    assert capsys.readouterr().err.startswith(message)
    assert not results_dir().exists()


def test_compare_on_a_model_not_here_fails_like_main(nothing_installed, capsys):
    """10: before, compare.py --nn densenet100 wrote an empty table and exited 0."""
    assert main.main(["--nn", "densenet100", "--gpu", "-1", "--out_dataset", "Uniform"]) == 2
    expected = capsys.readouterr().err
    assert compare.main(["--nn", "densenet100", "--gpu", "-1"]) == 2
    assert capsys.readouterr().err == expected and "cifar100 is not available here" in expected
    assert not results_dir().exists() and not runs_dir().exists()


def test_laood_refuses_a_subsample_larger_than_the_training_set(installed, no_work, capsys):
    """11: before, --subsample 60000 failed after 245 s of feature extraction."""
    assert laood_table.main(["--nn", "resnet20", "--subsample", "60000", "--gpu", "-1"]) == 2
    assert capsys.readouterr().err == ("error: laood: --subsample must be at most 50000 (the "
                                       "training images), got 60000\n")


@pytest.mark.parametrize("parse, argv, message", [
    (main.build_parser().parse_args, ["--max-images", "0"], "must be at least 1, got 0"),
    (compare.build_parser().parse_args, ["--max-images", "0"], "must be at least 1, got 0"),
    (compare.build_parser().parse_args, ["--tune-images", "0"], "must be at least 1, got 0"),
    (laood_table.build_parser().parse_args, ["--max-images", "0"], "must be at least 1, got 0"),
    (laood_table.build_parser().parse_args, ["--subsample", "50"], "must be at least 100, got 50"),
    (fssd_table.parse_args, ["--max-images", "0"], "must be at least 1001, got 0"),
    (main.build_parser().parse_args, ["--seed", "-1"], "must be from 0 to 4294967295, got -1"),
    (calmetric.main, ["somewhere", "--num-classes", "-3"], "must be at least 2, got -3"),
    (main.build_parser().parse_args, ["--batch-size", "0"], "must be at least 1, got 0"),
])
def test_out_of_range_numbers_are_refused_while_parsing(parse, argv, message, capsys):
    """12, 13, 15: before, --max-images 0 made empty outputs, --seed -1 was a numpy
    traceback and calMetric.py --num-classes -3 was accepted."""
    assert parse_error(parse, argv, capsys).endswith(message)


def test_gen_refuses_more_top_classes_than_the_model_has(no_work, capsys):
    """15: before, --top-m 50 on a 10-class model was accepted."""
    assert main.main(["--nn", "resnet20", "--method", "gen", "--top-m", "50", "--gpu", "-1"]) == 2
    assert capsys.readouterr().err == ("error: gen: --top-m must be at most the number of "
                                       "classes, 10, got 50\n")


def test_convert_checkpoint_refuses_a_missing_or_unreadable_file(tmp_path, capsys):
    """18: before, a missing source was a FileNotFoundError traceback."""
    from oodbench.commands import convert_checkpoint
    assert convert_checkpoint.main([str(tmp_path / "none.pth"), str(tmp_path / "out.pt")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'none.pth'}: no such file\n"
    (tmp_path / "junk.pth").write_bytes(b"not a pickle")
    assert convert_checkpoint.main([str(tmp_path / "junk.pth"), str(tmp_path / "out.pt")]) == 2
    assert "not a readable checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "out.pt").exists()


# 16: too few images to mean anything

def test_a_run_on_too_few_images_says_its_metrics_mean_little(installed, tmp_path, capsys):
    """16: before, a run over one image a side printed an AUROC without a word."""
    folder = tmp_path / "one"
    assert main.main(["--nn", "resnet20", "--out_dataset", "iSUN", "--max-images", "1",
                      "--gpu", "-1", "--out-dir", str(folder)]) == 0
    assert ("Warning: 1 in-distribution and 1 OOD images: with fewer than 100 a side these "
            "metrics are not meaningful") in capsys.readouterr().out
    assert calmetric.main([str(folder)]) == 0
    assert "Warning: 1 in-distribution" in capsys.readouterr().out
    assert metric_block.few_images_note(tmp_path / "none") == ""


# 17: unique temporary names, atomic renames

def _write_many(path, text, start):
    start.wait()            # both imported and ready: their writes overlap
    for _ in range(200):
        files.write_text(path, text)


def test_two_processes_writing_one_file_both_finish_with_it_whole(tmp_path):
    """17: before, every writer used one fixed '<name>.tmp': two writers interleaved in it and
    one's rename found it gone (FileNotFoundError)."""
    path, text = tmp_path / "table.md", "x" * 200_000 + "\n"
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    workers = [context.Process(target=_write_many, args=(path, text, start)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [w.exitcode for w in workers] == [0, 0]
    assert path.read_text() == text and [p.name for p in tmp_path.iterdir()] == ["table.md"]


def test_two_identical_runs_at_once_both_finish_complete(installed, tmp_path):
    """17: two main.py processes scoring the same run into one new folder at the same time:
    both exit 0, and the folder holds one complete run that run.json vouches for (a smoke
    test of the whole path: how far their writes overlap is up to the scheduler; the test
    above makes the writes themselves overlap)."""
    folder = tmp_path / "shared"
    command = [sys.executable, str(ROOT / "code" / "main.py"), *RUN, "--out-dir", str(folder)]
    started = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(2)]
    outcomes = [p.communicate(timeout=600) for p in started]
    assert [p.returncode for p in started] == [0, 0], [err[-2000:] for _, err in outcomes]
    assert scorefiles.problem(folder) is None
    assert len(score_lines(folder, "Our", "Out")) == 20


# 19: no inductor warning about CUDA on a CPU run

def test_compiling_on_the_cpu_keeps_inductors_cuda_warning_off():
    """19: the README's first command printed "No CUDA runtime is found, using CUDA_HOME=..."
    while compiling on a machine without CUDA (a fresh process: torch warns once, at import)."""
    probe = ("import torch; from oodbench.core import runtime; "
             "runtime.prepare_model(torch.nn.Linear(2, 2), 'cpu', compile_model=True); "
             "from torch.utils import cpp_extension; cpp_extension._find_cuda_home()")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "CUDA" not in done.stderr


def test_a_run_being_rewritten_by_an_identical_one_is_waited_for(tmp_path):
    """17, the reader's side: right after writing, main.py reads its run; an identical run
    started at the same moment may have just marked the folder as being written. The reader
    waits for it to finish (here: a thread completes the run after 0.5 s), and refuses at
    once a folder that another run has taken."""
    import threading
    scores = {("Base", "In"): [0.5, 0.6], ("Base", "Out"): [0.1, 0.2],
              ("Our", "In"): [0.5, 0.6], ("Our", "Out"): [0.1, 0.2]}
    scorefiles.write_run(tmp_path, "runA", {}, scores, 1000, 0.0014)
    (tmp_path / "run.json").write_text(json.dumps({"run": "runA", "complete": False}))
    finish = threading.Timer(0.5, scorefiles.write_run,
                             (tmp_path, "runA", {}, scores, 1000, 0.0014))
    finish.start()
    scorefiles.settled(tmp_path, "runA", seconds=10)
    finish.join()
    assert scorefiles.problem(tmp_path) is None
    (tmp_path / "run.json").write_text(json.dumps({"run": "runB", "complete": False}))
    with pytest.raises(UserError, match="being written"):
        scorefiles.settled(tmp_path, "runA", seconds=10)
