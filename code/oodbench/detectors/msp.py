"""The MSP detector, the baseline (layer 3: detectors).

MSP, the baseline (Hendrycks & Gimpel, ICLR 2017): the maximum softmax probability.

score(x) = max_c softmax(f(x))_c. Computed with the same torch call as the baseline
column of an ODIN run (calData.odin_batch), so on the same logits it is the same number.
"""
import torch
import torch.nn.functional as F

from oodbench.detectors.base import Detector


class MSP(Detector):
    name, label = "msp", "MSP"
    reads_penultimate = False
    paper = "Hendrycks & Gimpel, ICLR 2017"

    def compute(self, features):
        return F.softmax(torch.from_numpy(features.logits), dim=1).max(dim=1).values.numpy()
