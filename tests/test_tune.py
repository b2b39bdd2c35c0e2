"""The efficient tuning grid equals scoring every (T, eps) from scratch; the choice rule."""
import json

import numpy as np
import pytest
import torch
from torch.utils.data import Subset, TensorDataset

from oodbench.commands import tune
from oodbench.core.paths import cache_dir, figures_dir, results_dir
from oodbench.datasets.image_sets import ood_dataset
from oodbench.networks.registry import ODIN_MEAN, ODIN_STD
from oodbench.pipelines import tuning


def test_grid_equals_naive_grid(small_net):
    """Every cell equals scoring from scratch; at T = 2 and 10 the perturbation moves the
    scores by far more than the tolerance (the margin is asserted)."""
    data = TensorDataset(torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(3)),
                         torch.zeros(6))
    temperatures, epsilons = (2, 10, 1000), (0.0, 0.002, 0.004)
    fast = tuning.grid_scores(small_net, data, ODIN_MEAN, ODIN_STD, "cpu", temperatures,
                              epsilons, batch_size=4)
    slow = tuning.naive_grid_scores(small_net, data, ODIN_MEAN, ODIN_STD, "cpu", temperatures,
                                    epsilons, batch_size=3)
    assert fast.shape == (3, 3, 6)
    assert np.abs(fast - slow).max() <= 1e-5
    assert np.abs(slow[:2, 1:] - slow[:2, :1]).min(axis=2).max() >= 1e-3   # eps matters
    assert np.abs(slow[0, 1] - slow[1, 1]).max() >= 1e-3                    # T matters


def test_paper_grid_values():
    assert tuning.TEMPERATURES == (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
    assert len(tuning.EPSILONS) == 21 and tuning.EPSILONS[0] == 0 and tuning.EPSILONS[-1] == 0.004


def test_choice_and_tie_break():
    temperatures, epsilons = (1, 1000), (0.0, 0.001, 0.002)
    fpr = np.array([[0.5, 0.3, 0.3], [0.4, 0.2, 0.2]])
    auroc = np.array([[0.9, 0.9, 0.9], [0.9, 0.95, 0.95]])
    assert tuning.choose(fpr, auroc, temperatures, epsilons) == (1000, 0.001)   # smaller eps
    auroc[1, 2] = 0.96
    assert tuning.choose(fpr, auroc, temperatures, epsilons) == (1000, 0.002)   # higher AUROC
    in_grid = np.broadcast_to(np.linspace(0.5, 1, 50), (2, 3, 50))
    out_grid = np.broadcast_to(np.linspace(0, 0.6, 50), (2, 3, 50))
    fpr, auroc = tuning.fpr95_table(in_grid, out_grid)
    assert fpr.shape == (2, 3) and np.all(auroc > 0.9)


def test_tuning_sets_of_each_mode():
    assert tuning.tuning_sets("paper", "iSUN", 1000) == ("iSUN", [("iSUN", 1000)])
    assert tuning.tuning_sets("transfer", "iSUN", 1000) == ("TIN_val", [("TIN_val", 1000)])
    assert tuning.tuning_sets("no-ood", None, 5) == ("noise", [("Uniform", 2), ("Gaussian", 3)])


def test_tuning_command_on_real_images(installed, capsys, monkeypatch):
    """The CLI end to end on 4 + 4 held-out images; grids are cached and reused."""
    assert tune.main(["--nn", "densenet10", "--out_dataset", "iSUN", "--tune-images", "4",
                      "--gpu", "-1", "--batch-size", "4"]) == 0
    out = capsys.readouterr().out
    assert "chosen T = " in out and "evaluate: python code/main.py --nn densenet10" in out
    record = json.loads((results_dir() / "tuning" / "densenet10_paper_iSUN_n4.json").read_text())
    assert record["images_per_side"] == 4 and record["temperature"] in tuning.TEMPERATURES
    assert np.asarray(record["fpr95"]).shape == (10, 21)
    assert (figures_dir() / "densenet10" / "tuning_densenet10_paper_iSUN_n4.png").exists()
    assert len(list(cache_dir().glob("*.npz"))) == 2   # in-distribution + iSUN

    tuner = tuning.Tuner("densenet10", 4, "cpu", batch_size=4)
    monkeypatch.setattr(tuner, "model", lambda: pytest.fail("grid not taken from the cache"))
    assert tuner.tune("paper", "iSUN")["epsilon"] == record["epsilon"]
    assert tune.main(["--tune-images", "5000"]) == 2


def test_grids_are_of_the_held_out_images(installed, monkeypatch):
    """A grid of count images is the grid of images 0 .. count - 1 of the set."""
    seen = []

    def spy(model, dataset, *args, **kwargs):
        seen.append(list(dataset.indices))
        return np.zeros((len(tuning.TEMPERATURES), len(tuning.EPSILONS), len(dataset)))
    monkeypatch.setattr(tuning, "grid_scores", spy)
    monkeypatch.setattr(tuning.Tuner, "model", lambda self: None)
    tuning.Tuner("densenet10", 3, "cpu").tune("paper", "iSUN")
    assert seen == [[0, 1, 2], [0, 1, 2]]


def test_grids_are_cached_per_block_and_a_longer_tuning_reuses_a_shorter(
        installed, monkeypatch, small_net):
    """Blocks of GRID_BLOCK images: 5 images reuse the block a 3-image grid computed, and the
    blocks together are the grid of the 5 images in one go."""
    monkeypatch.setattr(tuning, "GRID_BLOCK", 2)
    monkeypatch.setattr(tuning.Tuner, "model", lambda self: small_net)
    computed = []
    real_grid_scores = tuning.grid_scores

    def spy(model, dataset, *args, **kwargs):
        computed.append(list(dataset.indices))
        return real_grid_scores(model, dataset, *args, **kwargs)
    monkeypatch.setattr(tuning, "grid_scores", spy)
    tuning.Tuner("densenet10", 3, "cpu").grid("Uniform")
    assert computed == [[0, 1], [2]]
    blocks = tuning.Tuner("densenet10", 5, "cpu").grid("Uniform")
    assert computed == [[0, 1], [2], [2, 3], [4]]              # block 0-1 from the cache
    spec = tuning.get_spec("densenet10")
    whole = real_grid_scores(small_net, Subset(ood_dataset("Uniform", 0), range(5)), spec.mean,
                             spec.std, "cpu")
    assert blocks.shape == whole.shape == (10, 21, 5)
    assert np.abs(blocks - whole).max() <= 1e-6
