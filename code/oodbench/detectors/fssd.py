"""The FSSD detector, feature-space singularity distance (layer 3: detectors).

FSSD, the feature-space singularity distance (Huang, Wang, Gao, Liu, Wu, Wang & Wu,
SafeAI 2021), as in the authors' code (megvii-research/FSSD_OoD_Detection, lib/inference/FSS).

The singularity of layer l is the mean flattened output of NOISE_COUNT noise images: pixels
drawn uniformly from the integers 0..254 and mapped by (x - 127.5) / 255 *straight into the
network's normalised input* (the authors apply no dataset normalisation to them). The draw
repeats theirs: numpy's generator seeded 42, which their split had already used for one
permutation of 10,000, then ``randint(0, 255, shape, 'uint8')``.
Layer score: FSSD_l(x) = ||f_l(x) - singularity_l||_2 on the full, unpooled output; in-
distribution images lie far from the singularity, and the logistic regression over layers
(layer_ensemble.py) learns the sign.

Input processing, per layer: g = grad_x of -sum_i ||f_l(x_i) - s_l||, standardised over
the whole batch ((g - mean) / std, a continuous step, not a sign), divided by the
normalisation std, and x~ = x + eps * g, a step *towards* the singularity, exactly as the
authors wrote it. Their grid: 22 magnitudes from 0.2 down to 0.
"""
import numpy as np
import torch

from oodbench.detectors.layerwise import LayerwiseDetector, require_layers

NOISE_COUNT = 100
MAGNITUDES = (0.2, 0.18, 0.16, 0.14, 0.12, 0.1, 0.08, 0.06, 0.04, 0.02, 0.01, 0.008, 0.006,
              0.004, 0.002, 0.001, 0.0008, 0.0006, 0.0004, 0.0002, 0.0001, 0.0)


def noise_inputs(shape, seed, count=NOISE_COUNT, drawn_before=10000):
    """The authors' noise images, already in the network's input space."""
    rng = np.random.RandomState(seed)
    rng.permutation(drawn_before)   # what their split drew from the same generator first
    pixels = rng.randint(0, 255, (count,) + tuple(shape), "uint8")
    return (torch.from_numpy(pixels).float() - 127.5) / 255


class FSSD(LayerwiseDetector):
    name, label = "fssd", "FSSD"
    paper = "Huang et al., SafeAI 2021"
    magnitudes = MAGNITUDES

    def fit(self, model, shape, seed, device="cpu", layers=4):
        """Estimate each layer's singularity from seeded noise images of ``shape``."""
        require_layers(self, model)
        self.layers = layers
        with torch.no_grad():
            maps = model.layer_maps(noise_inputs(shape, seed).to(device), layers)
        self.singularity = [m.flatten(1).mean(dim=0) for m in maps]
        return self

    def layer_score(self, layer, output):
        return (output.flatten(1) - self.singularity[layer]).norm(dim=1)

    def loss(self, layer, output):
        # the authors' loss is the batch mean: a sum scales every gradient by the batch size,
        # which the standardisation undoes, and lets the gradients be computed in chunks
        return -self.layer_score(layer, output).sum()

    def direction(self, gradient, std):
        return (gradient - gradient.mean()) / gradient.std() / std
