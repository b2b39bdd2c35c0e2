"""The shared feature pass (layer 3): one forward pass per image gives the logits, the
penultimate features and the pooled outputs of the model's declared layers, which every
gradient-free detector reads.

Forward hooks on the layers that ``models.ModelSpec.feature_layers`` names keep each
output averaged over space (a [N, channels] array per layer); a pre-hook on the classifier
keeps its input, the penultimate feature. Features are cached on disk per model and image
set (``features_of``): the training set's once per model, the test and OOD sets' once per
set, so adding a detector that needs no input gradient costs no forward pass at all.
"""
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from oodbench.core.shards import map_shards
from oodbench.scoring import cache
from oodbench.scoring.odin_scoring import normaliser

# Part of every feature cache key: bump it when a change here changes what is computed.
FEATURE_VERSION = 1
LAYER_PREFIX = "layer."


@dataclass
class Features:
    logits: np.ndarray        # [N, classes]
    penultimate: np.ndarray   # [N, width]: the classifier's input
    layers: dict              # {layer name: [N, channels]}, pooled over space
    labels: np.ndarray        # [N] the dataset's labels (an OOD set's are not classes)

    def __len__(self):
        return len(self.logits)

    def take(self, part):
        """The features of the images ``part`` (a slice or an index array)."""
        return Features(self.logits[part], self.penultimate[part],
                        {name: values[part] for name, values in self.layers.items()},
                        self.labels[part])

    def arrays(self):
        """The features as one flat {name: array} (the cache's format)."""
        return {"logits": self.logits, "penultimate": self.penultimate, "labels": self.labels,
                **{LAYER_PREFIX + name: values for name, values in self.layers.items()}}

    @classmethod
    def from_arrays(cls, arrays):
        layers = {name[len(LAYER_PREFIX):]: values for name, values in arrays.items()
                  if name.startswith(LAYER_PREFIX)}
        return cls(arrays["logits"], arrays["penultimate"], layers, arrays["labels"])


@dataclass(frozen=True)
class Head:
    """The classifier's last layer, logits = penultimate @ weight.T + bias (float32)."""
    weight: np.ndarray        # [classes, width]
    bias: np.ndarray          # [classes]

    def logits(self, penultimate):
        return penultimate @ self.weight.T + self.bias


def head_of(model, classifier):
    """The Head of ``model``'s classifier module (its name: ModelSpec.classifier); None when
    the model's classifier is not known (ModelSpec.classifier None)."""
    if classifier is None:
        return None
    layer = model.get_submodule(classifier)
    weight = layer.weight.detach().cpu().numpy().astype(np.float32)
    bias = (layer.bias.detach().cpu().numpy().astype(np.float32) if layer.bias is not None
            else np.zeros(len(weight), dtype=np.float32))
    return Head(weight, bias)


def pooled(output):
    """A layer's output averaged over space: [N, C, H, W] over H and W; a transformer's
    [N, tokens, C] over its tokens; [N, C] as it is."""
    output = output.float()
    if output.dim() == 4:
        return output.mean(dim=(2, 3))
    if output.dim() == 3:
        return output.mean(dim=1)
    return output.flatten(1)


@contextmanager
def hooked(model, feature_layers, classifier):
    """While inside: ``kept`` fills with each declared layer's pooled output and the
    classifier's input, for the last batch the model saw."""
    kept, handles = {}, []

    def keep(layer):
        def hook(module, inputs, output):
            if layer.relu:
                output = torch.relu(output)
            kept[layer.name] = pooled(output)
        return hook

    def keep_input(module, inputs):
        kept["penultimate"] = inputs[0].float().flatten(1)

    try:
        for layer in feature_layers:
            handles.append(model.get_submodule(layer.module).register_forward_hook(keep(layer)))
        if classifier is not None:      # else no penultimate feature: [N, 0]
            handles.append(model.get_submodule(classifier).register_forward_pre_hook(keep_input))
        yield kept
    finally:
        for handle in handles:
            handle.remove()


class _Reached(Exception):
    """Raised by the hook of the last layer asked for: the rest of the network is not run."""


