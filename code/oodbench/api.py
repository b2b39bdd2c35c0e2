"""The Python entry for notebooks (layer 6: beside the commands): a model, images, any
detector's scores and the metrics, on the code paths the commands use, writing no file.

    import numpy as np
    from oodbench import api

    model = api.load_model(nn="resnet20")   # or arch="resnet18", weights="my.pt", ...
    cifar = api.images("CIFAR-10", model)
    train = api.images("CIFAR-10 train", model)
    ood = api.images("iSUN", model)         # or "folder:PATH", "npz:PATH", a tensor
    ins = api.score(model, "knn", api.subset(cifar, 1000, 1200), train=train)
    outs = api.score(model, "knn", api.subset(ood, 1000, 1200), train=train)
    print(api.metrics(ins, outs)["AUROC"])

``score`` runs ODIN (``temperature``, ``magnitude``) through the same batched arithmetic as
main.py (scoring/odin_scoring.py), and every other detector through the same feature pass
and fit (scoring/features.py, the detector's module), so its scores equal those of
main.py's score files. Higher means more in-distribution, for every detector.
"""
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from oodbench import detectors
from oodbench.core import runtime
from oodbench.core.devices import pick_device
from oodbench.core.paths import UserError
from oodbench.datasets.image_sets import ood_dataset, test_set, train_set
from oodbench.networks import from_files
from oodbench.networks.registry import ModelSpec, conv_layers, get_spec, load_model as _load
from oodbench.pipelines.feature_runs import check_penultimate
from oodbench.pipelines.runs import check_input_gradient
from oodbench.scoring import features, metrics as _metrics, odin_scoring

__all__ = ["Model", "load_model", "images", "subset", "score", "metrics"]
OPTIONS = ("num_classes", "mean", "std", "image_size", "penultimate", "layers", "in_dataset",
           "train_dataset")


@dataclass
class Model:
    """A network ready on its device, and its spec (normalisation, input size, layers)."""
    network: torch.nn.Module
    spec: ModelSpec
    device: torch.device

    @property
    def name(self):
        return self.spec.name


def load_model(nn=None, arch=None, weights=None, model=None, device="cpu", **options):
    """A registry model by name (``nn``), or your own: ``arch`` with ``weights`` (a
    state_dict file), or ``model`` (a torch.export ``.pt2`` file). ``options``: num_classes,
    mean and std (``"0.5,0.5,0.5"`` or a tuple), image_size, penultimate, layers,
    in_dataset, train_dataset, as the command-line flags of the same names."""
    for key in ("mean", "std"):
        if isinstance(options.get(key), (tuple, list)):
            options[key] = ",".join(map(str, options[key]))
    if arch is not None or model is not None:
        if nn is not None:
            raise UserError("give nn, or arch with weights, or model; not several")
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise UserError(f"load_model: unknown option(s) {', '.join(unknown)}; the options: "
                            f"{', '.join(OPTIONS)}")
        spec = from_files.from_files(arch=arch, weights=weights, exported=model, **options)
    else:
        spec = from_files.with_sets(get_spec(nn or "densenet10"), options.pop("in_dataset", None),
                                    options.pop("train_dataset", None))
        if options:
            raise UserError(f"{', '.join(options)}: only for your own model (arch or model)")
    device = pick_device(0, str(device)) if not isinstance(device, torch.device) else device
    network, spec = _load(spec.name, device)
    return Model(runtime.prepare_model(network, device), spec, device)


def images(name, model, seed=0):
    """A set by name at the model's input size: "CIFAR-10" (the model's test set),
    "CIFAR-10 train" (the set its fitted detectors fit on), an OOD set's name, or
    "folder:PATH" / "npz:PATH"."""
    spec = model.spec
    if name == spec.in_dataset:
        return test_set(spec.in_dataset, spec.image_size)
    if name == f"{spec.in_dataset} train":
        return train_set(spec.in_dataset, spec.train_dataset, spec.image_size)
    return ood_dataset(name, seed, spec.image_size)


def subset(dataset, start, stop):
    """Images ``start`` .. ``stop`` - 1 of ``dataset``."""
    return Subset(dataset, range(start, min(stop, len(dataset))))


def _dataset(data, spec):
    """A Dataset of ``(image, label)`` from a Dataset, a DataLoader's dataset, a tensor of
    images (uint8 or float in [0, 1], [N, 3, S, S]) or a set name."""
    if isinstance(data, DataLoader):
        data = data.dataset
    if isinstance(data, torch.Tensor):
        size = spec.image_size
        if data.dim() != 4 or tuple(data.shape[1:]) != (3, size, size):
            raise UserError(f"images must be [N, 3, {size}, {size}] (the model's input), got "
                            f"{tuple(data.shape)}")
        return TensorDataset(data, torch.full((len(data),), -1))
    if isinstance(data, Dataset):
        return data
    raise UserError(f"cannot score {type(data).__name__}: give a Dataset, a DataLoader or a "
                    "tensor of images")


def _features(model, spec, dataset, batch_size):
    return features.extract(model.network, spec, dataset, model.device, batch_size,
                            desc="features")


def score(model, method, data, train=None, batch_size=128, **params):
    """One score per image of ``data`` (a Dataset, a DataLoader, a tensor of images) by the
    detector ``method`` with ``params`` (the papers' defaults for the rest): ODIN's scores
    at (temperature, magnitude), or the detector's; ``train`` (a Dataset) is the set a
    fitted detector fits on. Higher means more in-distribution."""
    spec, dataset = model.spec, _dataset(data, model.spec)
    if method == "odin":
        odin = detectors.make("odin", **params)
        if spec.exported:
            check_input_gradient(model.network, spec, model.device)
        with torch.enable_grad():
            scores = odin_scoring.score_dataset(
                model.network, dataset, spec.mean, spec.std, odin.params["temperature"],
                odin.params["magnitude"], model.device, batch_size=batch_size, desc="odin")
        return scores.odin
    detector = detectors.make(method, **params)
    detector.check_classes(spec.num_classes)
    check_penultimate(spec, detector)
    if detector.layers == "conv":
        spec = replace(spec, feature_layers=conv_layers(model.network))
    head = features.head_of(model.network, spec.classifier)
    fit_on = None
    if detector.needs_training:
        if train is None:
            raise UserError(f"{method} fits on a training set: give train=api.images("
                            f"'{spec.in_dataset} train', model) or your own Dataset")
        fit_on = _features(model, spec, _dataset(train, spec), batch_size)
        if detector.class_conditional and (fit_on.labels < 0).any():
            raise UserError(f"{method} fits per class: the training set needs labels")
    detector.check(0 if head is None else head.weight.shape[1],
                   None if fit_on is None else len(fit_on))
    detector.fit(fit_on, head)
    return np.asarray(detector.score(_features(model, spec, dataset, batch_size)))


def metrics(in_scores, out_scores, mode="exact"):
    """FPR at 95% TPR, detection error, AUROC, AUPR-In and AUPR-Out (fractions), the
    in-distribution images the positive class, as calMetric.py computes them."""
    return _metrics.compute(np.asarray(in_scores), np.asarray(out_scores), mode)
