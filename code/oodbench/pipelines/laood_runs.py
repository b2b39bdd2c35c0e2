"""LA-OOD on one model against every OOD set here (layer 4): the per-layer OOD scores of the
test set and of each OOD set, for the report (reports/laood_report.py) and its figures.

The features of every convolution and the logits come from the shared feature pass
(feature_runs.FeatureScorer with LA-OOD's layers, cached per set); the detector is fitted
once on the training features (its per-layer fits cached, detectors/laood.py). Images: each
set from index --skip (1,000) on both sides, the same length, as every other table here
(the authors' evaluation takes the first images of the in-distribution test set instead:
LA-OOD holds nothing out, but the tables here share their images).
"""
import time
from dataclasses import dataclass

import numpy as np

from oodbench.datasets.image_sets import test_set
from oodbench.detectors.laood import LAOOD, combine
from oodbench.pipelines import runs
from oodbench.pipelines.feature_runs import FeatureScorer


@dataclass
class LayerScores:
    """Per-layer OOD scores s_l (positive = OOD) of one OOD set's run: [images, layers]."""
    name: str
    indices: range
    ins: np.ndarray
    outs: np.ndarray

    def laood(self):
        """(LA-OOD scores of the in- and out-of-distribution images, higher = in, and the
        deciding layer's column of each)."""
        (ins, in_layer), (outs, out_layer) = combine(self.ins), combine(self.outs)
        return ins, outs, in_layer, out_layer


def evaluate(nn, options, names, subsample, seed=0, skip=runs.HELD_OUT, max_images=None,
             gamma_grid="narrow"):
    """(the fitted LAOOD, {set: LayerScores}, {set: why it cannot run}, seconds per part)."""
    scorer = FeatureScorer(nn, options)
    spec = scorer.spec
    detector = LAOOD(subsample=subsample, gamma_grid=gamma_grid)
    detector.check(None, len(scorer.training_set("laood")))      # before any work
    timings = {}
    started = time.time()
    train = scorer.train_features("laood", layers="conv")
    timings["training features"] = time.time() - started
    started = time.time()
    detector.fit(train, None)
    timings["fits"] = time.time() - started
    in_set = test_set(spec.in_dataset, spec.image_size)
    results = {}
    started = time.time()
    found, why_not = runs.ood_ranges(in_set, names, seed, skip, max_images, spec.image_size)
    for name, (ood, indices, label) in found.items():
        ins = scorer.features(in_set, indices, spec.in_dataset, layers="conv")
        outs = scorer.features(ood, indices, label, layers="conv")
        results[name] = LayerScores(name, indices, detector.layer_scores(ins),
                                    detector.layer_scores(outs))
    timings["features and scores of the test and OOD sets"] = time.time() - started
    return detector, results, why_not, timings
