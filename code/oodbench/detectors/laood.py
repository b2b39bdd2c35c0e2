"""The LA-OOD detector, a One-Class SVM per layer (layer 3: detectors).

LA-OOD (Wang, Zhao, Zhao & Chen, PAKDD 2022): one RBF One-Class SVM per layer, its
hyper-parameters chosen without OOD data by self-adaptive data shifting (Siqi Wang,
Qiang Liu, En Zhu, Fatih Porikli & Jianping Yin, Pattern Recognition 2018), and the
layer-adaptive maximum, as in the authors' code (haoliangwang86/LA-OOD:
train_ood_detectors.py, self_adaptive_shifting.py, detect_oods.py).

Per layer, on the global-average-pooled features of the in-distribution training images:

1. standardise with the training features' mean and std (StandardScaler);
2. hold out 30% (``train_test_split(test_size=0.3, random_state=42)``);
3. edge points of the held-out part: with k = ceil(5 log10 n) nearest neighbours, v_ij the
   unit vector from neighbour j to point i and n_i = sum_j v_ij, point i is an edge point when
   the fraction of j with v_ij . n_i >= 0 exceeds 1 - 0.01 (all of them, for k < 100);
4. pseudo-outliers: each edge point moved along its unit normal n_i / |n_i| by the mean
   distance of the edge points to their neighbours (the paper's rule; the authors' code
   averages in each point's zero distance to itself and drops the first edge point's row,
   a distance k / (k + 1) as long);
5. each (nu, gamma) of the grid is fitted on the other 70% and judged by
   1/2 (pseudo-outliers accepted) + 1/2 (held-out images rejected); the lowest wins, the
   first of the grid on ties; nothing below 1: nu 0.5, gamma 1 / (d std), as theirs;
6. the chosen OCSVM is refitted on all the (standardised) training features.

Layer score s_l(x) = -decision_function(x) (positive = OOD); LA-OOD's is -max_l s_l(x) so
that higher = more in-distribution as for every detector here, and argmax_l s_l(x) is the
layer that decided. Like the authors', the maximum is over raw decision values.

A layer that cannot be fitted is left out of the maximum and reported, never silently kept:
constant features (no variance to standardise), or an SVM that stops at ``MAX_ITER``
iterations without converging.
"""
import math
import os
import warnings
from dataclasses import dataclass

import numpy as np
from joblib import Parallel, delayed
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics.pairwise import rbf_kernel
from sklearn.model_selection import train_test_split
from sklearn.neighbors import NearestNeighbors
from sklearn.svm import OneClassSVM
from tqdm import tqdm

from oodbench.core.digests import array_digest
from oodbench.core.paths import UserError
from oodbench.detectors.base import Detector
from oodbench.scoring import cache

