"""Lee et al.'s logistic-regression ensemble of layer scores (layer 3: detectors).

The layer ensemble of Lee et al. (2018), used by FSSD's code for every method: a logistic
regression from a detector's per-layer scores (or its one score) to "in-distribution",
fitted on a small validation set of in-distribution and OOD images (label 1 = in).

``LogisticRegressionCV(random_state=42)`` with scikit-learn's defaults, on unscaled scores,
as both authors' code (scikit-learn 0.23: 10 values of C, 5 stratified folds, lbfgs,
accuracy); the score of an image is P(in-distribution), so higher = more
in-distribution. The unscaled distances of large layers make lbfgs stop at max_iter
sometimes; the authors' runs did the same, so the ConvergenceWarning is silenced here.
"""
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegressionCV

from oodbench.scoring.metrics import fpr_at_tpr


def columns(scores):
    scores = np.asarray(scores, dtype=float)
    return scores[:, None] if scores.ndim == 1 else scores


def fit(in_scores, out_scores):
    """The regression from scores to P(in), fitted on in- and out-of-distribution rows."""
    x = np.concatenate([columns(in_scores), columns(out_scores)])
    y = np.r_[np.ones(len(in_scores)), np.zeros(len(out_scores))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", FutureWarning)   # scikit-learn 1.9's notes on defaults
        return LogisticRegressionCV(random_state=42, scoring="accuracy").fit(x, y)


def score(regression, scores):
    """P(in-distribution) of each row of ``scores``."""
    return regression.predict_proba(columns(scores))[:, 1]


def tnr_at_95(regression, in_scores, out_scores):
    """True-negative rate of P(in) at 95% true-positive rate (the authors' selection rule)."""
    return 1 - fpr_at_tpr(score(regression, in_scores), score(regression, out_scores), 0.95)


def tuned(grid, fit_in, fit_out, select_in, select_out):
    """(chosen value, its regression, its TNR at 95% TPR): the authors' choice of a
    hyper-parameter. For each value of ``grid`` in order, the regression fitted on the "fit"
    scores ({value: scores}) is judged on the "select" scores; the first value with the
    highest TNR wins (strict >, so a tie keeps the earlier value)."""
    best, chosen, chosen_regression = -1.0, grid[0], None
    for value in grid:
        regression = fit(fit_in[value], fit_out[value])
        if len(grid) == 1:
            return value, regression, None
        tnr = tnr_at_95(regression, select_in[value], select_out[value])
        if tnr > best:
            best, chosen, chosen_regression = tnr, value, regression
    return chosen, chosen_regression, best
