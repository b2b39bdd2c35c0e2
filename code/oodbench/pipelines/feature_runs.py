"""Runs of the gradient-free detectors from one feature pass (layer 4: pipelines).

Runs of the gradient-free detectors: one model's feature pass, its fitted detectors, and
run folders written from them. ODIN runs are runs.py's; a plan (runs.plan) is the
same for both, so a detector run scores exactly the images an ODIN run scores.

A ``FeatureScorer`` serves every run of one model: it loads the model only when a feature
pass has to run, takes every image set's features from the cache where it can
(scoring/features.py), and fits each detector once on the training set's features.
"""
import time
from dataclasses import replace

import numpy as np

from oodbench.assets.catalog import Unavailable
from oodbench.core import runtime, scorefiles
from oodbench.core.paths import UserError
from oodbench.datasets.image_sets import content_digest, train_set
from oodbench.networks.registry import conv_layers, get_spec, load_model, weights_sha256
from oodbench.pipelines.runs import accuracy, model_record
from oodbench.scoring import features


def output_temperature(detector):
    """The T written in a detector's score lines (``T, eps, score``): its own, else 1."""
    return scorefiles.canonical_temperature(detector.params.get("temperature", 1))


def check_penultimate(spec, detector):
    """A UserError when ``detector`` reads the penultimate feature and the model's is not
    known (a model from files whose classifier the probe could not find)."""
    reads = detector.reads_penultimate and detector.layers != "conv"   # LA-OOD: convolutions
    if spec.classifier is None and reads:
        raise UserError(f"{detector.name} reads the penultimate feature, which was not found "
                        f"in {spec.label} (see the note when it was loaded): name the module "
                        "whose input it is with --penultimate MODULE")


