"""The MaxLogit detector (layer 3: detectors).

MaxLogit (Hendrycks, Basart, Mazeika et al., "Scaling Out-of-Distribution Detection for
Real-World Settings", ICML 2022): score(x) = max_c f_c(x), the largest unnormalised logit.
"""
from oodbench.detectors.base import Detector


class MaxLogit(Detector):
    name, label = "maxlogit", "MaxLogit"
    reads_penultimate = False
    paper = "Hendrycks et al., ICML 2022"

    def compute(self, features):
        return features.logits.astype(float).max(axis=1)
