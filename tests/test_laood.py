"""LA-OOD's parts on cases checked by eye: data shifting on a disc, the per-layer One-Class
SVM as arrays, the layer-adaptive maximum and the deciding layer, unfittable layers."""
import csv
import io
import subprocess
from pathlib import Path

import numpy as np
import pytest
from sklearn.svm import OneClassSVM

from oodbench.detectors import laood
from oodbench.networks.registry import MODELS, conv_layers

ROOT = Path(__file__).resolve().parent.parent


def disc(n=3000, seed=0):
    """Points uniform in the unit disc."""
    rng = np.random.RandomState(seed)
    radius, angle = np.sqrt(rng.uniform(0, 1, n)), rng.uniform(0, 2 * np.pi, n)
    return np.c_[radius * np.cos(angle), radius * np.sin(angle)]


def test_edge_points_of_a_disc_lie_on_its_rim_and_are_shifted_outward():
    x = disc()
    edge, units, shift = laood.edge_points(x)
    radius = np.linalg.norm(x, axis=1)
    assert 20 < edge.sum() < 600                      # a rim, not the whole disc
    assert radius[edge].min() > 0.85                  # only points near the rim
    assert np.median(radius[~edge]) < 0.75
    # the normal of a rim point points away from the centre
    outward = np.einsum("nd,nd->n", units[edge], x[edge] / radius[edge, None])
    assert outward.min() > 0.8
    assert 0 < shift < 0.2                            # about a neighbour's distance
    shifted = laood.pseudo_outliers(x)
    assert len(shifted) == edge.sum()
    assert np.mean(np.linalg.norm(shifted, axis=1) > 1) > 0.9   # pseudo-outliers: outside


def test_neighbour_count_follows_the_papers_rule():
    assert laood.neighbours_k(15000) == 21
    assert laood.neighbours_k(1000) == 15


def test_layer_fit_scores_as_sklearn_does():
    rng = np.random.RandomState(1)
    features = rng.normal(2.0, 3.0, (400, 5))
    fit = laood.fit_layer(features)
    assert fit.nu in laood.NUS and fit.gamma in laood.GAMMAS
    svm = OneClassSVM(kernel="rbf", nu=fit.nu, gamma=fit.gamma).fit(
        (features - features.mean(0)) / features.std(0))
    probe = rng.normal(2.0, 6.0, (50, 5))
    expected = -svm.decision_function((probe - features.mean(0)) / features.std(0))
    np.testing.assert_allclose(fit.ood_scores(probe), expected, rtol=1e-6, atol=1e-9)
    # far from the training features = more OOD
    assert fit.ood_scores(probe * 10).mean() > fit.ood_scores(features[:50]).mean()


def test_the_maximum_over_layers_and_the_deciding_layer():
    scores = np.array([[0.1, 0.5, -1.0],
                       [2.0, 0.0, 0.0],
                       [-3.0, -2.0, -0.5]])
    combined, deciding = laood.combine(scores)
    np.testing.assert_array_equal(combined, [-0.5, -2.0, 0.5])   # higher = in-distribution
    np.testing.assert_array_equal(deciding, [1, 0, 2])


class ScriptedSVM:
    """A stand-in One-Class SVM whose predictions are set by hand per gamma: the first
    ``accepted`` pseudo-outliers are accepted (+1) and the first ``rejected`` held-out points
    rejected (-1)."""
    def __init__(self, gamma, outliers, table):
        self.outliers, (self.accepted, self.rejected) = outliers, table[gamma]

    def predict(self, points):
        if points is self.outliers:
            return np.where(np.arange(len(points)) < self.accepted, 1, -1)
        return np.where(np.arange(len(points)) < self.rejected, -1, 1)


