"""Class-conditional Gaussian statistics of the Mahalanobis detectors (layer 3: detectors).

Gaussian statistics of features shared by the Mahalanobis detectors: class means, one
tied covariance, and squared Mahalanobis distances to every class mean (float64)."""
import numpy as np
from scipy.linalg import pinvh


def class_means(features, labels, classes):
    """[classes, width] mean feature of each class."""
    return np.stack([features[labels == c].mean(axis=0) for c in range(classes)])


def precision_of(centred):
    """Inverse of the maximum-likelihood covariance (divided by N) of already centred
    rows: scipy's pseudo-inverse of a symmetric matrix, as in sklearn's EmpiricalCovariance,
    which the authors use (the same cut-off for near-zero eigenvalues)."""
    covariance = centred.T @ centred / len(centred)
    return pinvh(covariance)


def tied_precision(features, labels, means):
    """The precision of the covariance shared by all classes (Lee et al. 2018, eq. 1)."""
    return precision_of(features - means[labels])


def squared_distances(features, means, precision):
    """[N, len(means)] (x - mu)^T P (x - mu) for every row x and every mean mu."""
    x = features.astype(float)
    return np.stack([(((x - mu) @ precision) * (x - mu)).sum(axis=1) for mu in means], axis=1)
