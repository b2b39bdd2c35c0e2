"""main.py: bad input gives one line on stderr and exit status 2, never a traceback."""
import subprocess
import sys

import pytest
import torch

import main
from paths import ROOT, UserError


@pytest.mark.parametrize("args, message", [
    (["--nn", "resnet1000"], "unknown model 'resnet1000'"),
    (["--out_dataset", "SVHN"], "unknown OOD dataset 'SVHN'"),
    (["--magnitude", "-0.001"], "--magnitude must be a finite number >= 0"),
    (["--magnitude", "nan"], "--magnitude must be a finite number >= 0"),
    (["--temperature", "0"], "--temperature must be a finite number > 0"),
    (["--temperature", "inf"], "--temperature must be a finite number > 0"),
    (["--batch-size", "0"], "--batch-size must be >= 1"),
    (["--out_dataset", "LSUN", "--gpu", "-1"], "LSUN is not available here: get it from "
     "https://www.dropbox.com/s/fhtsw1m3qxlwj6h/LSUN.tar.gz (md5 458a0a0ab8e5f1cb4516d7400568e460)"),
    (["--nn", "densenet100", "--out_dataset", "Uniform", "--gpu", "-1"], "cifar100 is not available"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, capsys):
    assert main.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_no_traceback_from_the_command_line():
    done = subprocess.run([sys.executable, str(ROOT / "code" / "main.py"), "--nn", "nope"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == "error: unknown model 'nope'; choose from " + \
        ", ".join(main.MODELS)


def test_help_lists_models_and_sets():
    text = main.build_parser().format_help()
    for word in ("densenet10", "wideresnet100", "TIN_crop", "FashionMNIST", "--batch-size"):
        assert word in text


def test_device_choice(monkeypatch, capsys):
    assert main.pick_device(-1).type == "cpu"
    assert main.pick_device(0, "cpu").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main.pick_device(0).type == "cpu"
    assert capsys.readouterr().out == "CUDA is not available: running on the CPU.\n"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert main.pick_device(0) == torch.device("cuda", 0)
    with pytest.raises(UserError, match="GPU 3 does not exist: this machine has 1 CUDA device"):
        main.pick_device(3)
    with pytest.raises(UserError, match="--device 'tpu:x'"):
        main.pick_device(0, "tpu:x")


def test_run_folders_differ_by_setting():
    parse = main.build_parser().parse_args
    names = set()
    for extra in ([], ["--magnitude", "0"], ["--temperature", "1"], ["--out_dataset", "iSUN"],
                  ["--out_dataset", "Gaussian"], ["--out_dataset", "Gaussian", "--seed", "1"],
                  ["--max-images", "10"], ["--skip", "0"]):
        args = parse(extra)
        main.check_args(args)
        names.add(main.run_folder(args).name)
    assert len(names) == 8
