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
- ``holm``: Holm's step-down adjustment of a family of p-values.
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


def paired_bootstrap(first, second, resamples=intervals.RESAMPLES, seed=intervals.SEED,
                     level=intervals.LEVEL):
    """{metric: Difference} of AUROC and FPR95 between two detectors' (in, out) scores of
    the same images."""
    (in_a, out_a), (in_b, out_b) = first, second
    in_a, out_a = intervals.check_scores(in_a, out_a, "first detector")
    in_b, out_b = intervals.check_scores(in_b, out_b, "second detector")
    if (len(in_a), len(out_a)) != (len(in_b), len(out_b)):
        raise ValueError("a paired comparison needs both detectors' scores of the same images")
    a = intervals.replicates(in_a, out_a, resamples, seed)
    b = intervals.replicates(in_b, out_b, resamples, seed)
    value_a = intervals.point_values(in_a, out_a)
    value_b = intervals.point_values(in_b, out_b)
    found = {}
    for name in intervals.METRIC_FUNCTIONS:
        differences = a[name] - b[name]
        lower, upper = intervals.percentile_interval(differences, level)
        p = min(1.0, 2 * min((differences <= 0).mean(), (differences >= 0).mean()))
        found[name] = Difference(name, value_a[name] - value_b[name], lower, upper, float(p))
    return found


def structural_components(in_scores, out_scores):
    """(V10 [m], V01 [n]) of one detector (higher score = in-distribution)."""
    m = len(in_scores)
    pooled = rankdata(np.r_[in_scores, out_scores])
    v10 = (pooled[:m] - rankdata(in_scores)) / len(out_scores)
    v01 = 1 - (pooled[m:] - rankdata(out_scores)) / m
    return v10, v01


def delong(first, second):
    """(AUROC difference first - second, its standard error, two-sided p) by DeLong's test."""
    (in_a, out_a), (in_b, out_b) = first, second
    m, n = len(in_a), len(out_a)
    v10_a, v01_a = structural_components(np.asarray(in_a, float), np.asarray(out_a, float))
    v10_b, v01_b = structural_components(np.asarray(in_b, float), np.asarray(out_b, float))
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
