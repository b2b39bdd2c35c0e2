"""The One-Class SVM term of LA-OOD's co-training (layer 3: losses).

A fitted RBF One-Class SVM (detectors/laood.py's LayerFit: support vectors s_j, dual
coefficients alpha_j, gamma) scores a standardised feature z by

    f(z) = sum_j alpha_j exp(-gamma ||z - s_j||^2),

scikit-learn's ``score_samples`` (``decision_function + offset_``): the OCSVM's decision
value without its intercept, higher = more in-distribution. Co-training (the authors'
co_train.py) raises it for the training images; here it is differentiable in z, in float64
as the SVM was fitted, for all support vectors at once: ||z - s||^2 expanded as
||z||^2 + ||s||^2 - 2 z.s (scikit-learn's rbf_kernel does the same), the support vectors
taken ``chunk`` at a time so that memory stays [batch, chunk] whatever their number.
"""
import torch

CHUNK = 4096


class OCSVMTerm:
    """f(z) of one layer's fitted One-Class SVM, as torch tensors on ``device``."""

    def __init__(self, fit, device="cpu", chunk=CHUNK):
        self.support = torch.as_tensor(fit.support_vectors, dtype=torch.float64, device=device)
        self.alpha = torch.as_tensor(fit.dual_coef, dtype=torch.float64,
                                     device=device).reshape(-1)
        self.gamma = float(fit.gamma)
        self.support_sq = (self.support ** 2).sum(1)
        self.chunk = chunk

    def __call__(self, z):
        """f of each row of ``z`` [batch, d] (float64): [batch]."""
        z = z.to(torch.float64)
        z_sq = (z ** 2).sum(1, keepdim=True)
        total = z.new_zeros(len(z))
        for start in range(0, len(self.support), self.chunk):
            part = slice(start, start + self.chunk)
            squared = (z_sq + self.support_sq[part] - 2 * z @ self.support[part].T).clamp_min(0)
            total = total + torch.exp(-self.gamma * squared) @ self.alpha[part]
        return total


def standardised(features, mean, scale):
    """Features standardised per channel, in float64 (StandardScaler's transform)."""
    return (features.to(torch.float64) - mean) / scale
