"""A table's cells judged by the images (reports/uncertainty.py): intervals per cell, the
best group of a column, every pair, the mean column, and the cell's compact text."""
import numpy as np
import pytest

from oodbench.reports import uncertainty
from oodbench.scoring import intervals

AUROC, FPR = "AUROC", "FPR at TPR 95%"


def table(seed=0, n=300):
    """Three detectors on two OOD sets of the same in-distribution images: 'good' separates
    well, 'twin' is 'good' itself, 'poor' barely separates."""
    rng = np.random.default_rng(seed)
    truth_in = rng.normal(0, 1, n)
    scores = {}
    for column in ("setA", "setB"):
        truth_out = rng.normal(0, 1, n)
        scores[column, "good"] = (truth_in + 2.5, truth_out)
        scores[column, "twin"] = (truth_in + 2.5, truth_out)
        scores[column, "poor"] = (truth_in + 0.3 + rng.normal(0, 1, n), truth_out)
    return scores


def test_the_best_group_holds_the_best_and_its_twin_and_not_the_poor():
    found = uncertainty.assess(table(), ["setA", "setB"], ["good", "twin", "poor"],
                               resamples=200)
    for column in ("setA", "setB", uncertainty.MEAN):
        for metric in uncertainty.METRICS:
            assert found.best[column, metric] == {"good", "twin"}, (column, metric)


def test_identical_rows_are_never_distinguishable_and_the_poor_always_is():
    found = uncertainty.assess(table(), ["setA", "setB"], ["good", "twin", "poor"],
                               resamples=200)
    assert len(found.pairs) == 3 * 2 * 3          # (2 sets + mean) x 2 metrics x 3 pairs
    for pair in found.pairs:
        twins = {pair.first, pair.second} == {"good", "twin"}
        assert pair.distinguishable != twins, pair
        if twins:
            assert (pair.difference, pair.lower, pair.upper, pair.p_bootstrap) == (0, 0, 0, 1)
        by_delong = pair.metric == AUROC and pair.column != uncertainty.MEAN
        assert (pair.p_delong is not None) == by_delong


def test_each_cell_holds_its_metric_and_interval():
    scores = table()
    found = uncertainty.assess(scores, ["setA", "setB"], ["good", "twin", "poor"],
                               resamples=200)
    for (column, row), pair in scores.items():
        point = intervals.point_values(*pair)
        for metric in uncertainty.METRICS:
            got = found.intervals[column, row][metric]
            assert got.value == point[metric]
            assert got.lower <= got.value <= got.upper
    mean = found.intervals[uncertainty.MEAN, "poor"][AUROC]
    assert mean.value == pytest.approx(np.mean(
        [found.intervals[c, "poor"][AUROC].value for c in ("setA", "setB")]))


def test_a_row_missing_from_a_column_has_no_mean_and_rows_of_other_images_are_refused():
    scores = table()
    del scores["setB", "poor"]
    found = uncertainty.assess(scores, ["setA", "setB"], ["good", "twin", "poor"],
                               resamples=200)
    assert ("setA", "poor") in found.intervals and (uncertainty.MEAN, "poor") not in \
        found.intervals
    scores["setA", "poor"] = (scores["setA", "poor"][0][:-1], scores["setA", "poor"][1])
    with pytest.raises(ValueError, match="same images"):
        uncertainty.assess(scores, ["setA"], ["good", "poor"], resamples=200)


def test_the_assessment_is_reproducible_under_its_seed():
    run = [uncertainty.assess(table(), ["setA", "setB"], ["good", "poor"], resamples=200,
                              seed=s).intervals for s in (5, 5, 6)]
    assert run[0] == run[1] and run[0] != run[2]


def test_the_compact_cell():
    cell = intervals.Interval(0.063, 0.058, 0.0695)
    assert uncertainty.cell(cell) == "6.3 ±0.7"
    assert uncertainty.cell(intervals.Interval(1.0, 1.0, 1.0), bold=True) == "**100.0 ±0.0**"


def test_two_decimals_where_one_would_hide_a_difference_the_test_finds():
    """100.00 against 99.96 on 20,000 images a side: DeLong tells them apart, and one
    decimal would print both as 100.0, the second not bold."""
    n = 20_000
    rng = np.random.default_rng(0)
    ins, outs = rng.normal(0, 1, n) + 20, rng.normal(0, 1, n)
    near = ins.copy()
    near[:8] = -20                                  # 8 test images below every OOD image
    scores = {("noise", "perfect"): (ins, outs), ("noise", "near"): (near, outs)}
    found = uncertainty.assess(scores, ["noise"], ["perfect", "near"], resamples=200)
    assert found.best["noise", AUROC] == {"perfect"}
    assert uncertainty.column_digits(found, "noise", ["perfect", "near"], AUROC) == 2
    assert uncertainty.cell(found.intervals["noise", "near"][AUROC], digits=2) \
        .startswith("99.96 ±")
    usual = uncertainty.assess(table(), ["setA", "setB"], ["good", "twin", "poor"],
                               resamples=200)
    assert uncertainty.column_digits(usual, "setA", ["good", "twin", "poor"], AUROC) == 1


def test_pairs_are_holm_corrected_over_their_column_by_the_deciding_test():
    found = uncertainty.assess(table(n=60), ["setA", "setB"], ["good", "twin", "poor"],
                               resamples=200)
    for column in ("setA", "setB", uncertainty.MEAN):
        for metric in uncertainty.METRICS:
            pairs = [p for p in found.pairs if (p.column, p.metric) == (column, metric)]
            deciding = [p.p_bootstrap if p.p_delong is None else p.p_delong for p in pairs]
            np.testing.assert_allclose([p.p_holm for p in pairs],
                                       uncertainty.paired_tests.holm(deciding))


def test_two_ood_sets_of_one_size_are_resampled_independently():
    a = intervals.Resampler(50, 40, 200, 0, intervals.stream_of("setA"))
    b = intervals.Resampler(50, 40, 200, 0, intervals.stream_of("setB"))
    assert (a.in_counts == b.in_counts).all()          # the same test images
    assert not (a.out_counts == b.out_counts).all()


def test_each_ood_set_is_resampled_on_its_own():
    scores = table()
    scores["setB", "good"] = scores["setA", "good"]          # the same images under two names
    found = uncertainty.assess(scores, ["setA", "setB"], ["good"], resamples=200)
    assert found.intervals["setA", "good"] != found.intervals["setB", "good"]


def test_a_detector_of_constant_scores_is_named_in_a_note():
    scores = table()
    scores["setA", "poor"] = (np.zeros(300), np.zeros(300))
    found = uncertainty.assess(scores, ["setA", "setB"], ["good", "poor"], resamples=200)
    assert found.constant == [("setA", "poor")]
    interval = found.intervals["setA", "poor"][AUROC]
    assert (interval.value, interval.lower, interval.upper) == (0.5, 0.5, 0.5)
    (_, note) = uncertainty.constant_notes(found, {"setA": "Set A"})
    assert "poor on Set A" in note
