"""OOD detection metrics from the release's score files, and the release's metric block.

In-distribution is the positive class; a higher score means "more in-distribution".

``exact`` (default): threshold-free, from every distinct score (scikit-learn):
  FPR at 95% TPR  FPR at the highest threshold whose TPR reaches 0.95;
  Detection error min over thresholds of 0.5 (1 - TPR) + 0.5 FPR;
  AUROC           roc_auc_score (ties count one half);
  AUPR In / Out   average precision, in-distribution positive / OOD positive with
                  the score negated.
``paper``: the release's sweep over 100,000 evenly spaced thresholds on its
  hard-wired ranges, made safe: the range grows to cover every score (any T),
  precision uses counts rather than rates (the release's rates are right only
  for equal set sizes), and when no threshold has TPR in [0.9495, 0.9505] the
  FPR at the highest threshold with TPR >= 0.95 is used instead of dividing by zero.
  Acceptance is ``score >= threshold`` throughout (the release mixed > and >=,
  which differ only on scores exactly equal to a grid point).

    python calMetric.py RUN_DIR [--metrics paper]
"""
import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from paths import UserError, report_errors

METRICS = ("FPR at TPR 95%", "Detection error", "AUROC", "AUPR In", "AUPR Out")
SCORE_DIR = "softmax_scores"
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


def exact_metrics(in_scores, out_scores):
    labels, scores = _labels_and_scores(in_scores, out_scores)
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return {
        "FPR at TPR 95%": float(fpr[np.searchsorted(tpr, 0.95, side="left")]),
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
    """The release's rectangle rule: sum of (x_prev - x) * y from x_prev = 1, plus x_last * y_last."""
    previous = np.r_[1.0, x[:-1]]
    return float(np.sum((previous - x) * y) + x[-1] * y[-1])


def paper_metrics(in_scores, out_scores, start, end, steps=SWEEP_STEPS):
    _labels_and_scores(in_scores, out_scores)
    ins, outs = np.sort(np.asarray(in_scores, float)), np.sort(np.asarray(out_scores, float))
    gap = (end - start) / steps
    up = np.arange(start, end, gap)
    tp, fp = _count_at_least(ins, up), _count_at_least(outs, up)
    tpr, fpr = tp / len(ins), fp / len(outs)

    near = (tpr >= 0.9495) & (tpr <= 0.9505)
    if not near.any():  # the release divided by zero here; take the exact definition instead
        near = np.arange(len(tpr)) == np.flatnonzero(tpr >= 0.95).max(initial=0)
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
    start, end = sweep_range(np.r_[in_scores, out_scores], num_classes, temperature)
    return paper_metrics(in_scores, out_scores, start, end)


def read_score_file(path):
    """(T, eps, scores) from a ``T, eps, score`` file; a clear error for anything else."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an empty file is reported below
            table = np.loadtxt(path, delimiter=",", ndmin=2)
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: unreadable score file ({e})") from None
    if table.shape[0] == 0 or table.shape[1] != 3:
        raise UserError(f"{path}: expected lines of 'T, eps, score', got shape {table.shape}")
    if not np.all(np.isfinite(table)):
        raise UserError(f"{path}: holds non-finite values")
    return table[0, 0], table[0, 1], table[:, 2]


def find_score_dir(folder):
    folder = Path(folder)
    return folder / SCORE_DIR if (folder / SCORE_DIR).is_dir() else folder


def run_metrics(folder, mode="exact", num_classes=None):
    """{'Baseline': metrics, 'ODIN': metrics} for a run folder (or a folder of score files)."""
    scores = find_score_dir(folder)
    result = {}
    for method, key in (("Base", "Baseline"), ("Our", "ODIN")):
        t, _, ins = read_score_file(scores / f"confidence_{method}_In.txt")
        _, _, outs = read_score_file(scores / f"confidence_{method}_Out.txt")
        temperature = 1 if method == "Base" else int(t) if float(t).is_integer() else t
        result[key] = compute(ins, outs, mode, num_classes, temperature)
    return result


def metric_block(result, architecture="unknown", in_dataset="unknown", out_dataset="unknown"):
    """The release's printed block (Baseline vs "Our Method"), in percent."""
    lines = [f"{'Neural network architecture:':31}{architecture:>22}",
             f"{'In-distribution dataset:':31}{in_dataset:>22}",
             f"{'Out-of-distribution dataset:':31}{out_dataset:>22}",
             "",
             f"{'Baseline':>34}{'Our Method':>19}"]
    for name in METRICS:
        base, ours = 100 * result["Baseline"][name], 100 * result["ODIN"][name]
        lines.append(f"{name + ':':20}{base:13.1f}%{ours:18.1f}%")
    return "\n".join(lines)


def read_run_info(folder):
    path = Path(folder) / "run.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="a run folder (holding softmax_scores/) or a folder "
                        "of confidence_{Base,Our}_{In,Out}.txt files")
    parser.add_argument("--metrics", choices=("exact", "paper"), default="exact",
                        help="exact threshold-free metrics (default) or the release's sweep")
    parser.add_argument("--num-classes", type=int,
                        help="classes of the in-distribution set (picks the release's sweep "
                        "range in paper mode; read from run.json when there)")
    args = parser.parse_args(argv)
    return report_errors(lambda: print_metrics(args.folder, args.metrics, args.num_classes))


def print_metrics(folder, mode, num_classes=None):
    info = read_run_info(folder)
    result = run_metrics(folder, mode, num_classes or info.get("num_classes"))
    print(metric_block(result, info.get("architecture", "unknown"),
                       info.get("in_dataset", "unknown"), info.get("out_label", "unknown")))


if __name__ == "__main__":
    sys.exit(main())
