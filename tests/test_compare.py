"""The detector comparison on real data, CI-sized: ResNet-20 (the quickest model here), its
real CIFAR-10 training features, 100 images a side of every OOD set here (needs ../shared)."""
import csv
import subprocess
import sys

import numpy as np
import pytest

from oodbench.commands import compare, main
from oodbench.core import scorefiles
from oodbench.core.paths import ROOT, results_dir
from oodbench.datasets.image_sets import OOD_SETS

N = 100
ARGS = ["--nn", "resnet20", "--max-images", str(N), "--tune-images", "4", "--gpu", "-1",
        "--batch-size", "100"]
HERE = ["iSUN", "Uniform", "Gaussian", "TIN_crop", "TIN_resize", "MNIST", "FashionMNIST"]


@pytest.fixture(scope="module")
def shared_runs(tmp_path_factory):
    """One runs/ (and feature cache) for the module: the training features are computed once."""
    return tmp_path_factory.mktemp("compare")


@pytest.fixture
def outputs(shared_runs, monkeypatch):
    for name in ("runs", "results", "figures"):
        monkeypatch.setenv(f"ODIN_{name.upper()}_DIR", str(shared_runs / name))
    return shared_runs


def read_rows(name=f"detectors_resnet20_tune4_n{N}"):
    with open(results_dir() / f"{name}.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_every_detector_on_every_set_here(installed, outputs, capsys):
    assert compare.main(ARGS) == 0
    out = capsys.readouterr().out
    rows = read_rows()
    labels = [compare.BASELINE, compare.ODIN, "Energy", "MaxLogit", "GEN", "Mahalanobis",
              "RelativeMahalanobis", "KNN", "ReAct", "ViM", "ASH-S"]
    for name in HERE:
        assert [r["detector"] for r in rows if r["ood_set"] == name] == labels
    for name in ("Imagenet", "LSUN"):            # not on these machines: said, not skipped
        (row,) = [r for r in rows if r["ood_set"] == name]
        assert "not available here" in row["note"]
    md = (results_dir() / f"detectors_resnet20_tune4_n{N}.md").read_text()
    assert all(f"| {label} |" in md for label in labels)
    assert (outputs / "figures" / f"detectors_resnet20_tune4_n{N}.png").stat().st_size > 10000
    assert "wall" in out
    # higher = more in-distribution, on real features: noise is far from CIFAR-10 for the
    # distance-based detectors (a sign error would give an AUROC near 0)
    auroc = {(r["ood_set"], r["detector"]): float(r["AUROC"]) for r in rows if r["detector"]}
    for name in ("Uniform", "Gaussian"):
        for label in ("Mahalanobis", "KNN", "ViM"):
            assert auroc[name, label] > 95, (name, label)
    assert all(40 < auroc["iSUN", label] for label in labels if label != "ASH-S")
    # every cell with its 95% interval around its value; bold: the best and its ties
    for r in (r for r in rows if r["detector"]):
        for metric in ("AUROC", "FPR at TPR 95%"):
            assert float(r[f"{metric} lower"]) <= float(r[metric]) <= float(r[f"{metric} upper"])
    assert "±" in md and "Holm-corrected over the column" in md
    for name in HERE:
        best = max(auroc[name, label] for label in labels)
        line = next(line for line in md.split("**AUROC**")[1].splitlines()
                    if line.startswith(f"| {max(labels, key=lambda x: auroc[name, x])} |"))
        assert f"**{best:.1f} ±" in line or f"**{best:.2f} ±" in line, (name, line)
    pairs = list(csv.DictReader(open(results_dir() / f"detectors_resnet20_tune4_n{N}_pairs.csv")))
    assert len(pairs) == (len(HERE) + 1) * 2 * len(labels) * (len(labels) - 1) // 2
    assert "| iSUN |" in md.split("**Distinguishable pairs**")[1]


def test_a_second_comparison_reuses_every_run(installed, outputs, capsys, monkeypatch):
    from oodbench.pipelines import feature_runs
    monkeypatch.setattr(feature_runs.FeatureScorer, "score",
                        lambda *a: pytest.fail("a finished run was scored again"))
    before = read_rows()
    assert compare.main(ARGS) == 0
    assert read_rows() == before


def test_the_msp_method_is_the_baseline_column_of_the_odin_runs(installed, outputs, capsys):
    """main.py --method msp scores from the feature pass; the baseline of an ODIN run is
    scored with the input gradient on: on the real model, the same numbers, image for image."""
    common = ["--nn", "resnet20", "--out_dataset", "iSUN", "--max-images", str(N), "--gpu", "-1"]
    assert main.main(common + ["--method", "msp"]) == 0
    assert main.main(common + ["--temperature", "10", "--magnitude", "0.001"]) == 0
    msp = scorefiles.read_scores(outputs / "runs" / f"resnet20_iSUN_msp_n{N}", "MSP")
    base = scorefiles.read_scores(outputs / "runs" / f"resnet20_iSUN_T10_eps0.001_n{N}", "Base")
    assert len(msp[1]) == N
    np.testing.assert_array_equal(msp[1], base[1])
    np.testing.assert_array_equal(msp[2], base[2])
    assert OOD_SETS["iSUN"].label in capsys.readouterr().out


LAYERWISE = ["Mahalanobis (full, OOD val)", "Mahalanobis (full, TIN val)", "FSSD (OOD val)",
             "FSSD (TIN val)"]


@pytest.fixture
def small_layerwise(monkeypatch):
    """Lee et al.'s protocol on 100 held-out images (50 fit, 50 select) and two magnitudes,
    so that the real scoring runs in CI's time."""
    from oodbench.pipelines import layerwise_runs
    from oodbench.detectors.fssd import FSSD
    from oodbench.detectors.mahalanobis_full import MahalanobisFull
    monkeypatch.setattr(layerwise_runs, "VALIDATION", 100)
    monkeypatch.setattr(layerwise_runs, "FIT", 50)
    monkeypatch.setitem(layerwise_runs.DETECTORS, "mahalanobis_full",
                        (MahalanobisFull, (0.0, 0.002)))
    monkeypatch.setitem(layerwise_runs.DETECTORS, "fssd", (FSSD, (0.0, 0.01)))
    return layerwise_runs


def test_layerwise_rows_on_real_images(installed, outputs, small_layerwise, capsys, monkeypatch):
    """Mahalanobis in full and FSSD, both validations, on ResNet-20's four declared layers:
    a row per set here, a run folder calMetric reads, noise found by the rows validated on
    it, and a second comparison that reuses every cached layer score."""
    args = ARGS + ["--methods", "energy", "--layerwise"]
    assert compare.main(args) == 0
    table = f"detectors_resnet20_methods-energy_tune4_n{N}"   # fewer detectors: its own table
    rows = read_rows(table)
    for name in HERE:
        assert [r["detector"] for r in rows if r["ood_set"] == name] == \
            [compare.BASELINE, compare.ODIN, "Energy", *LAYERWISE]
    auroc = {(r["ood_set"], r["detector"]): float(r["AUROC"]) for r in rows if r["detector"]}
    for name in ("Uniform", "Gaussian"):
        for label in ("Mahalanobis (full, OOD val)", "FSSD (OOD val)"):
            assert auroc[name, label] > 95, (name, label)
    info = scorefiles.read_run_info(outputs / "runs" /
                                    f"resnet20_iSUN_mahalanobis_full_oodval_n{N}")
    assert info["magnitude"] in (0.0, 0.002) and info["images_per_side"] == N
    assert info["layers"] == ["stem", "layer1", "layer2", "layer3"]
    md = (results_dir() / f"{table}.md").read_text()
    assert "eps chosen: iSUN" in md
    monkeypatch.setattr(small_layerwise.LayerwiseScorer, "compute",
                        lambda *a: pytest.fail("a cached layer score was computed again"))
    assert compare.main(args) == 0
    assert read_rows(table) == rows
    # the diagnostics script reads the same cached held-out scores (computing none)
    sys.path.insert(0, str(ROOT / "scripts"))
    import layerwise_diagnostics
    capsys.readouterr()
    assert layerwise_diagnostics.main(["--nn", "resnet20", "--method", "fssd", "--sets", "iSUN",
                                       "--magnitude", "0.01", "--gpu", "-1"]) == 0
    out = capsys.readouterr().out
    assert "TIN_val " in out and "iSUN " in out and "TIN val regression weights" in out


def test_diagnostics_refuse_a_magnitude_outside_the_grid():
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "layerwise_diagnostics.py"),
                           "--method", "fssd", "--magnitude", "0.3"], capture_output=True,
                          text=True)
    assert done.returncode == 2 and "not in fssd's grid" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_smaller_comparison_never_replaces_the_whole_one():
    def name(*flags):
        return compare.comparison_name(compare.build_parser().parse_args(["--nn", "densenet10",
                                                                          *flags]))
    assert name() == "detectors_densenet10"
    assert name("--max-images", "2000") == "detectors_densenet10_n2000"
    assert name("--skip", "1500", "--max-images", "20") == "detectors_densenet10_skip1500_n20"
    assert name("--tune-images", "200") == "detectors_densenet10_tune200"
    assert name("--methods", "knn,energy") == "detectors_densenet10_methods-knn-energy"
    assert name("--methods", ",".join(compare.COMPARED)) == "detectors_densenet10"