class FeatureScorer:
    def __init__(self, nn, options):
        self.spec, self.options = get_spec(nn), options
        self.weights = weights_sha256(nn)
        self.device = options.device
        self._model = self._head = self._conv_spec = self._train = None
        self._digests, self._fitted, self._features = {}, {}, {}

    def model(self):
        if self._model is None:
            runtime.configure_allocator()
            model, _ = load_model(self.spec.name, self.device)
            self._model = runtime.prepare_model(model, self.device)
        return self._model

    def head(self):
        """The classifier's last layer, read from the weights file once."""
        if self._head is None:
            self._head = features.head_of(load_model(self.spec.name, "cpu")[0],
                                          self.spec.classifier)
        return self._head

    def layer_spec(self, layers):
        """The model's spec reading ``layers``: None, the declared feature layers; "conv",
        every convolution (models.conv_layers, LA-OOD's)."""
        if layers is None:
            return self.spec
        if self._conv_spec is None:     # building the network only to list its layers: once
            self._conv_spec = replace(self.spec, feature_layers=conv_layers(self.spec.build()))
        return self._conv_spec

    def features(self, dataset, indices, name, layers=None):
        """Features of ``dataset`` (called ``name``: a set name, with its seed) at
        ``indices`` (a range), with the layers ``layers`` (layer_spec): kept in memory for
        the next run, else from the cache when it has them (unless --no-cache), else
        computed."""
        memo = (name, indices.start, indices.stop, layers)
        if memo not in self._features:
            if name not in self._digests:
                self._digests[name] = content_digest(dataset)
            spec = self.layer_spec(layers)
            key = features.feature_key(spec, self.weights, self._digests[name], self.device)
            batch = max(self.options.batch_size, 128)   # inference only: larger is faster
            self._features[memo], _ = features.features_of(
                self.model, spec, key, dataset, indices, self.device, batch, desc=name,
                refresh=not self.options.use_cache)
        return self._features[memo]

    def training_set(self, method):
        """The model's training set, which ``method`` fits on (read once); a clear error if
        absent."""
        if self._train is None:
            try:
                self._train = train_set(self.spec.in_dataset, self.spec.train_dataset,
                                        self.spec.image_size)
            except Unavailable as e:
                raise UserError(f"{method} fits on the {self.spec.in_dataset} training set of "
                                f"{self.spec.name}, which is not here: {e}") from None
        return self._train

    def train_features(self, method, layers=None):
        """Features of the whole training set, needed by ``method``'s fit."""
        train = self.training_set(method)
        return self.features(train, range(len(train)), f"{self.spec.in_dataset} train", layers)

    def check_labels(self, method):
        """A class-conditional detector (``method``, its name) needs a label in
        0..classes-1 for every training image: a UserError naming --train-dataset otherwise."""
        labels = getattr(self.training_set(method), "labels", None)
        if labels is None:          # the CIFAR training sets: labelled
            return
        labels, classes = np.asarray(labels), self.spec.num_classes
        missing = sorted(set(range(classes)) - set(labels.tolist()))
        if len(labels) and (labels.min() < 0 or labels.max() >= classes or missing):
            what = ("has images without a label" if labels.min() < 0 else
                    f"has labels up to {labels.max()}, beyond the model's {classes} classes"
                    if labels.max() >= classes else
                    f"has no image of class(es) {', '.join(map(str, missing[:5]))} of the "
                    f"model's {classes}")
            raise UserError(f"{method} fits per class, but its training set "
                            f"(--train-dataset) {what}: give a labelled set (class folders, "
                            "or 'labels' in the npz)")

    def fitted(self, settings):
        """The detector of ``settings``, fitted once per (method, parameters)."""
        key = (settings.method, settings.params)
        if key not in self._fitted:
            detector = settings.detector()
            check_penultimate(self.spec, detector)
            head = self.head()
            width = head.weight.shape[1] if head is not None else 0
            if detector.needs_training:
                if detector.class_conditional:
                    self.check_labels(detector.name)
                detector.check(width, len(self.training_set(settings.method)))
                train = self.train_features(settings.method, detector.layers)
            else:
                detector.check(width, None)
                train = None
            self._fitted[key] = detector.fit(train, self.head())
        return self._fitted[key]

    def score(self, plan):
        """Score both sides of ``plan`` (a non-ODIN method), write its run folder; return its
        run.json contents."""
        settings, spec = plan.settings, plan.spec
        started = time.time()
        detector = self.fitted(settings)
        seed = f" seed {settings.seed}" if plan.ood_set.kind == "noise" else ""
        seed_name = settings.out_dataset + seed
        ins = self.features(plan.ind, plan.indices, spec.in_dataset, detector.layers)
        outs = self.features(plan.ood, plan.indices, seed_name, detector.layers)
        tag = detector.label
        scores = {(tag, "In"): detector.score(ins), (tag, "Out"): detector.score(outs)}
        info = dict(nn=settings.nn, architecture=spec.label, in_dataset=spec.in_dataset,
                    num_classes=spec.num_classes, out_dataset=settings.out_dataset,
                    out_label=plan.ood_set.label, method=settings.method, label=tag,
                    params=dict(settings.params), seed=settings.seed,
                    first_index=plan.indices.start, images_per_side=len(plan.indices),
                    accuracy=accuracy(ins.logits.argmax(axis=1), ins.labels),
                    device=str(self.device), seconds=round(time.time() - started, 1),
                    **model_record(spec))
        texts = {}
        if hasattr(detector, "deciding"):     # LA-OOD: the layer that judged each image
            texts = {f"deciding_layer_{side}.txt": "\n".join(detector.deciding(values)) + "\n"
                     for side, values in (("In", ins), ("Out", outs))}
            info["layers_left_out"] = getattr(detector, "unfit", {})
        scorefiles.write_run(plan.folder, settings.folder_name(), info, scores,
                             output_temperature(detector), 0.0, texts)
        return info


def finished(plan):
    """The run.json of a complete detector run folder whose files match it, else None."""
    return scorefiles.finished(plan.folder)
