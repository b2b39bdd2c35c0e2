"""Mahalanobis in full and FSSD on a CIFAR network, with Lee et al.'s validation (layer 4):
the rows that ``compare.py --layerwise`` adds to a model's comparison table.

Both detectors score each of the network's declared layers (models.FeatureLayer, through
features.LayerMaps) with input processing (detectors/layerwise.py), for each magnitude of
their grid: Lee et al.'s 7 for Mahalanobis, the authors' 22 for FSSD. The layer scores become
one score through the logistic regression of layer_ensemble.py, fitted and tuned as in
Lee et al.'s code (regression_ood.py, block_split): the first 1,000 images of the
in-distribution test set and of a validation OOD set are held out; the first 500 of each
fit the regression for each magnitude, the next 500 choose the magnitude (TNR at 95% TPR,
the first best in grid order), and the chosen magnitude's regression scores the run's
images (from index --skip on both sides, as every other row of the table).

Two validation OOD sets, each its own row:
  OOD val  the held-out images of the tested OOD set itself, as both papers did;
  TIN val  the held-out images of Tiny-ImageNet validation resized (TIN_val, a set never
           tested), as ODIN's transfer mode: no data of the tested kind.

Cost: the directions of a batch (one forward pass, one backward pass per layer) serve every
magnitude, and each magnitude adds one forward pass per layer (stopping at the layer). The
grid is scored on the held-out images only, the run's images only at the chosen magnitudes;
the in-distribution side once, over the longest range any set needs (so FSSD's batch-
standardised step sees the same batches for every set). Per-layer scores are cached per
(image set, batch of BATCH images, magnitude) in runs/.cache, keyed by the weights, the
images, the fit, the batch, the device type and the code (cache.code_key): a stopped run
resumes where it stopped.
"""
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from oodbench.core import scorefiles, shards
from oodbench.core.paths import UserError, runs_dir
from oodbench.datasets.image_sets import (content_digest, get_ood_set, ood_dataset, set_tag,
                                          test_set)
from oodbench.detectors import layer_ensemble
from oodbench.detectors.fssd import FSSD, MAGNITUDES as FSSD_MAGNITUDES, NOISE_COUNT
from oodbench.detectors.layerwise import BATCH
from oodbench.detectors.mahalanobis_full import LEE_MAGNITUDES, MahalanobisFull
from oodbench.networks.registry import get_spec
from oodbench.pipelines import feature_runs, runs
from oodbench.scoring import cache
from oodbench.scoring.features import LayerMaps
from oodbench.scoring.odin_scoring import normaliser

VALIDATION = runs.HELD_OUT       # held-out images at the start of each set
FIT = VALIDATION // 2            # the first half fits the regression, the rest selects
VALIDATION_SET = "TIN_val"       # the "TIN val" rows' stand-in OOD set, never tested
NOISE_SEED = 42                  # FSSD's noise images (the authors' seed)
CHUNK = 16                       # images per pass (layerwise.grid_scores): fastest on a CPU
SOURCES = (__name__, "oodbench.scoring.features", "oodbench.scoring.odin_scoring",
           "oodbench.datasets.image_sets", "oodbench.scoring.metrics",
           *(f"oodbench.detectors.{name}" for name in ("layerwise", "mahalanobis_full", "fssd",
                                                       "gaussian", "layer_ensemble")))
DETECTORS = {"mahalanobis_full": (MahalanobisFull, LEE_MAGNITUDES),
             "fssd": (FSSD, FSSD_MAGNITUDES)}


@dataclass(frozen=True)
class Row:
    """One row of the table: a detector and where its validation OOD images come from."""
    method: str          # a key of DETECTORS
    validation: str      # 'ood' (the tested set's held-out images) or 'tin' (TIN_val's)

    @property
    def label(self):
        name = "Mahalanobis (full" if self.method == "mahalanobis_full" else "FSSD ("
        sep = ", " if self.method == "mahalanobis_full" else ""
        return f"{name}{sep}{'OOD' if self.validation == 'ood' else 'TIN'} val)"

    @property
    def tag(self):
        """The score files' tag (no spaces): MahalanobisFull_OODval, FSSD_TINval, ..."""
        detector = "MahalanobisFull" if self.method == "mahalanobis_full" else "FSSD"
        return f"{detector}_{self.validation.upper()}val"

    @property
    def grid(self):
        return DETECTORS[self.method][1]


ROWS = tuple(Row(m, v) for m in DETECTORS for v in ("ood", "tin"))


@dataclass(frozen=True)
class ImageRange:
    """Some images of a named set: what the scores of a cache entry belong to."""
    name: str            # the set's name, with its seed for noise
    dataset: object
    indices: range