NUS = (0.001,)
# The authors' train_ood_detectors.py: the narrow grid for every model, and a wide one meant for
# DenseNet behind `args.model == "densenet"`, a test their model names ("densenet100") never
# pass, so their runs use the narrow one. Narrow is the default here, as their code runs.
GAMMA_GRIDS = {"narrow": (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
               "wide": (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)}
GAMMAS = GAMMA_GRIDS["narrow"]
HELD_OUT = 0.3
SPLIT_SEED = 42
EDGE_THRESHOLD = 0.01
MAX_ITER = 10_000_000   # libsvm iterations; sklearn's default -1 never stops
SUBSAMPLE = 5000        # training images the SVMs are fitted on (the paper: all 50,000)
SUBSAMPLE_SEED = 0
JOBS = os.cpu_count()   # layers fitted in parallel


def neighbours_k(n):
    return math.ceil(5 * math.log10(n))


def edge_points(x, k=None):
    """(boolean mask of the edge points of ``x`` [n, d], their unit normals [n, d], the mean
    distance of the edge points to their k neighbours)."""
    k = k or neighbours_k(len(x))
    distances, indices = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
    distances, indices = distances[:, 1:], indices[:, 1:]        # column 0: the point itself
    towards = (x[:, None, :] - x[indices]) / (distances[..., None] + 1e-8)
    normals = towards.sum(axis=1)
    agreeing = (np.einsum("nkd,nd->nk", towards, normals) >= 0).mean(axis=1)
    edge = agreeing > 1 - EDGE_THRESHOLD
    lengths = np.linalg.norm(normals, axis=1, keepdims=True)
    units = normals / np.where(lengths > 0, lengths, 1)
    shift = float(distances[edge].mean()) if edge.any() else 0.0
    return edge, units, shift


def pseudo_outliers(x, k=None):
    """The edge points of ``x`` shifted outward along their normals (data shifting)."""
    edge, units, shift = edge_points(x, k)
    return x[edge] + shift * units[edge]


@dataclass
class LayerFit:
    """One layer's standardisation and One-Class SVM, as arrays (so it caches as arrays)."""
    mean: np.ndarray
    scale: np.ndarray
    nu: float
    gamma: float
    error: float              # the data-shifting error of the chosen (nu, gamma)
    edge_points: int
    support_vectors: np.ndarray
    dual_coef: np.ndarray     # [1, support vectors]
    intercept: float

    def ood_scores(self, features):
        """s_l = -decision_function of the standardised features: positive = OOD."""
        x = (features - self.mean) / self.scale
        kernel = rbf_kernel(x, self.support_vectors, gamma=self.gamma)
        return -(kernel @ self.dual_coef[0] + self.intercept)


class Unfit(Exception):
    """A layer that cannot be fitted (the reason is the message)."""


def fit_svm(x, nu, gamma):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        try:
            return OneClassSVM(kernel="rbf", nu=nu, gamma=gamma, max_iter=MAX_ITER).fit(x)
        except ConvergenceWarning:
            raise Unfit(f"the One-Class SVM (nu={nu}, gamma={gamma}) did not converge in "
                        f"{MAX_ITER} iterations") from None


def select(x, nus=NUS, gammas=GAMMAS):
    """((nu, gamma), error, number of edge points): the data-shifting choice on the
    standardised features ``x``."""
    train, held = train_test_split(x, test_size=HELD_OUT, random_state=SPLIT_SEED)
    outliers = pseudo_outliers(held)
    best, error = None, 1.0
    for nu in nus:
        for gamma in gammas:
            svm = fit_svm(train, nu, gamma)
            accepted = (svm.predict(outliers) == 1).mean() if len(outliers) else 0.0
            rejected = (svm.predict(held) == -1).mean()
            candidate = 0.5 * accepted + 0.5 * rejected
            if candidate < error:
                best, error = (nu, gamma), candidate
    if best is None:
        best = (0.5, 1 / (x.shape[1] * x.std()))
    return best, float(error), len(outliers)


def fit_layer(features, gammas=GAMMAS):
    """The LayerFit of one layer's training features [n, d], γ chosen from ``gammas``; Unfit
    if it cannot be."""
    features = np.asarray(features, dtype=np.float64)
    mean, std = features.mean(axis=0), features.std(axis=0)
    if not (std > 0).any():
        raise Unfit("its features are constant over the training images")
    scale = np.where(std > 0, std, 1.0)     # StandardScaler's rule for a constant channel
    x = (features - mean) / scale
    (nu, gamma), error, edges = select(x, gammas=gammas)
    svm = fit_svm(x, nu, gamma)
    return LayerFit(mean, scale, nu, gamma, error, edges, svm.support_vectors_,
                    svm.dual_coef_, float(svm.intercept_[0]))


def combine(layer_scores):
    """(LA-OOD scores: -max over layers, higher = in-distribution; the deciding layer's
    column) of per-layer OOD scores [n, layers]."""
    layer_scores = np.asarray(layer_scores)
    deciding = layer_scores.argmax(axis=1)
    return -layer_scores[np.arange(len(layer_scores)), deciding], deciding


def balanced_subsample(labels, size, seed=SUBSAMPLE_SEED):
    """Indices of ``size`` training images, the same number from each class (the first
    ``size % classes`` classes one more), drawn with ``RandomState(seed)``, sorted."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    rng = np.random.RandomState(seed)
    chosen = []
    for i, c in enumerate(classes):
        members = np.flatnonzero(labels == c)
        count = size // len(classes) + (i < size % len(classes))
        if count > len(members):
            raise ValueError(f"class {c} has {len(members)} images, fewer than {count}")
        chosen.append(rng.choice(members, count, replace=False))
    return np.sort(np.concatenate(chosen))


FIT_FIELDS = ("mean", "scale", "nu", "gamma", "error", "edge_points", "support_vectors",
              "dual_coef", "intercept")


def cached_fit(features, gammas=GAMMAS):
    """fit_layer(features, gammas), or the Unfit reason (a str), from the cache when there (the
    key is the features' content, the grids, the rules and this code)."""
    key = cache.key_of(what="laood-layer-fit", features=array_digest(features), nus=NUS,
                       gammas=gammas, held_out=HELD_OUT, seed=SPLIT_SEED,
                       threshold=EDGE_THRESHOLD, max_iter=MAX_ITER,
                       code=cache.code_key([__name__]))
    arrays = cache.load_arrays(key)
    if arrays is None:
        try:
            fit = fit_layer(features, gammas)
            arrays = {f: np.asarray(getattr(fit, f)) for f in FIT_FIELDS}
        except Unfit as e:
            arrays = {"unfit": np.asarray(str(e))}
        cache.save_arrays(key, **arrays)
    if "unfit" in arrays:
        return str(arrays["unfit"])
    return LayerFit(**{f: arrays[f] if arrays[f].ndim else arrays[f].item()
                       for f in FIT_FIELDS})


class LAOOD(Detector):
    """The detector of the interface: fitted on the training set's features of every
    convolution (models.conv_layers) and the logits; ``deciding`` names the layer that
    decided each image."""
    name, label = "laood", "LA-OOD"
    paper = "Wang et al., PAKDD 2022"
    defaults = {"subsample": SUBSAMPLE, "gamma_grid": "narrow"}
    valid = {"subsample": (lambda n: n >= 100 and float(n).is_integer(), "an integer >= 100"),
             "gamma_grid": (lambda g: g in GAMMA_GRIDS, " or ".join(GAMMA_GRIDS))}
    needs_training = True
    layers = "conv"

    def check(self, width, train_size):
        if train_size is not None and self.params["subsample"] > train_size:
            raise UserError(f"laood: --subsample must be at most {train_size} (the training "
                            f"images), got {self.params['subsample']}")

    def fit(self, train, head):
        self.check(None, len(train))
        chosen = balanced_subsample(train.labels, int(self.params["subsample"]))
        columns = {**train.layers, "logits": train.logits}
        jobs = Parallel(n_jobs=JOBS, return_as="generator")(
            delayed(cached_fit)(values[chosen], GAMMA_GRIDS[self.params["gamma_grid"]])
            for values in columns.values())
        self.fits, self.unfit = {}, {}
        for name, fit in zip(columns, tqdm(jobs, total=len(columns), unit="layer",
                                           desc=f"LA-OOD: One-Class SVMs on {len(chosen)} "
                                                f"training images", dynamic_ncols=True)):
            if isinstance(fit, str):
                self.unfit[name] = fit
                print(f"note: LA-OOD leaves layer {name} out of its maximum: {fit}")
            else:
                self.fits[name] = fit
        if not self.fits:
            raise UserError("laood: no layer could be fitted: " + "; ".join(
                f"{n}: {r}" for n, r in self.unfit.items()))
        return super().fit(train, head)

    def layer_scores(self, features):
        """[N, fitted layers] OOD scores s_l (positive = OOD), in self.fits' order."""
        columns = {**features.layers, "logits": features.logits}
        return np.stack([fit.ood_scores(columns[name]) for name, fit in self.fits.items()],
                        axis=1)

    def compute(self, features):
        return combine(self.layer_scores(features))[0]

    def deciding(self, features):
        """The name of the layer that decided each image."""
        names = np.array(list(self.fits))
        return names[combine(self.layer_scores(features))[1]]
