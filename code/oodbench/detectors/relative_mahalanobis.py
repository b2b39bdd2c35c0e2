"""The Relative Mahalanobis detector (layer 3: detectors).

Relative Mahalanobis distance (Ren, Fort, Liu, Roy, Padhy & Lakshminarayanan, "A Simple
Fix to Mahalanobis Distance for Improving Near-OOD Detection", 2021), eq. 4 of the paper.

RMD_k(x) = MD_k(x) - MD_0(x): MD_k the squared Mahalanobis distance to class k under the
class means and tied covariance (as ``mahalanobis.py``), MD_0 the distance under one
"background" Gaussian fitted to all training features, its own mean and covariance.
Score: -min_k RMD_k(x). Both covariances are maximum-likelihood (divided by N), as in the
paper and OpenOOD's implementation.
"""
import numpy as np

from oodbench.detectors import gaussian
from oodbench.detectors.mahalanobis import Mahalanobis


class RelativeMahalanobis(Mahalanobis):
    name, label = "rmd", "RelativeMahalanobis"
    paper = "Ren et al., 2021"

    def fit(self, train, head):
        x = train.penultimate.astype(float)
        self.background_mean = x.mean(axis=0, keepdims=True)
        self.background_precision = gaussian.precision_of(x - self.background_mean)
        return super().fit(train, head)

    def compute(self, features):
        background = gaussian.squared_distances(features.penultimate, self.background_mean,
                                                self.background_precision)
        return -np.min(self.class_distances(features) - background, axis=1)