def test_gamma_is_chosen_by_both_pseudo_outliers_and_held_out_points(monkeypatch):
    """The data-shifting error, worked by hand: 1/2 (pseudo-outliers accepted) + 1/2 (held-out
    points rejected). 30 points hold out 9 (30%); 5 pseudo-outliers. Per gamma (accepted of 5,
    rejected of 9) and its error:
      0.01: (5, 0) -> 0.5       the best on the held-out points alone
      0.1:  (0, 9) -> 0.5       the best on the pseudo-outliers alone
      1.0:  (1, 1) -> 0.1 + 0.056 = 0.156, the best of both: the one chosen.
    Choosing on either part alone (or with a sign flipped) picks 0.01 or 0.1."""
    outliers = np.full((5, 2), 9.0)
    table = {0.01: (5, 0), 0.1: (0, 9), 1.0: (1, 1)}
    monkeypatch.setattr(laood, "pseudo_outliers", lambda held: outliers)
    monkeypatch.setattr(laood, "fit_svm", lambda x, nu, gamma: ScriptedSVM(gamma, outliers, table))
    x = np.random.RandomState(0).normal(size=(30, 2))
    (nu, gamma), error, edges = laood.select(x, nus=(0.001,), gammas=(0.01, 0.1, 1.0))
    assert (nu, gamma, edges) == (0.001, 1.0, 5)
    assert error == pytest.approx(0.5 * 1 / 5 + 0.5 * 1 / 9)