class LayerwiseScorer:
    """One model's layer-wise detectors, fitted once, and their cached per-layer scores."""

    def __init__(self, nn, options, refresh=False):
        self.features = feature_runs.FeatureScorer(nn, options)   # model + training features
        self.spec, self.device, self.refresh = self.features.spec, options.device, refresh
        self.normalise, self.std = normaliser(self.spec.mean, self.spec.std, self.device)
        self._net, self._fitted, self._digests = None, {}, {}

    def net(self):
        if self._net is None:
            self.check_layers()
            if self.spec.exported:
                runs.check_input_gradient(self.features.model(), self.spec, self.device)
            self._net = LayerMaps(self.features.model(), self.spec.feature_layers)
        return self._net

    def check_layers(self):
        if not self.spec.feature_layers:
            raise UserError(f"{self.spec.label} has no per-block layers for Mahalanobis in "
                            "full and FSSD: name them with --layers M1,M2,...")

    def detector(self, method):
        """(the fitted detector, what its fit depends on), once per method."""
        self.check_layers()
        if method not in self._fitted:
            layers = len(self.spec.feature_layers)
            if method == "mahalanobis_full":
                self.features.check_labels("Mahalanobis in full")
                train = self.features.train_features("Mahalanobis in full")
                fitted = MahalanobisFull().fit([train.layers[f.name] for f in
                                                self.spec.feature_layers],
                                               train.labels, self.spec.num_classes)
                fit = {"train": self.digest(f"{self.spec.in_dataset} train",
                                            self.features.training_set(method))}
            else:
                size = self.spec.image_size
                fitted = FSSD().fit(self.net(), (3, size, size), NOISE_SEED, self.device, layers)
                fit = {"noise_seed": NOISE_SEED, "noise_count": NOISE_COUNT}
            self._fitted[method] = fitted, fit
        return self._fitted[method]

    def digest(self, name, dataset):
        """The content digest of the set called ``name`` (with its seed), once per set (not
        per object: the id of a freed dataset can be another's)."""
        if name not in self._digests:
            self._digests[name] = content_digest(dataset)
        return self._digests[name]

    def key(self, method, images, magnitude, fit):
        return cache.key_of(
            what="layerwise-scores", method=method, weights=self.features.weights,
            images=self.digest(images.name, images.dataset), first=images.indices.start,
            stop=images.indices.stop, magnitude=magnitude, mean=list(self.spec.mean),
            std=list(self.spec.std), layers=[(f.name, f.module, f.relu) for f in
                                             self.spec.feature_layers],
            fit=fit, batch=BATCH, device=torch.device(self.device).type,
            code=cache.code_key(SOURCES))

    def layer_scores(self, method, images, magnitudes):
        """{magnitude: [images, layers] float64 per-layer scores} of ``images`` (an
        ImageRange). Cached per batch of BATCH images (the batches start at the range's
        first image) and magnitude, so a stopped run loses one batch at most; the missing
        magnitudes of a batch are computed in one pass."""
        detector, fit = self.detector(method)
        blocks = [ImageRange(images.name, images.dataset, range(start, min(
            start + BATCH, images.indices.stop)))
            for start in range(images.indices.start, images.indices.stop, BATCH)]
        keys = [{m: self.key(method, block, m, fit) for m in magnitudes} for block in blocks]
        found = [{m: None if self.refresh else cache.load_array(k) for m, k in block_keys.items()}
                 for block_keys in keys]
        todo = [(i, [m for m, values in found[i].items() if values is None])
                for i in range(len(blocks))]
        todo = [(i, missing) for i, missing in todo if missing]

        def compute(mine):
            return [self.compute(detector, blocks[i], missing) for i, missing in mine]
        with tqdm(total=sum(len(blocks[i].indices) for i, _ in todo), unit="img",
                  dynamic_ncols=True, desc=f"{detector.label}: {images.name} ["
                  f"{images.indices.start}, {images.indices.stop}), {len(magnitudes)} "
                  f"magnitude(s)") as bar:
            # a round: one batch per rank (under torchrun), cached before the next round
            for first in range(0, len(todo), shards.size()):
                round_ = todo[first:first + shards.size()]
                computed = shards.map_shards(compute, round_, lambda parts: sum(parts, []),
                                             f"{detector.label} {images.name} batches")
                for (i, _), scores in zip(round_, computed):
                    for m, values in scores.items():
                        cache.save_array(keys[i][m], values)
                        found[i][m] = values
                    bar.update(len(blocks[i].indices))
        return {m: np.concatenate([block_found[m] for block_found in found])
                for m in magnitudes}

    def compute(self, detector, images, magnitudes):
        """{magnitude: per-layer scores} of ``images`` (one batch)."""
        batch = torch.stack([images.dataset[i][0] for i in images.indices])
        x = self.normalise(batch)
        if torch.device(self.device).type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        return detector.grid_scores(self.net(), x, self.std, magnitudes, CHUNK)


@dataclass(frozen=True)
class Tested:
    """A tested OOD set: its name, the images the run scores, and its held-out images."""
    name: str
    test: ImageRange
    held_out: ImageRange


