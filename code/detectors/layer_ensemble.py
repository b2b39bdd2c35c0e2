"""The layer ensemble of Lee et al. (2018), used by FSSD's code for every method: a logistic
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
