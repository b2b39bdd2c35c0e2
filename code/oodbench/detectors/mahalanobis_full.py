"""Mahalanobis in full: every layer, input processing (layer 3: detectors).

Mahalanobis in full (Lee, Lee, Lee & Shin, NeurIPS 2018): a class-conditional Gaussian
with one tied covariance per layer, input processing, and the layers combined by logistic
regression (layer_ensemble.py), as in the authors' code (deep_Mahalanobis_detector,
lib_generation.py) and FSSD's copy of it.

Per layer l, f_l(x) is the layer's output averaged over space (a vector layer as it is).
Fit: class means mu_c and the precision P of the maximum-likelihood covariance of the
class-centred training features (gaussian.py). Layer score:
M_l(x) = max_c -1/2 (f_l(x) - mu_c)^T P (f_l(x) - mu_c).
Input processing: c^ = the closest class mean; x~ = x - eps * sign(grad_x 1/2 d_c^(x)) / std
(sign(0) = +1, std the normalisation std, no clamp), then the score M_l(x~). The grid is
FSSD's for the LeNet benchmark (14 values, no 0; Lee et al.'s own was 0, 0.01, 0.005,
0.002, 0.0014, 0.001, 0.0005).
"""
import torch

from oodbench.detectors import gaussian
from oodbench.detectors.layerwise import LayerwiseDetector

FSSD_MAGNITUDES = (0.02, 0.015, 0.01, 0.009, 0.008, 0.007, 0.006, 0.005, 0.004, 0.003, 0.002,
                   0.0014, 0.001, 0.0005)
LEE_MAGNITUDES = (0.0, 0.01, 0.005, 0.002, 0.0014, 0.001, 0.0005)


def pooled(output):
    """A layer's output as [N, channels]: averaged over space when it has any."""
    return output.mean(dim=(2, 3)) if output.dim() == 4 else output


class MahalanobisFull(LayerwiseDetector):
    name, label = "mahalanobis_full", "Mahalanobis"
    paper = "Lee et al., NeurIPS 2018 (input processing + layer ensemble)"
    magnitudes = FSSD_MAGNITUDES

    def fit(self, layer_features, labels, classes):
        """``layer_features``: per layer, [N, channels] pooled training features."""
        self.layers = len(layer_features)
        self.means, self.precisions = [], []
        for x in layer_features:
            x = x.astype(float)
            means = gaussian.class_means(x, labels, classes)
            self.means.append(torch.from_numpy(means))
            self.precisions.append(torch.from_numpy(gaussian.tied_precision(x, labels, means)))
        return self

    def half_distances(self, layer, output):
        """[N, classes] 1/2 (f - mu_c)^T P (f - mu_c), differentiable, float64."""
        f = pooled(output).double()
        centred = f[:, None, :] - self.means[layer].to(f.device)[None]
        precision = self.precisions[layer].to(f.device)
        return 0.5 * torch.einsum("nci,ij,ncj->nc", centred, precision, centred)

    def layer_score(self, layer, output):
        return -self.half_distances(layer, output).min(dim=1).values

    def loss(self, layer, output):
        return self.half_distances(layer, output).min(dim=1).values.sum()

    def direction(self, gradient, std):
        return -torch.where(gradient >= 0, 1.0, -1.0) / std
