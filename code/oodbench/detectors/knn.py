"""The deep nearest-neighbour (KNN) detector (layer 3: detectors).

Deep nearest neighbours (Sun, Ming, Zhu & Li, ICML 2022), section 3 of the paper.

Fit: the training set's penultimate features, each divided by its L2 norm. Score: minus
the distance from the normalised test feature to its k-th nearest normalised training
feature, k = 50 over all 50,000 CIFAR-10 training images (the paper's CIFAR-10 setting).
Exact search, by batched matrix products. The authors' code (faiss IndexFlatL2) scores
minus the *squared* distance; the square changes no ranking, and we follow the paper.
"""
import numpy as np
import torch

from oodbench.core.paths import UserError
from oodbench.detectors.base import Detector

CHUNK = 1024   # test rows per matrix product: [CHUNK, 50,000] floats at a time


def normalised(features):
    return features / (np.linalg.norm(features, axis=1, keepdims=True) + 1e-10)


def kth_nearest_distance(queries, bank, k):
    """Euclidean distance from each row of ``queries`` to its k-th nearest row of ``bank``."""
    bank_t = torch.from_numpy(np.ascontiguousarray(bank, dtype=np.float32))
    bank_norms = (bank_t * bank_t).sum(dim=1)
    out = []
    for start in range(0, len(queries), CHUNK):
        q = torch.from_numpy(np.ascontiguousarray(queries[start:start + CHUNK], np.float32))
        squared = (q * q).sum(dim=1, keepdim=True) + bank_norms[None, :] - 2 * q @ bank_t.T
        kth = squared.topk(k, dim=1, largest=False).values[:, -1]
        out.append(kth.clamp_min(0).sqrt().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


class KNN(Detector):
    name, label = "knn", "KNN"
    paper = "Sun et al., ICML 2022"
    defaults = {"k": 50}
    valid = {"k": (lambda k: k >= 1, ">= 1")}
    needs_training = True

    def check(self, width, train_size):
        if self.params["k"] > train_size:
            raise UserError(f"knn: --k must be at most {train_size} (the training images), "
                            f"got {self.params['k']}")

    def fit(self, train, head):
        self.check(None, len(train))
        self.bank = normalised(train.penultimate.astype(np.float32))
        return super().fit(train, head)

    def compute(self, features):
        queries = normalised(features.penultimate.astype(np.float32))
        return -kth_nearest_distance(queries, self.bank, int(self.params["k"]))
