"""The efficient tuning grid equals scoring every (T, eps) from scratch; the choice rule."""
import json

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

import tune
from densenet import DenseNet3
from models import ODIN_MEAN, ODIN_STD


def test_grid_equals_naive_grid():
    torch.manual_seed(0)
    net = DenseNet3(16, 10).eval().requires_grad_(False)
    data = TensorDataset(torch.rand(6, 3, 32, 32), torch.zeros(6))
    temperatures, epsilons = (1, 10, 1000), (0.0, 0.0014, 0.004)
    fast = tune.grid_scores(net, data, ODIN_MEAN, ODIN_STD, "cpu", temperatures, epsilons,
                            batch_size=4)
    slow = tune.naive_grid_scores(net, data, ODIN_MEAN, ODIN_STD, "cpu", temperatures, epsilons,
                                  batch_size=3)
    assert fast.shape == (3, 3, 6)
    assert np.abs(fast - slow).max() <= 1e-5


def test_paper_grid_values():
    assert tune.TEMPERATURES == (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
    assert len(tune.EPSILONS) == 21 and tune.EPSILONS[0] == 0 and tune.EPSILONS[-1] == 0.004


def test_choice_and_tie_break():
    temperatures, epsilons = (1, 1000), (0.0, 0.001, 0.002)
    fpr = np.array([[0.5, 0.3, 0.3], [0.4, 0.2, 0.2]])
    auroc = np.array([[0.9, 0.9, 0.9], [0.9, 0.95, 0.95]])
    assert tune.choose(fpr, auroc, temperatures, epsilons) == (1000, 0.001)   # smaller eps
    auroc[1, 2] = 0.96
    assert tune.choose(fpr, auroc, temperatures, epsilons) == (1000, 0.002)   # higher AUROC
    in_grid = np.broadcast_to(np.linspace(0.5, 1, 50), (2, 3, 50))
    out_grid = np.broadcast_to(np.linspace(0, 0.6, 50), (2, 3, 50))
    fpr, auroc = tune.fpr95_table(in_grid, out_grid)
    assert fpr.shape == (2, 3) and np.all(auroc > 0.9)


def test_tuning_sets_of_each_mode():
    assert tune.tuning_sets("paper", "iSUN", 1000) == ("iSUN", [("iSUN", 1000)])
    assert tune.tuning_sets("transfer", "iSUN", 1000) == ("TIN_val", [("TIN_val", 1000)])
    assert tune.tuning_sets("no-ood", None, 5) == ("noise", [("Uniform", 2), ("Gaussian", 3)])


def test_tuning_command_on_real_images(installed, tmp_path, monkeypatch, capsys):
    """The CLI end to end on 4 + 4 held-out images; grids are cached and reused."""
    import cache
    import figures
    monkeypatch.setattr(cache, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(figures, "FIGURES_DIR", tmp_path / "figures")
    monkeypatch.setattr(tune, "RECORDS_DIR", tmp_path / "tuning")
    assert tune.main(["--nn", "densenet10", "--out_dataset", "iSUN", "--tune-images", "4",
                      "--gpu", "-1", "--batch-size", "4"]) == 0
    out = capsys.readouterr().out
    assert "chosen T = " in out and "evaluate: python code/main.py --nn densenet10" in out
    record = json.loads((tmp_path / "tuning" / "densenet10_paper_iSUN_n4.json").read_text())
    assert record["images_per_side"] == 4 and record["temperature"] in tune.TEMPERATURES
    assert np.asarray(record["fpr95"]).shape == (10, 21)
    assert (tmp_path / "figures" / "densenet10" / "tuning_densenet10_paper_iSUN_n4.png").exists()
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2   # in-distribution + iSUN

    tuner = tune.Tuner("densenet10", 4, "cpu", batch_size=4)
    monkeypatch.setattr(tuner, "model", lambda: pytest.fail("grid not taken from the cache"))
    assert tuner.tune("paper", "iSUN")["epsilon"] == record["epsilon"]
    assert tune.main(["--tune-images", "5000"]) == 2
