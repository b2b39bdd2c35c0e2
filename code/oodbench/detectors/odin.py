"""The ODIN detector behind the detector interface (layer 3: detectors).

ODIN (Liang, Li & Srikant, ICLR 2018): max softmax at temperature T of the input
perturbed by eps against the gradient of the loss (scoring/odin_scoring.py holds the arithmetic,
checked against the release score for score). It needs input gradients, so it scores
images with the model rather than cached features; an ODIN run also writes the baseline
(MSP) column, as the release does.
"""
import math

from oodbench.detectors.base import Detector
from oodbench.scoring.odin_scoring import odin_batch


class ODIN(Detector):
    name, label = "odin", "ODIN"
    reads_penultimate = False
    paper = "Liang et al., ICLR 2018"
    defaults = {"temperature": 1000, "magnitude": 0.0014}   # the release's defaults
    valid = {"temperature": (lambda t: math.isfinite(t) and t > 0, "a finite number > 0"),
             "magnitude": (lambda e: math.isfinite(e) and e >= 0, "a finite number >= 0")}
    needs_gradient = True

    def score_inputs(self, model, inputs, std):
        """ODIN scores of a batch of normalised inputs (std: the normalisation std)."""
        return odin_batch(model, inputs, self.params["temperature"], self.params["magnitude"],
                          std)[1]
