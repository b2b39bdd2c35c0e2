"""Figures are drawn from a run folder's score files."""
import numpy as np

from oodbench.commands import figures
from oodbench.core import scorefiles
from oodbench.core.paths import figures_dir
from oodbench.reports import figures as report_figures
from oodbench.scoring import odin_scoring


def test_roc_and_histogram_files(tmp_path):
    rng = np.random.default_rng(0)
    make = lambda lo: odin_scoring.Scores(rng.uniform(lo, 1, 50).astype(np.float32),  # noqa: E731
                                          rng.uniform(lo / 10, 0.12, 50).astype(np.float32),
                                          np.zeros(50), np.zeros(50))
    odin_scoring.write_scores(tmp_path / "softmax_scores", 1000, 0.0014, make(0.5), make(0.1))
    assert figures.main([str(tmp_path)]) == 0
    written = sorted(p.name for p in (figures_dir() / "runs").iterdir())  # no run.json
    assert written == [f"{tmp_path.name}_hist.png", f"{tmp_path.name}_roc.png"]
    assert all((figures_dir() / "runs" / name).stat().st_size > 10000 for name in written)


def test_a_detector_run_folder_is_drawn_with_its_method_in_the_title(tmp_path):
    """A run folder of another detector (run.json without T and eps) is drawn, not a
    KeyError: its title names the detector and its parameters."""
    rng = np.random.default_rng(1)
    folder = tmp_path / "resnet20_iSUN_energy_T1_n50"
    scorefiles.write_run(folder, folder.name, {
        "nn": "resnet20", "in_dataset": "CIFAR-10", "out_label": "iSUN", "method": "energy",
        "label": "Energy", "params": {"temperature": 1.0}}, {
        ("Energy", "In"): rng.uniform(5, 9, 50), ("Energy", "Out"): rng.uniform(3, 7, 50)}, 1, 0)
    assert report_figures.title_of(folder) == \
        "resnet20 (CIFAR-10) vs iSUN: Energy (temperature = 1.0)"
    assert figures.main([str(folder)]) == 0
    assert sorted(p.name for p in (figures_dir() / "resnet20").iterdir()) == [
        f"{folder.name}_hist.png", f"{folder.name}_roc.png"]
