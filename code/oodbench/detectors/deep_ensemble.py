"""The Deep Ensemble score of the FSSD suite (layer 3: detectors).

Deep Ensemble (Lakshminarayanan, Pritzel & Blundell, NeurIPS 2017) as FSSD's code scores
it (test_de.py): the mean over the ensemble's networks of each network's maximum softmax
probability. (Not the max of the averaged softmax: the authors average per-model MSPs.) The
networks are independently trained copies from different seeds, without the paper's
adversarial training, as in FSSD's benchmark.
"""
import torch
from torch.nn import functional as F


def max_softmax(model, inputs):
    with torch.no_grad():
        return F.softmax(model(inputs), dim=1).max(dim=1).values


def ensemble_score(models, inputs):
    """[N] mean of the networks' maximum softmax probabilities."""
    return torch.stack([max_softmax(model, inputs) for model in models]).mean(dim=0)
