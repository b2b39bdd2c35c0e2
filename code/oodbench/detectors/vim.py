"""The ViM detector, virtual-logit matching (layer 3: detectors).

ViM, virtual-logit matching (Wang, Li, Feng & Zhang, CVPR 2022), section 3.

Fit, on the training features h: the origin u = -pinv(W) b of the classifier
(logits = W h + b); the principal subspace P of the covariance of h - u, of dimension D;
alpha = mean over training images of the largest logit / mean of ||(h - u) projected on
the complement of P||. Score: the energy of the logits minus the virtual logit,
log sum_c exp(f_c) - alpha ||(h - u)^{P-perp}||, which ranks images as the paper's softmax
form -log(exp(v) / (exp(v) + sum_c exp(f_c))) does (both are monotone in v - energy).
D: 1000 for widths >= 2048, 512 for widths >= 768, else half the width (the authors'
code; 171 for DenseNet-BC-100's 342, 32 for ResNet-56's 64).
"""
import numpy as np

from oodbench.core.paths import UserError
from oodbench.detectors.base import Detector
from oodbench.detectors.energy import energy


def principal_dimension(width):
    if width >= 2048:
        return 1000
    if width >= 768:
        return 512
    return width // 2


class ViM(Detector):
    name, label = "vim", "ViM"
    paper = "Wang et al., CVPR 2022"
    defaults = {"dim": None}   # None: the paper's rule for the feature width
    valid = {"dim": (lambda d: d >= 1, ">= 1")}
    needs_training = True

    def check(self, width, train_size):
        dim = self.params["dim"] or principal_dimension(width)
        if not 0 < dim < width:
            raise UserError(f"vim: --dim must be in 1..{width - 1} (the feature width is "
                            f"{width}), got {dim}")

    def fit(self, train, head):
        x = train.penultimate.astype(float)
        width = x.shape[1]
        self.check(width, len(x))
        dim = self.params["dim"] or principal_dimension(width)
        self.origin = -np.linalg.pinv(head.weight.astype(float)) @ head.bias.astype(float)
        centred = x - self.origin
        eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred / len(centred))
        self.residual_basis = eigenvectors[:, np.argsort(-eigenvalues)[dim:]]
        self.alpha = (train.logits.max(axis=1).mean()
                      / self.residual_norm(train.penultimate).mean())
        return super().fit(train, head)

    def residual_norm(self, penultimate):
        return np.linalg.norm((penultimate.astype(float) - self.origin) @ self.residual_basis,
                              axis=1)

    def compute(self, features):
        return energy(features.logits) - self.alpha * self.residual_norm(features.penultimate)
