"""The ReAct detector (layer 3: detectors).

ReAct, rectified activations (Sun, Guo & Li, NeurIPS 2021), eq. 1 and section 3.

Fit: c = the p-th percentile of all penultimate activations of the training set (p = 90,
the paper's default). Score: the energy score (T = 1) of the logits recomputed from the
clipped features, f(min(h(x), c)).
"""
import numpy as np

from oodbench.detectors.base import Detector
from oodbench.detectors.energy import energy


class ReAct(Detector):
    name, label = "react", "ReAct"
    paper = "Sun et al., NeurIPS 2021"
    defaults = {"percentile": 90.0}
    valid = {"percentile": (lambda p: 0 < p <= 100, "in (0, 100]")}
    needs_training = True

    def fit(self, train, head):
        self.threshold = float(np.percentile(train.penultimate, self.params["percentile"]))
        self.head = head
        return super().fit(train, head)

    def compute(self, features):
        clipped = np.minimum(features.penultimate, self.threshold)
        return energy(self.head.logits(clipped))
