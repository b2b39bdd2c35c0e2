"""Bootstrap confidence intervals of AUROC and FPR at 95% TPR, vectorised (layer 3: pure
arithmetic beside metrics.py).

The in-distribution and the OOD images are resampled independently, with replacement, B
times. A resample is a vector of counts (how often each image was drawn), so one sort of
each side's scores serves every resample:

- AUROC of resample b = sum_i w_i (weight of OOD scores below s_i + half the weight of
  those equal to it) / (n_in n_out): the Mann-Whitney statistic, ties one half, as
  scikit-learn's roc_auc_score; the OOD weights' cumulative sums over the sorted OOD scores
  give each in-distribution score's share by two binary searches;
- FPR95 of resample b: the threshold is the k-th largest in-distribution score counted with
  its weights (k the fewest images that reach TPR 0.95, as metrics.fpr_at_tpr), and the FPR
  the weight of OOD scores at or above it.

The counts come from ``numpy.random.default_rng([seed, chunk])`` for chunks of CHUNK
resamples, so the intervals depend on the seed and the two set sizes only: not on a batch
size, the machine's memory or torchrun's ranks.
"""
from dataclasses import dataclass

import numpy as np

from oodbench.core.paths import UserError
from oodbench.scoring.metrics import TPR_LEVEL

RESAMPLES = 2000
CHUNK = 250          # resamples drawn (and held in memory) at a time
LEVEL = 0.95         # two-sided coverage of an interval
SEED = 0
MIN_RESAMPLES = 100


@dataclass(frozen=True)
class Interval:
    value: float         # the metric on the images as they are
    lower: float
    upper: float


def check_scores(in_scores, out_scores, what="scores"):
    """The two score arrays as float64; a UserError for too few, NaN or infinite scores."""
    in_scores = np.asarray(in_scores, dtype=np.float64)
    out_scores = np.asarray(out_scores, dtype=np.float64)
    for side, scores in (("in-distribution", in_scores), ("OOD", out_scores)):
        if len(scores) < 2:
            raise UserError(f"{what}: {len(scores)} {side} score(s): an interval needs at "
                            "least two images a side")
        if not np.isfinite(scores).all():
            raise UserError(f"{what}: {int((~np.isfinite(scores)).sum())} {side} score(s) "
                            "are NaN or infinite")
    return in_scores, out_scores


def check_resamples(resamples):
    if resamples < MIN_RESAMPLES:
        raise UserError(f"--resamples must be at least {MIN_RESAMPLES} for a 95% interval, "
                        f"got {resamples}")


def resample_counts(n, resamples, seed, side):
    """[resamples, n] counts of each image in each resample of one side (0: in, 1: out),
    drawn chunk by chunk (module docstring)."""
    parts = []
    for chunk, start in enumerate(range(0, resamples, CHUNK)):
        rng = np.random.default_rng([seed, side, chunk])
        size = min(CHUNK, resamples - start)
        parts.append(rng.multinomial(n, np.full(n, 1.0 / n), size=size).astype(np.float64))
    return np.concatenate(parts)


def tpr_count(n_in, level=TPR_LEVEL):
    """The fewest in-distribution images whose acceptance reaches TPR ``level``, with the
    comparison metrics.py's ROC makes (count / n >= level in floating point)."""
    counts = np.arange(1, n_in + 1)
    return int(counts[np.argmax(counts / n_in >= level)])


def weighted_auroc(in_sorted, out_sorted, in_weights, out_weights):
    """AUROC of each row of weights [B, n_in] and [B, n_out] over scores sorted ascending."""
    cumulative = np.concatenate([np.zeros((len(out_weights), 1)),
                                 np.cumsum(out_weights, axis=1)], axis=1)
    below = cumulative[:, np.searchsorted(out_sorted, in_sorted, side="left")]
    up_to = cumulative[:, np.searchsorted(out_sorted, in_sorted, side="right")]
    wins = (in_weights * (below + 0.5 * (up_to - below))).sum(axis=1)
    return wins / (in_weights.sum(axis=1) * out_weights.sum(axis=1))


def weighted_fpr(in_sorted, out_sorted, in_weights, out_weights, level=TPR_LEVEL):
    """FPR at TPR ``level`` of each row of weights, scores sorted ascending."""
    n_in = int(round(in_weights[0].sum()))
    k = tpr_count(n_in, level)
    from_top = np.cumsum(in_weights[:, ::-1], axis=1)           # descending scores
    position = (from_top >= k - 1e-9).argmax(axis=1)
    threshold = in_sorted[::-1][position]
    cumulative = np.concatenate([np.zeros((len(out_weights), 1)),
                                 np.cumsum(out_weights, axis=1)], axis=1)
    below = cumulative[np.arange(len(out_weights)),
                       np.searchsorted(out_sorted, threshold, side="left")]
    total = out_weights.sum(axis=1)
    return (total - below) / total


METRIC_FUNCTIONS = {"AUROC": weighted_auroc, "FPR at TPR 95%": weighted_fpr}


def replicates(in_scores, out_scores, resamples=RESAMPLES, seed=SEED):
    """{metric: [resamples] values} of AUROC and FPR95 over the bootstrap resamples."""
    in_scores, out_scores = check_scores(in_scores, out_scores)
    check_resamples(resamples)
    in_order, out_order = np.argsort(in_scores), np.argsort(out_scores)
    in_w = resample_counts(len(in_scores), resamples, seed, 0)[:, in_order]
    out_w = resample_counts(len(out_scores), resamples, seed, 1)[:, out_order]
    in_sorted, out_sorted = in_scores[in_order], out_scores[out_order]
    return {name: np.concatenate([
        metric(in_sorted, out_sorted, in_w[start:start + CHUNK], out_w[start:start + CHUNK])
        for start in range(0, resamples, CHUNK)]) for name, metric in METRIC_FUNCTIONS.items()}


def percentile_interval(values, level=LEVEL):
    tail = 100 * (1 - level) / 2
    lower, upper = np.percentile(values, [tail, 100 - tail])
    return float(lower), float(upper)


def point_values(in_scores, out_scores):
    """{metric: value} of AUROC and FPR95 on the images as they are (every weight 1)."""
    ones_in, ones_out = np.ones((1, len(in_scores))), np.ones((1, len(out_scores)))
    in_sorted, out_sorted = np.sort(in_scores), np.sort(out_scores)
    return {name: float(metric(in_sorted, out_sorted, ones_in, ones_out)[0])
            for name, metric in METRIC_FUNCTIONS.items()}


def intervals(in_scores, out_scores, resamples=RESAMPLES, seed=SEED, level=LEVEL):
    """{metric: Interval} of AUROC and FPR95: the value on the images as they are and the
    percentile bootstrap interval."""
    in_scores, out_scores = check_scores(in_scores, out_scores)
    values = replicates(in_scores, out_scores, resamples, seed)
    return {name: Interval(value, *percentile_interval(values[name], level))
            for name, value in point_values(in_scores, out_scores).items()}
