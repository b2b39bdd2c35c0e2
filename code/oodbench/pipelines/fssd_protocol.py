"""The FSSD benchmark (layer 4): Fashion-MNIST against each OOD set here, every method of the
FSSD suite on the committed LeNets, with the FSSD protocol (their test_fss.py):

* each test set (Fashion-MNIST and the OOD set, 10,000 images each) is permuted with
  ``numpy.random.RandomState(42)`` (the same permutation for both) and cut into 500 images
  to fit the logistic regression ("fit"), 500 to choose the hyper-parameter ("select", by
  TNR at 95% TPR, strict > in the authors' grid order) and the 9,000 others ("test");
* every method's scores (a detector's per-layer scores, or its one score) go through the
  layer-ensemble regression fitted on "fit" (layer_ensemble.py), for all methods as in
  their code; the metrics are computed on "test".

Mahalanobis and FSSD are also run *without OOD data* ("... (TIN val)"): the regression is
fitted, and the magnitude chosen, on the same Fashion-MNIST parts against the 500 + 500
images of the same split of Tiny-ImageNet's validation images made grey 28x28 (less the one
a test set holds; greysets.outlier_images), whatever the tested set, as in ODIN's transfer
mode; Lee et al.'s other choice, FGSM adversarial samples, is not built here.

One repetition r (1-3) uses the committed LeNets of seed r (its network and its OE
fine-tune) and seeds r, r+3, ..., r+12 (its Deep Ensemble). The authors' Baseline and DE
scripts cut their split in file order instead; here every method sees the same images.
"""
import json
import time

import numpy as np
import torch

from oodbench.core import files
from oodbench.core.digests import array_digest
from oodbench.core.paths import runs_dir
from oodbench.datasets import greysets
from oodbench.detectors import layer_ensemble
from oodbench.detectors.deep_ensemble import ensemble_score, max_softmax
from oodbench.detectors.fssd import FSSD, MAGNITUDES as FSSD_MAGNITUDES
from oodbench.detectors.mahalanobis_full import MahalanobisFull, pooled
from oodbench.detectors.mc_dropout import mc_dropout_score
from oodbench.networks.lenet import (FMNIST_STD, committed_digest, committed_path, load_committed,
                                     normalise)
from oodbench.scoring import cache
from oodbench.scoring.metrics import fssd_metrics
from oodbench.scoring.odin_scoring import gradient_sign, perturbed_msp

# The code a result depends on: its source is part of every cached result's key.
SOURCES = (__name__, "oodbench.scoring.odin_scoring", "oodbench.scoring.metrics",
           "oodbench.networks.lenet", "oodbench.datasets.greysets",
           *(f"oodbench.detectors.{name}" for name in ("layerwise", "mahalanobis_full", "fssd",
                                                       "layer_ensemble", "deep_ensemble",
                                                       "mc_dropout", "gaussian")))
SPLIT_SEED = 42
FIT, SELECT = 500, 500
REPETITIONS = (1, 2, 3)
ENSEMBLE_SIZE = 5
BATCH = 512
VALIDATION_SET = greysets.OUTLIER_SET   # the stand-in OOD images of the no-OOD variants
WITHOUT_OOD = {"Mahalanobis (TIN val)": "Mahalanobis", "FSSD (TIN val)": "FSSD"}
METHODS = ("Baseline", "ODIN", "Mahalanobis", "Mahalanobis (TIN val)", "DE", "MCD", "OE", "FSSD",
           "FSSD (TIN val)")
ODIN_TEMPERATURES = (1, 10, 100, 1000)
IN_SET = "FashionMNIST"


def split(count):
    """{'fit', 'select', 'test'}: index arrays of FSSD's seeded 500 / 500 / rest split."""
    order = np.random.RandomState(SPLIT_SEED).permutation(count)
    return {"fit": order[:FIT], "select": order[FIT:FIT + SELECT], "test": order[FIT + SELECT:]}


def ensemble_seeds(rep):
    return [rep + len(REPETITIONS) * k for k in range(ENSEMBLE_SIZE)]


