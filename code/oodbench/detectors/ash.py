"""The ASH-S detector (layer 3: detectors).

ASH-S, activation shaping with scaling (Djurisic, Bozanic, Ashok & Liu, ICLR 2023),
section 3 of the paper.

Per image, on the penultimate activation a (its pooled vector: for the CIFAR DenseNet the
authors' code applies ASH after the global average pooling): s1 = sum(a); keep the
k = n - round(n p / 100) largest of its n values and set the rest to zero; s2 = the sum
kept; a' = kept * exp(s1 / s2). Score: the energy (T = 1) of the logits of a'.
p = 95, the authors' CIFAR-10 setting (ASH-S@95). An image whose kept values sum to 0
(an all-zero activation) is left unscaled rather than divided by zero.
"""
import numpy as np

from oodbench.core.paths import UserError
from oodbench.detectors.base import Detector
from oodbench.detectors.energy import energy


def ash_s(activations, percentile):
    a = activations.astype(float)
    n = a.shape[1]
    keep = n - int(np.round(n * percentile / 100.0))
    if not 1 <= keep <= n:
        raise UserError(f"ash: --percentile {percentile} keeps {keep} of {n} values")
    smallest = np.argpartition(a, n - keep, axis=1)[:, :n - keep]
    pruned = a.copy()
    np.put_along_axis(pruned, smallest, 0.0, axis=1)
    s1, s2 = a.sum(axis=1), pruned.sum(axis=1)
    scale = np.exp(np.divide(s1, s2, out=np.zeros_like(s1), where=s2 != 0))
    return pruned * scale[:, None]


class ASH(Detector):
    name, label = "ash", "ASH-S"
    paper = "Djurisic et al., ICLR 2023"
    defaults = {"percentile": 95.0}
    valid = {"percentile": (lambda p: 0 <= p < 100, "in [0, 100)")}

    def check(self, width, train_size):
        ash_s(np.ones((1, width)), self.params["percentile"])   # keeps at least one value

    def fit(self, train, head):
        self.check(head.weight.shape[1], None)
        self.head = head
        return super().fit(train, head)

    def compute(self, features):
        return energy(self.head.logits(ash_s(features.penultimate, self.params["percentile"])))
