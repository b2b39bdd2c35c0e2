"""Bootstrap confidence intervals of AUROC and FPR at 95% TPR, vectorised (layer 3: pure
arithmetic beside metrics.py).

The in-distribution and the OOD images are resampled independently, with replacement, B
times. A resample is a row of counts (how often each image was drawn), so one sort of each
side's scores serves every resample:

- AUROC of resample b = sum_i w_i (weight of OOD scores below s_i + half the weight of
  those equal to it) / (n_in n_out): the Mann-Whitney statistic, ties one half, as
  scikit-learn's roc_auc_score; the cumulative OOD counts over the sorted OOD scores give
  each in-distribution score's share at the positions of two binary searches;
- FPR95 of resample b: the threshold is the k-th largest in-distribution score counted with
  its weights (k the fewest images that reach TPR 0.95, as metrics.fpr_at_tpr), and the FPR
  the weight of OOD scores at or above it.

Counts are integers throughout, so every resample's value is the metric of its images
exactly (tests/test_intervals.py checks each against metrics.py). The counts of a side are
drawn from ``numpy.random.default_rng([seed, side, stream, chunk])``, CHUNK resamples at a
time: they depend on the seed, the set's size and its stream only, not on a batch size, the
machine's memory or torchrun's ranks. Every detector scored on the same images gets the same
resamples (a ``Resampler`` per set), which is what the paired tests of paired_tests.py need;
the in-distribution side takes stream 0 everywhere, so sets scored on the same number of
test images share its resamples (the same images), while a set scored on fewer (iSUN's
7,925) gets resamples of its own; each OOD set takes its own stream (``stream_of`` its
name), so two OOD sets of one size are not resampled in lockstep.
"""
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from oodbench.core.paths import UserError
from oodbench.scoring.metrics import TPR_LEVEL

RESAMPLES = 2000
CHUNK = 500          # resamples drawn (and held as int64 temporaries) at a time
LEVEL = 0.95         # two-sided coverage of an interval
SEED = 0
MIN_RESAMPLES = 100
BOOTSTRAPPED = ("AUROC", "FPR at TPR 95%")


def fpr_name(level):
    """The metric's name at TPR ``level``: "FPR at TPR 95%" (metrics.py's), "FPR at TPR 80%"
    (the FSSD repository's)."""
    return f"FPR at TPR {round(100 * level)}%"


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


def stream_of(name):
    """The resampling stream of an OOD set's name: a fixed number, the same on every run."""
    return zlib.crc32(name.encode())


@lru_cache(maxsize=4)
def resample_counts(n, resamples, seed, side, stream=0):
    """[resamples, n] uint8 counts of each image in each resample of one side (0: in,
    1: out): n draws with replacement per resample, counted by one bincount per chunk.
    Read-only: cached for the next set of the same size and stream."""
    parts = []
    for chunk, start in enumerate(range(0, resamples, CHUNK)):
        size = min(CHUNK, resamples - start)
        rng = np.random.default_rng([seed, side, stream, chunk])
        drawn = rng.integers(0, n, size=(size, n))
        drawn += (np.arange(size) * n)[:, None]
        counts = np.bincount(drawn.ravel(), minlength=size * n)
        if counts.max() > np.iinfo(np.uint8).max:   # never at n > 1 in practice; be exact
            raise ValueError("a resample drew one image more than 255 times")
        parts.append(counts.astype(np.uint8).reshape(size, n))
    counts = np.concatenate(parts)
    counts.flags.writeable = False
    return counts


def tpr_count(n_in, level=TPR_LEVEL):
    """The fewest in-distribution images whose acceptance reaches TPR ``level``, with the
    comparison metrics.py's ROC makes (count / n >= level in floating point)."""
    counts = np.arange(1, n_in + 1)
    return int(counts[np.argmax(counts / n_in >= level)])