def tested_sets(in_set, names, seed, skip, max_images, size=32):
    """({name: Tested}, {name: why it cannot run}) for the OOD sets ``names``."""
    if skip < VALIDATION:
        raise UserError(f"Mahalanobis in full and FSSD hold out the first {VALIDATION} images "
                        f"of each set for their validation; --skip must be at least "
                        f"{VALIDATION}, got {skip}")
    found, why_not = runs.ood_ranges(in_set, names, seed, skip, max_images, size)
    tested = {}
    for name, (ood, indices, label) in found.items():
        tested[name] = Tested(name, ImageRange(label, ood, indices),
                              ImageRange(label, ood, range(VALIDATION)))
    return tested, why_not


def evaluate(scorer, rows, tested, in_set):
    """{(set, row): (P(in) of the in-distribution images, of the OOD images, chosen
    magnitude, its TNR on the selection half)} for every row and tested set."""
    in_name = scorer.spec.in_dataset
    in_held_out = ImageRange(in_name, in_set, range(VALIDATION))
    longest = max(t.test.indices.stop for t in tested.values())
    in_test = ImageRange(in_name, in_set, range(min(t.test.indices.start
                                                    for t in tested.values()), longest))
    out = {}
    for method in dict.fromkeys(r.method for r in rows):
        grid = DETECTORS[method][1]
        held_in = scorer.layer_scores(method, in_held_out, grid)
        tin = None
        if any(r.method == method and r.validation == "tin" for r in rows):
            tin_set = ood_dataset(VALIDATION_SET, size=scorer.spec.image_size)
            tin = scorer.layer_scores(method, ImageRange(VALIDATION_SET, tin_set,
                                                         range(VALIDATION)), grid)
        tuned = {}
        for name, t in tested.items():
            own = None
            for row in (r for r in rows if r.method == method):
                if row.validation == "ood" and own is None:
                    own = scorer.layer_scores(method, t.held_out, grid)
                held_out = own if row.validation == "ood" else tin
                tuned[name, row] = layer_ensemble.tuned(
                    grid, {m: held_in[m][:FIT] for m in grid}, {m: held_out[m][:FIT] for m in grid},
                    {m: held_in[m][FIT:] for m in grid}, {m: held_out[m][FIT:] for m in grid})
        chosen = sorted({magnitude for magnitude, _, _ in tuned.values()})
        ins = scorer.layer_scores(method, in_test, chosen)
        for name, t in tested.items():
            mine = {(n, r): v for (n, r), v in tuned.items() if n == name}
            outs = scorer.layer_scores(method, t.test, sorted({v[0] for v in mine.values()}))
            part = slice(t.test.indices.start - in_test.indices.start,
                         t.test.indices.stop - in_test.indices.start)
            for (_, row), (magnitude, regression, tnr) in mine.items():
                out[name, row] = (layer_ensemble.score(regression, ins[magnitude][part]),
                                  layer_ensemble.score(regression, outs[magnitude]),
                                  magnitude, tnr)
    return out


def write_runs(nn, results, tested, seed, skip, max_images, device, seconds):
    """One run folder per (set, row), read by calMetric.py as any other: {(set, row): folder}."""
    folders = {}
    spec = get_spec(nn)
    for (name, row), (ins, outs, magnitude, tnr) in results.items():
        identity = (f"{nn}_{set_tag(name, spec.image_size)}_{row.method}_{row.validation}val"
                    + runs.folder_suffix(name, seed, skip, max_images))
        folder = runs.writable_folder(runs_dir() / identity)
        scorefiles.write_run(folder, identity, dict(
            nn=nn, architecture=spec.label, in_dataset=spec.in_dataset,
            num_classes=spec.num_classes, out_dataset=name,
            out_label=get_ood_set(name).label, method=row.method, label=row.label,
            validation=VALIDATION_SET if row.validation == "tin" else f"{name} (held out)",
            magnitude=magnitude, grid=list(row.grid), select_tnr_at_95=tnr,
            layers=[f.name for f in spec.feature_layers], seed=seed,
            first_index=tested[name].test.indices.start,
            images_per_side=len(tested[name].test.indices), device=str(device),
            seconds=round(seconds, 1)), {(row.tag, "In"): ins, (row.tag, "Out"): outs},
            1, magnitude)
        folders[name, row] = folder
    return folders


def run(nn, options, names, seed, skip, max_images, rows=ROWS, refresh=False):
    """Score every (set, row) and write its run folder: ({(set, row): folder}, {set: why
    it cannot run})."""
    started = time.time()
    scorer = LayerwiseScorer(nn, options, refresh)
    in_set = test_set(scorer.spec.in_dataset, scorer.spec.image_size)
    tested, why_not = tested_sets(in_set, names, seed, skip, max_images, scorer.spec.image_size)
    if not tested:
        return {}, why_not
    results = evaluate(scorer, rows, tested, in_set)
    return write_runs(nn, results, tested, seed, skip, max_images, options.device,
                      time.time() - started), why_not
