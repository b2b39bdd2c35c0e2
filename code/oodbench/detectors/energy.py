"""The Energy detector (layer 3: detectors).

Energy score (Liu, Wang, Owens & Li, NeurIPS 2020), eq. 7 of the paper.

score(x) = -E(x; f) = T * logsumexp_c(f_c(x) / T), at T = 1 as the paper uses it for
post-hoc detection (its Table 1). Higher = more in-distribution, as the paper's
negative energy.
"""
import math

from scipy.special import logsumexp

from oodbench.detectors.base import Detector


def energy(logits, temperature=1.0):
    """Negative free energy of each row of ``logits``."""
    return temperature * logsumexp(logits.astype(float) / temperature, axis=1)


class Energy(Detector):
    name, label = "energy", "Energy"
    reads_penultimate = False
    paper = "Liu et al., NeurIPS 2020"
    defaults = {"temperature": 1.0}
    valid = {"temperature": (lambda t: math.isfinite(t) and t > 0, "a finite number > 0")}

    def compute(self, features):
        return energy(features.logits, self.params["temperature"])
