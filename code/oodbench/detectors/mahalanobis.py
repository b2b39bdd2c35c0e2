"""The Mahalanobis detector on penultimate features (layer 3: detectors).

Mahalanobis distance on the penultimate features (Lee, Lee, Lee & Shin, NeurIPS 2018),
eq. 2 of the paper, without input processing or the layer ensemble (those are the full
method's: mahalanobis_full.py).

Fit: the mean of each class's training features and one covariance shared by the classes
(eq. 1: the maximum-likelihood estimate from class-centred features). Score:
M(x) = max_c -(x - mu_c)^T Sigma^-1 (x - mu_c), i.e. minus the smallest squared distance.
The authors' code scores -1/2 of that distance; the factor changes no ranking.
"""
import numpy as np

from oodbench.detectors import gaussian
from oodbench.detectors.base import Detector


class Mahalanobis(Detector):
    name, label = "mahalanobis", "Mahalanobis"
    paper = "Lee et al., NeurIPS 2018"
    needs_training = True
    class_conditional = True

    def fit(self, train, head):
        x = train.penultimate.astype(float)
        self.means = gaussian.class_means(x, train.labels, len(head.bias))
        self.precision = gaussian.tied_precision(x, train.labels, self.means)
        return super().fit(train, head)

    def class_distances(self, features):
        """[N, classes] squared Mahalanobis distances to each class mean."""
        return gaussian.squared_distances(features.penultimate, self.means, self.precision)

    def compute(self, features):
        return -np.min(self.class_distances(features), axis=1)
