"""Bootstrap intervals of AUROC and FPR95 (scoring/intervals.py): each resample's value is the
metric of the resampled images (scikit-learn's, metrics.py's), known cases, seeds, errors."""
import numpy as np
import pytest

from oodbench.core.paths import UserError
from oodbench.scoring import intervals, metrics


def scores(seed=1, n_in=300, n_out=200):
    rng = np.random.default_rng(seed)
    return np.round(rng.normal(1, 1, n_in), 1), np.round(rng.normal(0, 1, n_out), 1)  # ties


def test_each_resample_is_the_metric_of_the_resampled_images():
    ins, outs = scores()
    in_w = intervals.resample_counts(len(ins), 20, 0, 0)
    out_w = intervals.resample_counts(len(outs), 20, 0, 1)
    assert (in_w.sum(axis=1) == len(ins)).all() and (out_w.sum(axis=1) == len(outs)).all()
    found = intervals.resample_values(ins, outs, in_w, out_w)
    for b in range(20):
        picked_in = np.repeat(ins, in_w[b].astype(int))
        picked_out = np.repeat(outs, out_w[b].astype(int))
        expected = metrics.exact_metrics(picked_in, picked_out)
        for name in intervals.BOOTSTRAPPED:
            assert found[name][b] == pytest.approx(expected[name], abs=1e-12), name


def test_the_vectorised_auroc_is_scikit_learns_without_ties_too():
    rng = np.random.default_rng(5)
    ins, outs = rng.normal(1, 1, 700), rng.normal(0, 1, 500)
    assert intervals.point_values(ins, outs) == pytest.approx(
        {name: metrics.exact_metrics(ins, outs)[name] for name in intervals.BOOTSTRAPPED},
        abs=1e-12)


def test_resamples_draw_uniformly():
    counts = intervals.resample_counts(50, 400, 0, 0)
    assert abs(counts.mean() - 1) < 0.02 and abs(counts.var() - (1 - 1 / 50)) < 0.05
    assert not (counts == intervals.resample_counts(50, 400, 0, 1)).all()   # sides differ


def test_the_value_is_the_metric_and_the_interval_holds_it():
    ins, outs = scores()
    found = intervals.intervals(ins, outs, resamples=400)
    exact = metrics.exact_metrics(ins, outs)
    for name, interval in found.items():
        assert interval.value == pytest.approx(exact[name], abs=1e-12)
        assert interval.lower < interval.value < interval.upper
    assert 0.03 < found["AUROC"].upper - found["AUROC"].lower < 0.15


def test_perfectly_separated_scores_give_a_point_interval():
    found = intervals.intervals(np.linspace(2, 3, 50), np.linspace(0, 1, 40), resamples=200)
    assert (found["AUROC"].lower, found["AUROC"].upper) == (1.0, 1.0)
    assert (found["FPR at TPR 95%"].lower, found["FPR at TPR 95%"].upper) == (0.0, 0.0)


def test_reproducible_under_the_seed_and_not_under_another():
    ins, outs = scores()
    a = intervals.intervals(ins, outs, resamples=300, seed=3)
    assert a == intervals.intervals(ins, outs, resamples=300, seed=3)
    assert a != intervals.intervals(ins, outs, resamples=300, seed=4)
    # the first resamples do not depend on how many are drawn
    few = intervals.replicates(ins, outs, resamples=260, seed=3)["AUROC"]
    many = intervals.replicates(ins, outs, resamples=520, seed=3)["AUROC"]
    np.testing.assert_array_equal(few, many[:260])


@pytest.mark.parametrize("ins, outs, resamples, message", [
    ([0.5, np.nan, 0.2], [0.1, 0.2], 200, "NaN or infinite"),
    ([0.5], [0.1, 0.2], 200, "at least two images a side"),
    ([0.5, 0.6], [0.1, 0.2], 50, "at least 100"),
])
def test_bad_input_is_a_clear_error(ins, outs, resamples, message):
    with pytest.raises(UserError, match=message):
        intervals.intervals(ins, outs, resamples=resamples)
