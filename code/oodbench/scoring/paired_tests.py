"""Two detectors scored on the same images, compared (layer 3: pure arithmetic).

- ``paired_bootstrap``: the same resampled image counts for both (scoring/intervals.py), so
  the difference of their AUROCs or FPR95s is resampled as a whole; its percentile interval
  and the two-sided bootstrap p-value (twice the smaller share of differences on either side
  of zero, at most 1).
- ``delong``: DeLong, DeLong & Clarke-Pearson (1988)'s test of two correlated AUROCs, by
  Sun & Xu (2014)'s midranks: each detector's structural components V10 (per in-distribution
  image: the share of OOD images below it, ties one half) and V01 (per OOD image), their
  covariances over the images, and z = (A_1 - A_2) / sqrt(var) with var = c' (S10 / m +
  S01 / n) c, c = (1, -1).
- ``holm``: Holm's step-down adjustment of a family of p-values;
- ``best_group``: the detectors of a table's column not significantly worse than its best.
"""
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm, rankdata

from oodbench.scoring import intervals


@dataclass(frozen=True)
class Difference:
    metric: str
    value: float          # first detector's minus second's, on the images as they are
    lower: float
    upper: float
    p: float


def difference(name, values, replicates, first, second, level=intervals.LEVEL):
    """Difference of metric ``name`` between two detectors, ``first`` minus ``second``, from
    their values and their replicates over the same resamples ({detector: {metric: ...}})."""
    differences = replicates[first][name] - replicates[second][name]
    lower, upper = intervals.percentile_interval(differences, level)
    p = min(1.0, 2 * min((differences <= 0).mean(), (differences >= 0).mean()))
    return Difference(name, values[first][name] - values[second][name], lower, upper, float(p))


def paired_bootstrap(first, second, resamples=intervals.RESAMPLES, seed=intervals.SEED,
                     level=intervals.LEVEL):
    """{metric: Difference} of AUROC and FPR95 between two detectors' (in, out) scores of
    the same images."""
    (in_a, out_a), (in_b, out_b) = first, second
    in_a, out_a = intervals.check_scores(in_a, out_a, "first detector")
    in_b, out_b = intervals.check_scores(in_b, out_b, "second detector")
    if (len(in_a), len(out_a)) != (len(in_b), len(out_b)):
        raise ValueError("a paired comparison needs both detectors' scores of the same images")
    resampler = intervals.Resampler(len(in_a), len(out_a), resamples, seed)
    replicates = {0: resampler.replicates(in_a, out_a), 1: resampler.replicates(in_b, out_b)}
    values = {0: intervals.point_values(in_a, out_a), 1: intervals.point_values(in_b, out_b)}
    return {name: difference(name, values, replicates, 0, 1, level)
            for name in intervals.BOOTSTRAPPED}


def structural_components(in_scores, out_scores):
    """(V10 [m], V01 [n]) of one detector (higher score = in-distribution)."""
    m = len(in_scores)
    pooled = rankdata(np.r_[in_scores, out_scores])
    v10 = (pooled[:m] - rankdata(in_scores)) / len(out_scores)
    v01 = 1 - (pooled[m:] - rankdata(out_scores)) / m
    return v10, v01


def delong(first, second):
    """(AUROC difference first - second, its standard error, two-sided p) by DeLong's test."""
    return delong_of_components(structural_components(*map(_floats, first)),
                                structural_components(*map(_floats, second)))


def _floats(scores):
    return np.asarray(scores, dtype=np.float64)


def delong_of_components(first, second):
    """delong() from each detector's (V10, V01): compute them once per detector, test every
    pair."""
    (v10_a, v01_a), (v10_b, v01_b) = first, second
    m, n = len(v10_a), len(v01_a)
    difference = v10_a.mean() - v10_b.mean()
    s10, s01 = np.cov(np.stack([v10_a, v10_b])), np.cov(np.stack([v01_a, v01_b]))
    c = np.array([1.0, -1.0])
    variance = float(c @ (s10 / m + s01 / n) @ c)
    if variance <= 0:
        return float(difference), 0.0, 1.0 if difference == 0 else 0.0
    error = np.sqrt(variance)
    return float(difference), float(error), float(2 * norm.sf(abs(difference) / error))


def holm(p_values):
    """Holm-adjusted p-values, in the order given."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    steps = (len(p) - np.arange(len(p))) * p[order]
    adjusted = np.minimum(1.0, np.maximum.accumulate(steps))
    out = np.empty_like(adjusted)
    out[order] = adjusted
    return out


def higher_is_better(metric):
    return not metric.startswith("FPR")


def best_group(values, p_against_best, metric, alpha=0.05):
    """The detectors of one column not significantly worse than its best: the best by value,
    and every other whose Holm-adjusted p-value against the best (over the column's other
    detectors) is at least ``alpha``. ``values``: {detector: value}; ``p_against_best``:
    (best, detector) -> two-sided p of their difference."""
    pick = max if higher_is_better(metric) else min
    best = pick(values, key=values.get)
    others = [d for d in values if d != best]
    adjusted = holm([p_against_best(best, d) for d in others]) if others else []
    return best, {best} | {d for d, p in zip(others, adjusted) if p >= alpha}
