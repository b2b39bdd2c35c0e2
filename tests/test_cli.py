"""main.py: bad input gives one line on stderr and exit status 2, never a traceback."""
import subprocess
import sys

import pytest
import torch

from oodbench.commands import cli, main
from oodbench.core.devices import pick_device
from oodbench.core.paths import ROOT, UserError
from oodbench.networks.registry import MODELS
from oodbench.pipelines import runs


@pytest.mark.parametrize("args, message", [
    (["--nn", "resnet1000"], "unknown model 'resnet1000'"),
    (["--out_dataset", "SVHN"], "unknown OOD dataset 'SVHN'"),
    (["--magnitude", "-0.001"], "--magnitude must be a finite number >= 0"),
    (["--magnitude", "nan"], "--magnitude must be a finite number >= 0"),
    (["--temperature", "0"], "--temperature must be a finite number > 0"),
    (["--temperature", "inf"], "--temperature must be a finite number > 0"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, capsys):
    assert main.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


@pytest.mark.parametrize("args, message", [
    (["--batch-size", "0"], "argument --batch-size: must be at least 1, got 0"),
    (["--skip", "-1"], "argument --skip: must be at least 0, got -1"),
    (["--max-images", "0"], "argument --max-images: must be at least 1, got 0"),
    (["--seed", "-1"], "argument --seed: must be from 0 to 4294967295, got -1"),
    (["--seed", "4294967296"], "argument --seed: must be from 0 to 4294967295"),
    (["--gpu", "-2"], "argument --gpu: must be at least -1, got -2"),
])
def test_bad_numbers_are_refused_while_parsing(args, message, capsys):
    """Ranges are checked by argparse before anything loads: exit 2, argparse's usage and one
    error line, no traceback (before: --seed -1 was a numpy traceback after the model loaded,
    --max-images 0 passed the parser)."""
    with pytest.raises(SystemExit) as stop:
        main.main(args)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and message in err.splitlines()[-1] and "Traceback" not in err


@pytest.mark.parametrize("args, message", [
    (["--out_dataset", "LSUN"], "LSUN is not available here: get it from https://www.dropbox"
     ".com/s/fhtsw1m3qxlwj6h/LSUN.tar.gz (md5 458a0a0ab8e5f1cb4516d7400568e460) into "),
    (["--nn", "densenet100", "--out_dataset", "Uniform"], "cifar100 is not available here"),
    (["--nn", "densenet100", "--accuracy-only"], "model file"),
    (["--out_dataset", "TIN_crop"], "TIN_crop is not built here: bash scripts/get_data.sh "
     "rebuilds it from tinyimagenet-test, which is not available here either"),
])
def test_what_is_not_here_is_one_line(nothing_installed, args, message, capsys):
    assert main.main(args + ["--gpu", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_no_traceback_from_the_command_line():
    done = subprocess.run([sys.executable, str(ROOT / "code" / "main.py"), "--nn", "nope"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == ("error: unknown model 'nope'; choose from " + ", ".join(MODELS)
                                   + ", or give your own with --arch and --weights, or --model "
                                   "FILE.pt2")


def test_help_lists_models_and_sets():
    text = main.build_parser().format_help()
    for word in ("densenet10", "wideresnet100", "TIN_crop", "FashionMNIST", "--batch-size"):
        assert word in text


def test_every_shared_flag_has_help():
    from oodbench.commands import table
    from oodbench.commands import tune
    for parser in (main.build_parser(), table.build_parser(), tune.build_parser()):
        for action in parser._actions:
            assert action.help, f"{parser.prog}: {action.option_strings} has no help"


def test_device_choice(monkeypatch, capsys):
    assert pick_device(-1).type == "cpu"
    assert pick_device(0, "cpu").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device(0).type == "cpu"
    assert capsys.readouterr().out == "CUDA is not available: running on the CPU.\n"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert pick_device(0) == torch.device("cuda", 0)
    with pytest.raises(UserError, match="GPU 3 does not exist: this machine has 1 CUDA device"):
        pick_device(3)
    with pytest.raises(UserError, match="--device 'tpu:x'"):
        pick_device(0, "tpu:x")


def test_run_folders_differ_by_setting():
    names = set()
    for extra in ({}, dict(epsilon=0), dict(temperature=1), dict(out_dataset="iSUN"),
                  dict(out_dataset="Gaussian"), dict(out_dataset="Gaussian", seed=1),
                  dict(max_images=10), dict(skip=0)):
        settings = dict(nn="densenet10", out_dataset="Imagenet", temperature=1000,
                        epsilon=0.0014)
        settings.update(extra)
        names.add(runs.RunSettings(**settings).folder_name())
    assert len(names) == 8
    assert runs.RunSettings("densenet10", "iSUN", 1000.0, 0.0014).folder_name() == \
        "densenet10_iSUN_T1000_eps0.0014"          # T written as the release wrote it


def test_settings_and_arguments_are_not_rewritten():
    args = main.build_parser().parse_args(["--temperature", "1000", "--out_dataset", "iSUN"])
    settings = cli.run_settings(args)
    assert isinstance(settings.temperature, int) and isinstance(args.temperature, float)
    assert settings.epsilon == 0.0014 and args.magnitude is None   # the release's default
    with pytest.raises(AttributeError):
        settings.temperature = 5                   # frozen


# ---- --method and its flags ----

@pytest.mark.parametrize("args, message", [
    (["--method", "nope"], "unknown method 'nope'; choose from odin, msp, energy"),
    (["--method", "energy", "--k", "5"], "energy has no parameter --k (its parameters: "
                                         "--temperature)"),
    (["--method", "knn", "--magnitude", "0.001"], "knn has no parameter --magnitude"),
    (["--k", "5"], "odin has no parameter --k"),
    (["--method", "knn", "--k", "0"], "knn: --k must be >= 1, got 0"),
    (["--method", "ash", "--percentile", "100"], "ash: --percentile must be in [0, 100)"),
])
def test_bad_method_input_is_one_line_and_exit_2(args, message, capsys):
    assert main.main(args + ["--gpu", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_a_method_run_folder_names_the_method_and_every_parameter():
    parse = main.build_parser().parse_args
    knn = cli.run_settings(parse(["--method", "knn", "--out_dataset", "iSUN"]))
    assert knn.folder_name() == "densenet10_iSUN_knn_k50"
    assert knn.temperature is None and knn.params == (("k", 50),)
    energy = cli.run_settings(parse(["--method", "energy", "--out_dataset", "Uniform",
                                     "--temperature", "2"]))
    assert energy.folder_name() == "densenet10_Uniform_energy_T2_seed0"
    vim = cli.run_settings(parse(["--method", "vim", "--out_dataset", "iSUN"]))
    assert vim.folder_name() == "densenet10_iSUN_vim_dimauto"
    odin = cli.run_settings(parse(["--out_dataset", "iSUN"]))
    assert odin.folder_name() == "densenet10_iSUN_T1000_eps0.0014"   # the release's command


def test_a_cifar100_model_is_a_clear_error_for_a_fitted_method(capsys):
    """resnet56_cifar100's weights are here, CIFAR-100 (test and training sets) is not: the
    missing test set is said first (the training set's message: the test below)."""
    assert main.main(["--nn", "resnet56_cifar100", "--method", "knn", "--out_dataset",
                      "Uniform", "--gpu", "-1", "--max-images", "5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "cifar100 is not available here" in err
    assert err.count("\n") == 1


def test_fitting_without_the_training_set_says_which_set(nothing_installed):
    from oodbench.pipelines import feature_runs
    scorer = feature_runs.FeatureScorer.__new__(feature_runs.FeatureScorer)
    scorer.spec, scorer._train = MODELS["densenet10"], None
    with pytest.raises(UserError, match="knn fits on the CIFAR-10 training set of densenet10, "
                                        "which is not here: cifar10-train is not available"):
        scorer.train_features("knn")


# ---- --out-dir and damaged data: said before any work ----

def test_out_dir_naming_a_file_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(runs, "load_scorer", lambda *a: pytest.fail("scoring started"))
    target = tmp_path / "a_file"
    target.write_text("")
    assert main.main(["--out_dataset", "Uniform", "--out-dir", str(target), "--gpu", "-1"]) == 2
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err and err.count("\n") == 1


def test_an_unwritable_out_dir_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    import os
    if os.geteuid() == 0:
        target = "/proc/odin-run"          # root may write anywhere else
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = str(locked / "run")
    monkeypatch.setattr(runs, "load_scorer", lambda *a: pytest.fail("scoring started"))
    assert main.main(["--out_dataset", "Uniform", "--out-dir", target, "--gpu", "-1"]) == 2
    err = capsys.readouterr().err
    assert "cannot create the run folder" in err and err.count("\n") == 1


def test_a_truncated_data_file_names_the_file_and_the_fix(tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    (data / "cifar10").mkdir(parents=True)
    source = ROOT / "data" / "cifar10" / "cifar10_test.npz"
    (data / "cifar10" / "cifar10_test.npz").write_bytes(source.read_bytes()[:100000]
                                                        if source.exists() else b"PK\x03\x04")
    monkeypatch.setenv("ODIN_DATA_DIR", str(data))
    assert main.main(["--out_dataset", "Uniform", "--gpu", "-1", "--max-images", "2"]) == 2
    err = capsys.readouterr().err
    assert "cifar10_test.npz: unreadable" in err and "bash scripts/get_data.sh" in err
    assert err.count("\n") == 1
