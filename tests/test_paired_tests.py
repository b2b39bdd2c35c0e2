"""Paired comparisons of two detectors (scoring/paired_tests.py): DeLong by hand, identical
detectors never distinguishable, a clear difference always, Holm's adjustment by hand."""
import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from oodbench.scoring import paired_tests


def test_delong_on_a_case_worked_by_hand():
    # A: V10 = (1, 1, 1/2), V01 = (1, 2/3), AUROC 5/6; B: V10 = (1, 0, 1), V01 = (2/3, 2/3),
    # AUROC 2/3. S10 = [[1/12, -1/12], [-1/12, 1/3]], S01 = [[1/18, 0], [0, 0]]:
    # var = (1/12 + 1/3 + 1/6) / 3 + (1/18) / 2 = 2/9.
    first = ([0.9, 0.8, 0.3], [0.1, 0.4])
    second = ([0.7, 0.2, 0.6], [0.5, 0.3])
    difference, error, p = paired_tests.delong(first, second)
    assert difference == pytest.approx(1 / 6)
    assert error == pytest.approx(np.sqrt(2 / 9))
    assert p == pytest.approx(2 * norm.sf((1 / 6) / np.sqrt(2 / 9)))


def test_structural_components_average_to_sklearns_auroc():
    rng = np.random.default_rng(0)
    ins, outs = np.round(rng.normal(1, 1, 50), 1), np.round(rng.normal(0, 1, 40), 1)
    v10, v01 = paired_tests.structural_components(ins, outs)
    auroc = roc_auc_score(np.r_[np.ones(50), np.zeros(40)], np.r_[ins, outs])
    assert v10.mean() == pytest.approx(auroc) and v01.mean() == pytest.approx(auroc)


def test_identical_detectors_are_never_distinguishable():
    rng = np.random.default_rng(1)
    scores = (rng.normal(1, 1, 200), rng.normal(0, 1, 150))
    for difference in paired_tests.paired_bootstrap(scores, scores, resamples=200).values():
        assert (difference.value, difference.lower, difference.upper, difference.p) == (
            0.0, 0.0, 0.0, 1.0)
    assert paired_tests.delong(scores, scores) == (0.0, 0.0, 1.0)


def test_a_clearly_better_detector_is_distinguished_by_both_tests():
    rng = np.random.default_rng(2)
    truth_in, truth_out = rng.normal(0, 1, 400), rng.normal(0, 1, 400)
    good = (truth_in + 2, truth_out)                                  # separates well
    poor = (truth_in + 0.3 + rng.normal(0, 1, 400), truth_out)        # barely
    found = paired_tests.paired_bootstrap(good, poor, resamples=300)
    assert found["AUROC"].lower > 0 and found["AUROC"].p < 0.01
    assert found["FPR at TPR 95%"].upper < 0
    assert paired_tests.delong(good, poor)[2] < 1e-6


def test_holm_by_hand():
    np.testing.assert_allclose(paired_tests.holm([0.01, 0.04, 0.03, 0.5]),
                               [0.04, 0.09, 0.09, 0.5])
    np.testing.assert_allclose(paired_tests.holm([0.6, 0.6]), [1.0, 1.0])


def test_best_group_keeps_the_best_and_the_ties_and_drops_the_clearly_worse():
    values = {"a": 0.95, "b": 0.94, "c": 0.70}
    p = {("a", "b"): 0.4, ("a", "c"): 0.001}
    best, group = paired_tests.best_group(values, lambda x, y: p[x, y], "AUROC")
    assert (best, group) == ("a", {"a", "b"})
    # FPR95: lower is better, so the best is the smallest value
    best, group = paired_tests.best_group({"a": 0.3, "b": 0.1}, lambda x, y: 0.01,
                                          "FPR at TPR 95%")
    assert (best, group) == ("b", {"b"})


def test_best_group_corrects_for_the_column_by_holm():
    # alone, p = 0.03 would be significant; beside a second comparison Holm doubles it
    values = {"a": 0.9, "b": 0.8, "c": 0.85}
    p = {("a", "b"): 0.03, ("a", "c"): 0.5}
    assert paired_tests.best_group(values, lambda x, y: p[x, y], "AUROC")[1] == {"a", "b", "c"}
    assert paired_tests.best_group({"a": 0.9, "b": 0.8}, lambda x, y: 0.03,
                                   "AUROC")[1] == {"a"}


def test_difference_is_first_minus_second_over_the_same_replicates():
    values = {"x": {"AUROC": 0.9}, "y": {"AUROC": 0.8}}
    replicates = {"x": {"AUROC": np.linspace(0.85, 0.95, 101)},
                  "y": {"AUROC": np.linspace(0.75, 0.85, 101)}}
    found = paired_tests.difference("AUROC", values, replicates, "x", "y")
    assert found.value == pytest.approx(0.1)
    assert found.lower == pytest.approx(0.1) and found.upper == pytest.approx(0.1)
    assert found.p == 0.0
    assert paired_tests.difference("AUROC", values, replicates, "y", "x").value == \
        pytest.approx(-0.1)