class LayerMaps(torch.nn.Module):
    """A network seen as the layer-wise detectors (Mahalanobis in full, FSSD) see one:
    ``layer_maps(x, upto)`` gives the outputs of its first ``upto`` declared layers
    (``models.FeatureLayer``; after the ReLU the network applies functionally where declared),
    unpooled and differentiable. The forward pass stops at the last layer asked for (the
    hook raises), so the first layers of a DenseNet cost a fraction of a forward pass."""

    def __init__(self, model, feature_layers):
        super().__init__()
        self.model, self.feature_layers = model, tuple(feature_layers)

    def forward(self, x):
        return self.model(x)

    def layer_maps(self, x, upto=None):
        layers = self.feature_layers[:upto]
        kept, handles = {}, []

        def keep(layer, last):
            def hook(module, inputs, output):
                kept[layer.name] = torch.relu(output) if layer.relu else output
                if last:
                    raise _Reached
            return hook
        try:
            for i, layer in enumerate(layers):
                module = self.model.get_submodule(layer.module)
                handles.append(module.register_forward_hook(keep(layer, i == len(layers) - 1)))
            self.model(x)
        except _Reached:
            pass
        finally:
            for handle in handles:
                handle.remove()
        return [kept[layer.name] for layer in layers]


def extract(model, spec, dataset, device, batch_size=128, desc="features"):
    """The Features of every image of ``dataset`` (eager, inference mode, in batches).
    Each output array is allocated once, at the first batch, and filled batch by batch:
    hundreds of small arrays kept per batch between the forward pass's large transient
    buffers would fragment the heap (runtime.configure_allocator keeps it untrimmed), and
    LA-OOD's 100 layers over 50,000 images grew a process past 16 GB that way."""
    normalise, _ = normaliser(spec.mean, spec.std, device)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False,
                        pin_memory=torch.device(device).type == "cuda")
    names = [layer.name for layer in spec.feature_layers]
    out, done = {}, 0
    with hooked(model, spec.feature_layers, spec.classifier) as kept, torch.inference_mode(), \
            tqdm(total=len(dataset), desc=desc, unit="img", dynamic_ncols=True) as bar:
        for images, labels in loader:
            logits = model(normalise(images)).float()
            if spec.classifier is None:     # not known: an empty feature
                kept["penultimate"] = logits[:, :0]
            batch = {"logits": logits, "labels": torch.as_tensor(np.asarray(labels)),
                     **{name: kept[name] for name in ["penultimate", *names]}}
            if not out:
                out = {name: np.empty((len(dataset),) + tuple(values.shape[1:]),
                                      dtype=values.cpu().numpy().dtype)
                       for name, values in batch.items()}
            for name, values in batch.items():
                out[name][done:done + len(images)] = values.cpu().numpy()
            done += len(images)
            bar.update(len(images))
    if not out:
        raise ValueError("no images to extract features from")
    return Features(out.pop("logits"), out.pop("penultimate"),
                    {name: out[name] for name in names}, out["labels"])


def feature_key(spec, weights, images, device):
    """The cache key of one image set's features: the weights' sha256, the images' content
    digest, the normalisation, the layer list, the device type and FEATURE_VERSION."""
    return cache.key_of(what="features", weights=weights, images=images, mean=list(spec.mean),
                        std=list(spec.std), device=torch.device(device).type,
                        layers=[(f.name, f.module, f.relu) for f in spec.feature_layers],
                        classifier=spec.classifier, feature_version=FEATURE_VERSION)


def features_of(get_model, spec, key, dataset, indices, device, batch_size=128, desc="features",
                refresh=False):
    """(Features of ``dataset`` at ``indices`` (a range), reused from the cache?).

    ``get_model()`` gives the prepared model; it is called only when a feature pass has to
    run. ``key`` is ``feature_key(...)`` of the whole dataset: an entry covering a larger
    range serves any range inside it."""
    def compute(part):
        return extract(get_model(), spec, Subset(dataset, part), device, batch_size,
                       desc).arrays()

    def join(parts):
        return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    arrays, reused = cache.cached_rows(key, indices, lambda wanted: map_shards(
                                           compute, wanted, join, f"{desc} features"),
                                       refresh=refresh,
                                       what=f"{desc} features")
    return Features.from_arrays(arrays), reused