def test_the_wide_gamma_grid_is_the_authors_densenet_grid_and_narrow_the_default():
    assert laood.GAMMA_GRIDS["narrow"] == (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
    assert laood.GAMMA_GRIDS["wide"] == laood.GAMMA_GRIDS["narrow"] + (0.25, 0.5, 1.0)
    assert laood.LAOOD().params["gamma_grid"] == "narrow"
    with pytest.raises(laood.UserError, match="--gamma-grid must be narrow or wide"):
        laood.LAOOD(gamma_grid="widest")


def test_a_fit_searches_the_grid_it_is_given_and_caches_each_grid_apart(
        private_outputs, monkeypatch):
    real, searched = laood.select, []

    def spy(x, nus=laood.NUS, gammas=laood.GAMMAS):
        searched.append(gammas)
        return real(x, nus, gammas)
    monkeypatch.setattr(laood, "select", spy)
    features = disc(300)
    for grid in ("narrow", "wide", "narrow"):
        laood.cached_fit(features, laood.GAMMA_GRIDS[grid])
    assert searched == [laood.GAMMA_GRIDS["narrow"], laood.GAMMA_GRIDS["wide"]]  # then cached


def test_a_constant_layer_is_unfit_not_a_crash():
    with pytest.raises(laood.Unfit, match="constant"):
        laood.fit_layer(np.ones((100, 4)))


def test_a_non_converging_svm_is_unfit(monkeypatch):
    monkeypatch.setattr(laood, "MAX_ITER", 1)
    with pytest.raises(laood.Unfit, match="did not converge"):
        laood.fit_layer(np.random.RandomState(0).normal(size=(300, 3)))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_architecture_has_its_declared_laood_layers(name):
    """Every convolution but the projection shortcuts, plus the logits: DenseNet-BC-100 100,
    ResNet-d d, WRN-28-10 26, as the registry declares."""
    spec = MODELS[name]
    layers = conv_layers(spec.build())
    assert len(layers) + 1 == spec.laood_layers
    assert not any("downsample" in f.module or "Shortcut" in f.module for f in layers)


def test_laood_runs_as_a_detector_on_real_images(installed, private_outputs, capsys):
    """main.py --method laood on ResNet-20 (20 layers: 19 convolutions and the logits), fitted
    on 300 training images: a run folder calMetric reads, the deciding layer of every image,
    and Uniform noise caught (a sign error gives an AUROC near 0)."""
    from oodbench.commands import main
    from oodbench.core import scorefiles
    from oodbench.reports.metric_block import run_metrics
    args = ["--nn", "resnet20", "--method", "laood", "--subsample", "300", "--out_dataset",
            "Uniform", "--max-images", "100", "--gpu", "-1"]
    assert main.main(args) == 0
    folder = (private_outputs / "runs" /
              "resnet20_Uniform_laood_gridnarrow_subsample300_seed0_n100")
    assert scorefiles.complete(folder, ("LA-OOD",))
    assert run_metrics(folder)["LA-OOD"]["AUROC"] > 0.95
    layers = [f.name for f in conv_layers(MODELS["resnet20"].build())] + ["logits"]
    deciding = (folder / "deciding_layer_Out.txt").read_text().split()
    assert len(deciding) == 100 and set(deciding) <= set(layers)
    # the report by scripts/reproduce_laood.sh (a CI-sized run of it), from the same cached
    # features and fits: both conventions, each layer alone, the figures
    from oodbench.core.paths import figures_dir, results_dir
    done = subprocess.run(["bash", str(ROOT / "scripts" / "reproduce_laood.sh"), "resnet20", "--",
                           "--subsample", "300", "--sets", "Uniform", "PureColour",
                           "--max-images", "100", "--gpu", "-1"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "reproduce_laood.sh: resnet20" in done.stdout
    assert "reused" in done.stdout + done.stderr      # main.py's features, not a second pass
    stem = "laood_resnet20_sub300_sets-Uniform-PureColour_n100"   # not the whole table's name
    md = (results_dir() / f"{stem}.md").read_text()
    assert "| Uniform Noise |" in md and "| Pure colour |" in md
    assert "gamma from the narrow grid (0.001, " in md and "images from index 1000 of each" in md
    rows = (results_dir() / f"{stem}.csv").read_text().splitlines()
    assert len(rows) == 5                     # a header, two sets x two conventions
    uniform = next(line for line in md.splitlines() if line.startswith("| Uniform Noise |"))
    assert uniform.count(" ±") == 2           # FPR95 (in positive) and AUROC, with intervals
    records = list(csv.DictReader(io.StringIO("\n".join(rows))))
    assert all(float(r["AUROC lower"]) <= float(r["AUROC"]) <= float(r["AUROC upper"])
               for r in records if r["convention"] == "ours")
    per_layer = (results_dir() / f"{stem}_layers.csv").read_text().splitlines()
    assert per_layer[0] == "layer,gamma,edge_points,Uniform,PureColour"
    assert [line.split(",")[0] for line in per_layer[1:]] == layers
    for name in ("layers", "deciding"):
        assert (figures_dir() / f"{stem}_{name}.png").stat().st_size > 10000


def test_a_corrupt_fit_cache_entry_is_recomputed(private_outputs, capsys):
    features = np.random.RandomState(2).normal(size=(300, 3))
    first = laood.cached_fit(features)
    (entry,) = list((private_outputs / "runs" / ".cache").glob("*.npz"))
    entry.write_bytes(entry.read_bytes()[:100])           # a write cut short
    again = laood.cached_fit(features)
    assert "recomputing" in capsys.readouterr().out
    np.testing.assert_array_equal(again.support_vectors, first.support_vectors)
    assert again.gamma == first.gamma and isinstance(again.gamma, float)


def test_laood_is_set_beside_the_comparison_of_the_same_images(tmp_path, monkeypatch):
    """results/detectors_<nn>_n<N>.csv beside a run capped at N images, never the whole
    comparison's numbers (nor the whole beside a capped one)."""
    from oodbench.reports import laood_report
    monkeypatch.setenv("ODIN_RESULTS_DIR", str(tmp_path))
    header = "ood_set,detector,AUROC,FPR at TPR 95%,note\n"
    (tmp_path / "detectors_resnet20.csv").write_text(header + "Uniform,KNN,11.0,12.0,\n")
    (tmp_path / "detectors_resnet20_n100.csv").write_text(header + "Uniform,KNN,21.0,22.0,\n")
    rows = {"Uniform": {"ours": {"AUROC": 0.5, laood_report.FPR: 0.25}}}
    capped = "\n".join(laood_report.beside("resnet20", rows, 100))
    whole = "\n".join(laood_report.beside("resnet20", rows))
    assert "| KNN | 21.0 |" in capped and "detectors_resnet20_n100.md" in capped
    assert "| KNN | 11.0 |" in whole and "detectors_resnet20.md" in whole
    assert "No comparison table results/detectors_resnet20_n50.csv" in "\n".join(
        laood_report.beside("resnet20", rows, 50))
