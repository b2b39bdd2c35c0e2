"""The GEN detector (layer 3: detectors).

GEN, generalized entropy (Liu, Lochman & Zach, CVPR 2023), eq. 8 of the paper.

G_gamma(p) = sum over the M largest softmax probabilities p_j of p_j^gamma (1 - p_j)^gamma;
score(x) = -G_gamma(softmax(f(x))), so a confident (low-entropy) prediction scores high.
gamma = 0.1 as in the paper; M (--top-m) = 10 for CIFAR-10 (every class; the authors' code
defaults to M = 100, which on 10 classes is the same sum).
"""
import math

import numpy as np
from scipy.special import softmax

from oodbench.core.paths import UserError
from oodbench.detectors.base import Detector


class GEN(Detector):
    name, label = "gen", "GEN"
    reads_penultimate = False
    paper = "Liu et al., CVPR 2023"
    defaults = {"gamma": 0.1, "top_m": 10}
    valid = {"gamma": (lambda g: math.isfinite(g) and g > 0, "a finite number > 0"),
             "top_m": (lambda m: m >= 1, ">= 1")}

    def check_classes(self, num_classes):
        if self.params["top_m"] > num_classes:
            raise UserError(f"gen: --top-m must be at most the number of classes, "
                            f"{num_classes}, got {self.params['top_m']}")

    def compute(self, features):
        gamma, top = self.params["gamma"], int(self.params["top_m"])
        probs = np.sort(softmax(features.logits.astype(float), axis=1), axis=1)[:, -top:]
        return -(probs ** gamma * (1 - probs) ** gamma).sum(axis=1)