def prepared(model, device):
    """On the CPU, channels_last: the LeNet's convolutions run 1.7x faster (measured)."""
    model = model.to(device)
    on_cpu = torch.device(device).type == "cpu"
    return model.to(memory_format=torch.channels_last) if on_cpu else model


def batched(function, inputs):
    """``function`` (a batch -> [n] tensor) over ``inputs`` in batches, as one array."""
    return np.concatenate([function(inputs[i:i + BATCH]).double().cpu().numpy()
                           for i in range(0, len(inputs), BATCH)])


class Repetition:
    """The networks of one repetition and the scores each method gives an image set."""

    def __init__(self, rep, device="cpu"):
        self.rep, self.device = rep, device
        self.base = prepared(load_committed(rep), device)
        self.members = [prepared(load_committed(seed), device) for seed in ensemble_seeds(rep)]
        self.oe = prepared(load_committed(rep, oe=True), device)
        self.fssd = FSSD().fit(self.base, (1, 28, 28), SPLIT_SEED, device)
        self.mahalanobis = None
        self._memo = {}

    def fit_mahalanobis(self):
        """Class means and tied precisions of the training set's layer features."""
        images, labels = greysets.fashion_mnist(train=True)
        with torch.no_grad():
            parts = [[pooled(m).double().cpu().numpy() for m in self.base.layer_maps(
                self.inputs(images[i:i + 1000]))] for i in range(0, len(images), 1000)]
        layers = [np.concatenate(column) for column in zip(*parts)]
        self.mahalanobis = MahalanobisFull().fit(layers, labels, 10)

    def inputs(self, images):
        x = normalise(images).to(self.device)
        on_cpu = torch.device(self.device).type == "cpu"
        return x.contiguous(memory_format=torch.channels_last) if on_cpu else x

    def grid(self, method):
        """The hyper-parameter values the method is tuned over ([None]: none)."""
        if method == "ODIN":
            return [(t, m) for m in FSSD_MAGNITUDES for t in ODIN_TEMPERATURES]
        if method == "Mahalanobis":
            return list(MahalanobisFull.magnitudes)
        if method == "FSSD":
            return list(self.fssd.magnitudes)
        return [None]

    def compute(self, method, x, values):
        """{value: scores} of the normalised images ``x`` for each hyper-parameter value."""
        if method == "Baseline":
            return {None: batched(lambda b: max_softmax(self.base, b), x)}
        if method == "DE":
            return {None: batched(lambda b: ensemble_score(self.members, b), x)}
        if method == "MCD":
            return {None: mc_dropout_score_all(self.base, x)}
        if method == "OE":
            return {None: batched(lambda b: max_softmax(self.oe, b), x)}
        if method == "ODIN":
            return odin_grid(self.base, x, values)
        if method == "Mahalanobis":
            if self.mahalanobis is None:
                self.fit_mahalanobis()
            return self.mahalanobis.grid_scores(self.base, x, FMNIST_STD, values)
        return self.fssd.grid_scores(self.base, x, FMNIST_STD, values)

    def scores(self, method, name, part, images, values):
        """Scores of ``images`` (part ``part`` of set ``name``) for each of ``values``,
        computed once per repetition (the in-distribution side serves every OOD set)."""
        memo = (method, name, part, array_digest(images.numpy()))
        wanted = [v for v in values if (*memo, v) not in self._memo]
        if wanted:
            for value, scores in self.compute(method, self.inputs(images), wanted).items():
                self._memo[(*memo, value)] = scores
        return {v: self._memo[(*memo, v)] for v in values}


def mc_dropout_score_all(model, x):
    return np.concatenate([mc_dropout_score(model, x[i:i + BATCH], seed=i).double().cpu().numpy()
                           for i in range(0, len(x), BATCH)])


def odin_grid(model, x, values):
    """{(T, eps): ODIN scores}: one backward pass per temperature serves every eps."""
    out = {v: [] for v in values}
    for temperature in sorted({t for t, _ in values}):
        for i in range(0, len(x), BATCH):
            batch = x[i:i + BATCH]
            _, _, sign = gradient_sign(model, batch, temperature)
            for t, eps in values:
                if t == temperature:
                    out[t, eps].append(perturbed_msp(model, batch, sign, eps, FMNIST_STD,
                                                     temperature).double().cpu().numpy())
    return {v: np.concatenate(parts) for v, parts in out.items()}


