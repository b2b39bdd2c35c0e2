"""The five OOD metrics of two score arrays, exact or the release's sweep (layer 3: pure
arithmetic; reports/metric_block.py reads score files into it, pipelines/tuning.py ranks
settings by it).

In-distribution is the positive class; a higher score means "more in-distribution".

``exact`` (default): threshold-free, from every distinct score (scikit-learn):
  FPR at 95% TPR  FPR at the highest threshold whose TPR reaches 0.95;
  Detection error min over thresholds of 0.5 (1 - TPR) + 0.5 FPR;
  AUROC           roc_auc_score (ties count one half);
  AUPR In / Out   average precision, in-distribution positive / OOD positive with
                  the score negated.
``fssd``: the FSSD repository's three (fssd_metrics): AUROC, AUPRC (AUPR In) and FPR at
  80% TPR.
``paper``: the release's sweep over 100,000 evenly spaced thresholds on its
  hard-wired ranges, made safe: the range grows to cover every score (any T),
  precision uses counts rather than rates (the release's rates are right only
  for equal set sizes), and when no threshold has TPR in [0.9495, 0.9505] the
  FPR at the highest threshold with TPR >= 0.95 is used instead of dividing by zero.
  Acceptance is ``score >= threshold`` throughout (the release mixed > and >=,
  which differ only on scores exactly equal to a grid point).
"""
import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from oodbench.core.paths import UserError

METRICS = ("FPR at TPR 95%", "Detection error", "AUROC", "AUPR In", "AUPR Out")
FSSD_METRICS = ("AUROC", "AUPRC", "FPR at TPR 80%")   # the FSSD README's three
MODES = {"exact": "exact threshold-free metrics", "paper": "the release's 100,000-threshold sweep"}
# calMetric.py also prints FSSD's three (the tables and tuning rank by the five above)
ALL_MODES = {**MODES, "fssd": "the FSSD repository's AUROC, AUPRC and FPR at 80%% TPR"}
TPR_LEVEL = 0.95          # "FPR at TPR 95%"
PAPER_TPR_WINDOW = (0.9495, 0.9505)   # the release averages FPR over TPR in this window
# The release's threshold ranges, by (number of classes, temperature).
RELEASE_RANGES = {(10, 1): (0.1, 1.0), (10, 1000): (0.1, 0.12),
                  (100, 1): (0.01, 1.0), (100, 1000): (0.01, 0.0104)}
SWEEP_STEPS = 100000


def _labels_and_scores(in_scores, out_scores):
    in_scores, out_scores = np.asarray(in_scores, float), np.asarray(out_scores, float)
    if len(in_scores) == 0 or len(out_scores) == 0:
        raise UserError("metrics need at least one in-distribution and one OOD score")
    labels = np.r_[np.ones(len(in_scores)), np.zeros(len(out_scores))]
    return labels, np.r_[in_scores, out_scores]


def _fpr_at(fpr, tpr, level):
    """FPR at the highest threshold whose TPR reaches ``level`` (an exact ROC's arrays)."""
    return float(fpr[np.searchsorted(tpr, level, side="left")])


def fpr_at_tpr(in_scores, out_scores, level):
    """The fraction of OOD scores at or above the highest threshold that accepts ``level``
    of the in-distribution scores."""
    labels, scores = _labels_and_scores(in_scores, out_scores)
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return _fpr_at(fpr, tpr, level)


def fssd_metrics(in_scores, out_scores):
    """FSSD's three metrics (lib/metric in their code; in-distribution positive): AUROC,
    AUPRC (= AUPR In, average precision; theirs is a trapezoid over the same points) and
    FPR at 80% TPR."""
    labels, scores = _labels_and_scores(in_scores, out_scores)
    return {"AUROC": float(roc_auc_score(labels, scores)),
            "AUPRC": float(average_precision_score(labels, scores)),
            "FPR at TPR 80%": fpr_at_tpr(in_scores, out_scores, 0.8)}


def exact_metrics(in_scores, out_scores):
    labels, scores = _labels_and_scores(in_scores, out_scores)
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return {
        "FPR at TPR 95%": _fpr_at(fpr, tpr, TPR_LEVEL),
        "Detection error": float(np.min(0.5 * (1 - tpr) + 0.5 * fpr)),
        "AUROC": float(roc_auc_score(labels, scores)),
        "AUPR In": float(average_precision_score(labels, scores)),
        "AUPR Out": float(average_precision_score(1 - labels, -scores)),
    }


def sweep_range(scores, num_classes=None, temperature=None):
    """The release's range for this case, widened to cover every score."""
    lo, hi = float(np.min(scores)), float(np.max(scores))
    start, end = RELEASE_RANGES.get((num_classes, temperature), (lo, hi))
    return min(start, lo), max(end, np.nextafter(hi, np.inf))


def _count_at_least(sorted_scores, thresholds):
    return len(sorted_scores) - np.searchsorted(sorted_scores, thresholds, side="left")


def _step_area(x, y):
    """The release's rectangle rule: sum of (x_prev - x) * y from x_prev = 1, plus
    x_last * y_last."""
    previous = np.r_[1.0, x[:-1]]
    return float(np.sum((previous - x) * y) + x[-1] * y[-1])


def paper_metrics(in_scores, out_scores, start, end, steps=SWEEP_STEPS):
    _labels_and_scores(in_scores, out_scores)
    ins, outs = np.sort(np.asarray(in_scores, float)), np.sort(np.asarray(out_scores, float))
    gap = (end - start) / steps
    up = np.arange(start, end, gap)
    tp, fp = _count_at_least(ins, up), _count_at_least(outs, up)
    tpr, fpr = tp / len(ins), fp / len(outs)

    near = (tpr >= PAPER_TPR_WINDOW[0]) & (tpr <= PAPER_TPR_WINDOW[1])
    if not near.any():  # the release divided by zero here; take the exact definition instead
        near = np.arange(len(tpr)) == np.flatnonzero(tpr >= TPR_LEVEL).max(initial=0)
    kept = tp + fp > 0
    precision_in = tp[kept] / (tp[kept] + fp[kept])

    down = np.arange(end, start, -gap)
    in_below = len(ins) - _count_at_least(ins, down)
    out_below = len(outs) - _count_at_least(outs, down)
    stop = np.flatnonzero(in_below + out_below == 0)
    last = stop[0] if len(stop) else len(down)
    in_below, out_below = in_below[:last], out_below[:last]
    return {
        "FPR at TPR 95%": float(np.mean(fpr[near])),
        "Detection error": float(min(1.0, np.min((1 - tpr + fpr) / 2))),
        "AUROC": _step_area(fpr, tpr),
        "AUPR In": _step_area(tp[kept] / len(ins), precision_in),
        "AUPR Out": _step_area(out_below / len(outs), out_below / (out_below + in_below)),
    }


def compute(in_scores, out_scores, mode="exact", num_classes=None, temperature=None):
    if mode == "exact":
        return exact_metrics(in_scores, out_scores)
    if mode == "fssd":
        return fssd_metrics(in_scores, out_scores)
    start, end = sweep_range(np.r_[in_scores, out_scores], num_classes, temperature)
    return paper_metrics(in_scores, out_scores, start, end)