def resample_values(in_scores, out_scores, in_counts, out_counts, level=TPR_LEVEL):
    """{metric: [rows] values} of AUROC and FPR at TPR ``level`` (named by fpr_name) for
    each row of counts ([rows, n_in] and [rows, n_out], in the scores' own order; module
    docstring)."""
    in_order, out_order = np.argsort(in_scores), np.argsort(out_scores)
    in_sorted, out_sorted = in_scores[in_order], out_scores[out_order]
    below = np.searchsorted(out_sorted, in_sorted, side="left")
    up_to = np.searchsorted(out_sorted, in_sorted, side="right")
    ties = bool((below != up_to).any())
    n_in, n_out = len(in_sorted), len(out_sorted)
    k = tpr_count(n_in, level)
    fpr = fpr_name(level)
    found = {"AUROC": [], fpr: []}
    # int64 buffers reused by every chunk, filled in place (no fresh arrays per chunk)
    rows = min(CHUNK, len(in_counts))
    weights = np.zeros((rows, n_in + 1), np.int64)       # in weight, from column 1
    shares = np.empty((rows, n_in), np.int64)
    cumulative = np.zeros((rows, n_out + 1), np.int64)   # OOD weight below each position
    for start in range(0, len(in_counts), CHUNK):
        in_chunk, out_chunk = in_counts[start:start + CHUNK], out_counts[start:start + CHUNK]
        m = len(in_chunk)
        w, twice, c = weights[:m, 1:], shares[:m], cumulative[:m]
        np.copyto(w, np.take(in_chunk, in_order, axis=1))
        np.copyto(c[:, 1:], np.take(out_chunk, out_order, axis=1))
        np.cumsum(c[:, 1:], axis=1, out=c[:, 1:])
        np.take(c, below, axis=1, out=twice)
        if ties:
            twice += np.take(c, up_to, axis=1)
        else:
            twice *= 2
        total_in, total_out = w.sum(axis=1), c[:, -1]
        twice *= w
        found["AUROC"].append(twice.sum(axis=1) / (2.0 * total_in * total_out))
        # the threshold: the k-th largest score counted with its weights, i.e. the highest
        # position whose in-distribution weight strictly below it is at most total - k
        np.cumsum(w, axis=1, out=w)
        strictly_below = weights[:m, :n_in]
        position = (strictly_below <= (total_in - k)[:, None]).sum(axis=1) - 1
        threshold = in_sorted[position]
        accepted = total_out - c[np.arange(m), np.searchsorted(out_sorted, threshold,
                                                               side="left")]
        found[fpr].append(accepted / total_out)
    return {name: np.concatenate(values) for name, values in found.items()}


def point_values(in_scores, out_scores, level=TPR_LEVEL):
    """{metric: value} of AUROC and FPR at TPR ``level`` (95%) on the images as they are
    (every count 1)."""
    in_scores, out_scores = check_scores(in_scores, out_scores)
    ones_in = np.ones((1, len(in_scores)), np.uint8)
    ones_out = np.ones((1, len(out_scores)), np.uint8)
    return {name: float(values[0]) for name, values in
            resample_values(in_scores, out_scores, ones_in, ones_out, level).items()}


class Resampler:
    """The B resamples of one pair of sets (n_in and n_out images), drawn once and shared by
    every detector scored on those images; ``stream``: the OOD side's (``stream_of``)."""

    def __init__(self, n_in, n_out, resamples=RESAMPLES, seed=SEED, stream=0):
        check_resamples(resamples)
        self.n_in, self.n_out, self.resamples, self.seed = n_in, n_out, resamples, seed
        self.stream = stream

    @property
    def in_counts(self):
        return resample_counts(self.n_in, self.resamples, self.seed, 0)

    @property
    def out_counts(self):
        return resample_counts(self.n_out, self.resamples, self.seed, 1, self.stream)

    def replicates(self, in_scores, out_scores, what="scores", level=TPR_LEVEL):
        """{metric: [resamples] values} of AUROC and FPR at TPR ``level`` (95%) of one
        detector's scores."""
        in_scores, out_scores = check_scores(in_scores, out_scores, what)
        if (len(in_scores), len(out_scores)) != (self.n_in, self.n_out):
            raise ValueError(f"{what}: {len(in_scores)} + {len(out_scores)} scores for "
                             f"resamples of {self.n_in} + {self.n_out} images")
        return resample_values(in_scores, out_scores, self.in_counts, self.out_counts, level)


def replicates(in_scores, out_scores, resamples=RESAMPLES, seed=SEED):
    """{metric: [resamples] values} of AUROC and FPR95 over the bootstrap resamples."""
    in_scores, out_scores = check_scores(in_scores, out_scores)
    return Resampler(len(in_scores), len(out_scores), resamples, seed).replicates(
        in_scores, out_scores)


def percentile_interval(values, level=LEVEL):
    tail = 100 * (1 - level) / 2
    lower, upper = np.percentile(values, [tail, 100 - tail])
    return float(lower), float(upper)


def interval(value, values, level=LEVEL):
    """Interval of a metric's ``value`` from its bootstrap ``values`` (percentile)."""
    return Interval(float(value), *percentile_interval(values, level))


def intervals(in_scores, out_scores, resamples=RESAMPLES, seed=SEED, level=LEVEL):
    """{metric: Interval} of AUROC and FPR95: the value on the images as they are and the
    percentile bootstrap interval."""
    in_scores, out_scores = check_scores(in_scores, out_scores)
    values = replicates(in_scores, out_scores, resamples, seed)
    return {name: interval(value, values[name], level)
            for name, value in point_values(in_scores, out_scores).items()}