def evaluate(repetition, method, in_images, out_name, out_images, validation_images=None):
    """FSSD's protocol for one method and one OOD set: {metrics..., 'chosen': value}.
    A no-OOD variant fits and chooses on ``validation_images`` instead of the OOD set's."""
    started = time.time()
    ins, outs = split(len(in_images)), split(len(out_images))
    method = WITHOUT_OOD.get(method, method)
    if validation_images is None:
        validation_name, validation_images = out_name, out_images
    else:
        validation_name = VALIDATION_SET
    vals = split(len(validation_images))

    def scores(part, values):
        ood_name, ood_images, ood_parts = ((out_name, out_images, outs) if part == "test" else
                                           (validation_name, validation_images, vals))
        return (repetition.scores(method, IN_SET, part, in_images[ins[part]], values),
                repetition.scores(method, ood_name, part, ood_images[ood_parts[part]], values))

    grid = repetition.grid(method)
    fit_in, fit_out = scores("fit", grid)
    select_in, select_out = scores("select", grid) if len(grid) > 1 else ({}, {})
    chosen, regression, best = layer_ensemble.tuned(grid, fit_in, fit_out, select_in,
                                                    select_out)
    if best == 0:   # the authors' code stops here (no value beats 0)
        print(f"note: {method} reaches no TNR above 0 at 95% TPR on the selection part "
              f"for {out_name}; keeping the first value of the grid, {chosen}")
    test_in, test_out = scores("test", [chosen])
    test_scores = (layer_ensemble.score(regression, test_in[chosen]),
                   layer_ensemble.score(regression, test_out[chosen]))
    return dict(fssd_metrics(*test_scores), chosen=chosen,
                seconds=round(time.time() - started, 1), scores=test_scores)


def code_digest():
    return cache.code_key(SOURCES)


def result_key(rep, method, out_name, in_images, out_images, device, validation_images=None):
    """Everything a result depends on: the networks' sha256, the images' pixels, the method,
    the code (code_digest), the device type."""
    paths = [committed_path(rep), committed_path(rep, oe=True)] + \
        [committed_path(seed) for seed in ensemble_seeds(rep)]
    validation = {} if validation_images is None else {
        "validation": array_digest(validation_images.numpy())}
    return cache.key_of(what="fssd-benchmark", code=code_digest(), rep=rep, method=method,
                        out_set=out_name, models=[committed_digest(p) for p in paths],
                        in_images=array_digest(in_images.numpy()),
                        out_images=array_digest(out_images.numpy()),
                        device=torch.device(device).type, **validation)


def cached_evaluate(get_repetition, rep, method, in_images, out_name, out_images, device,
                    use_cache=True):
    """The record of one (repetition, method, OOD set), its test scores under "scores" (in,
    out): from runs/fssd/ when there (<key>.json and its .npz), else computed
    (``get_repetition()`` gives the Repetition) and saved, the scores first."""
    validation = greysets.outlier_images(VALIDATION_SET) if method in WITHOUT_OOD else None
    key = result_key(rep, method, out_name, in_images, out_images, device, validation)
    path = runs_dir() / "fssd" / f"{key}.json"
    scores_path = path.with_suffix(".npz")
    if use_cache and path.is_file() and scores_path.is_file():
        try:
            record = json.loads(path.read_text())
            with np.load(scores_path) as saved:
                record["scores"] = (saved["ins"], saved["outs"])
            return record
        except (ValueError, OSError, KeyError):
            print(f"note: {path} or its scores are unreadable; recomputing them")
    result = evaluate(get_repetition(), method, in_images, out_name, out_images, validation)
    chosen, scores = result.pop("chosen"), result.pop("scores")
    record = dict(rep=rep, set=out_name, method=method, chosen=chosen, key=key, **result)
    scores_path.parent.mkdir(parents=True, exist_ok=True)
    with files.writing(scores_path, "wb") as f:
        np.savez(f, ins=scores[0], outs=scores[1])
    files.write_text(path, json.dumps(record, indent=1))
    return dict(record, scores=scores)
