"""The registry of named pre-trained models (layer 2: networks): architecture, classes,
input normalisation, file, origin. Where each file comes from (URL, checksum) is the asset
catalogue's business: every model is the asset item of the same name.

``load_model(name, device)`` returns the network in eval mode with frozen
weights. Checkpoints are read with ``torch.load(weights_only=True)``; a full
pickle (the ODIN release's format) is unpickled only when its sha256 is that of
a known release file, because unpickling runs arbitrary code.
"""
import contextlib
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from oodbench.assets.catalog import ITEMS_BY_NAME, Unavailable, where_to_get
from oodbench.core.digests import file_digest
from oodbench.core.paths import UserError, shown
from oodbench.networks import densenet, wideresnet
from oodbench.networks.cifar_resnet import CifarResNet
from oodbench.networks.densenet import DenseNet3
from oodbench.networks.wideresnet import WideResNet

ODIN_MEAN = (125.3 / 255, 123.0 / 255, 113.9 / 255)
ODIN_STD = (63.0 / 255, 62.1 / 255, 66.7 / 255)
DICE_MEAN, DICE_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)

# sha256 of the release's pickles that may be unpickled. Only densenet10.pth could
# be verified here; the other three release files must be converted (see README).
RELEASE_PICKLES = {
    "3211ffc3f6107d0605b5914d58fd352318b7af6464e99eb875b88e5c38fdcb31": "densenet10.pth",
}
# The release's pickles name their classes by these top-level modules (the release's files).
RELEASE_MODULES = {"densenet": densenet, "wideresnet": wideresnet}


@dataclass(frozen=True)
class FeatureLayer:
    """A layer whose output the feature pass keeps, global-average-pooled over space."""
    name: str                 # as tables and cache keys name it
    module: str               # the module's path in the network (model.get_submodule)
    relu: bool = False        # apply the ReLU the network applies functionally after it


# The layers of each architecture that the fitted detectors read, as in Lee et al.'s
# Mahalanobis code: the stem, the output of each stage, and the last stage after its final
# BN-ReLU, whose pooled output is the penultimate feature (the classifier's input).
DENSENET_LAYERS = (FeatureLayer("conv1", "conv1"), FeatureLayer("trans1", "trans1"),
                   FeatureLayer("trans2", "trans2"), FeatureLayer("block3", "relu"))
RESNET_LAYERS = (FeatureLayer("stem", "bn1", relu=True), FeatureLayer("layer1", "layer1"),
                 FeatureLayer("layer2", "layer2"), FeatureLayer("layer3", "layer3"))
WRN_LAYERS = (FeatureLayer("conv1", "conv1"), FeatureLayer("block1", "block1"),
              FeatureLayer("block2", "block2"), FeatureLayer("block3", "relu"))
CLASSIFIER = "fc"   # every network here: its input is the penultimate feature
SHORTCUTS = ("downsample", "convShortcut")   # the 1x1 projection shortcuts' module names


def is_conv(module):
    """A 2-D convolution: an nn.Conv2d, or in an exported program (whose modules are not of
    their classes any more) a module that owns a 4-D weight."""
    if isinstance(module, torch.nn.Conv2d):
        return True
    weight = getattr(module, "weight", None)
    return (not list(module.children()) and isinstance(weight, torch.Tensor)
            and weight.dim() == 4)


def conv_layers(model):
    """LA-OOD's layers of a network (SPEC-laood; the authors' get_inter_outputs): every
    convolution's raw output, before the BatchNorm that follows it, in the order the network
    defines them, without the 1x1 projection shortcuts (their ResNet-34 leaves them out). The
    logits are one more layer, which the feature pass keeps anyway. Any network: every
    ``nn.Conv2d`` (registry.is_conv)."""
    return tuple(FeatureLayer(name, name) for name, module in model.named_modules()
                 if is_conv(module) and not any(part in SHORTCUTS for part in name.split(".")))


@dataclass(frozen=True)
class ModelSpec:
    name: str
    label: str                      # architecture, as the metric block prints it
    in_dataset: str                 # 'CIFAR-10' or 'CIFAR-100'
    build: Callable[[], torch.nn.Module]
    mean: tuple
    std: tuple
    origin: str                     # who trained the weights, and their licence
    rename: tuple = ()              # (old key prefix, new key prefix) pairs
    feature_layers: tuple = DENSENET_LAYERS
    laood_layers: int = 100         # conv_layers + the logits: DenseNet-BC-100's 99 + 1
    # A model from the user's files (networks/from_files.py) says the rest itself:
    classes: int | None = None      # default: by in_dataset (10 or 100)
    classifier: str | None = CLASSIFIER  # the module whose input is the penultimate feature
    #                                      (None: not found in a model from files)
    image_size: int = 32            # the input's height and width
    weights_file: Path | None = None  # default: the asset catalogue's file of ``name``
    exported: bool = False          # a torch.export program: build() loads it, weights and all
    train_dataset: str | None = None  # the fitted detectors' training set (default: in_dataset's)
    command: str = ""               # the flags that rebuild it, recorded in run.json
    registry_name: str | None = None  # a registry model fitted on another set: the registry's
    #                                   name (its release settings apply)
    arch: str | None = None         # --arch of the same network (from_files.OWN_NAMES), for
    #                                 weights retrained from these (co-training)

    @property
    def num_classes(self):
        if self.classes is not None:
            return self.classes
        return 10 if self.in_dataset == "CIFAR-10" else 100

    @property
    def asset(self):
        return ITEMS_BY_NAME[self.name]

    @property
    def path(self):
        return self.weights_file if self.weights_file is not None else self.asset.dest


def _densenet(classes):
    return lambda: DenseNet3(100, classes)


def _wrn(classes):
    return lambda: WideResNet(28, classes, widen_factor=10)


def _resnet(depth, classes, shortcut):
    return lambda: CifarResNet(depth, classes, shortcut)


DENSENET_ARCH, WRN_ARCH = "densenet-bc-100-12", "wrn-28-10"
ODIN_RELEASE = "ODIN release (CC BY-NC 4.0), https://github.com/facebookresearch/odin"
AKAMASTER = ("akamaster/pytorch_resnet_cifar10 (BSD-2), "
             "https://github.com/akamaster/pytorch_resnet_cifar10")
MODELS = {spec.name: spec for spec in [
    ModelSpec("densenet10", "DenseNet-BC-100", "CIFAR-10", _densenet(10), ODIN_MEAN, ODIN_STD,
              ODIN_RELEASE, arch=DENSENET_ARCH),
    ModelSpec("densenet100", "DenseNet-BC-100", "CIFAR-100", _densenet(100), ODIN_MEAN, ODIN_STD,
              ODIN_RELEASE, arch=DENSENET_ARCH),
    ModelSpec("wideresnet10", "Wide-ResNet-28-10", "CIFAR-10", _wrn(10), ODIN_MEAN, ODIN_STD,
              ODIN_RELEASE, feature_layers=WRN_LAYERS, laood_layers=26, arch=WRN_ARCH),
    ModelSpec("wideresnet100", "Wide-ResNet-28-10", "CIFAR-100", _wrn(100), ODIN_MEAN, ODIN_STD,
              ODIN_RELEASE + "; the release README links it to the same key as wideresnet10",
              feature_layers=WRN_LAYERS, laood_layers=26, arch=WRN_ARCH),
    ModelSpec("dice_densenet10", "DenseNet-BC-100 (DICE)", "CIFAR-10", _densenet(10),
              DICE_MEAN, DICE_STD,
              "deeplearning-wisc/dice (MIT), https://github.com/deeplearning-wisc/dice",
              arch=DENSENET_ARCH),
    ModelSpec("dice_densenet100", "DenseNet-BC-100 (DICE)", "CIFAR-100", _densenet(100),
              DICE_MEAN, DICE_STD,
              "deeplearning-wisc/dice (MIT), https://github.com/deeplearning-wisc/dice",
              arch=DENSENET_ARCH),
    ModelSpec("necas_densenet10", "DenseNet-BC-100 (Necas)", "CIFAR-10", _densenet(10),
              ODIN_MEAN, ODIN_STD, "Necas, independent DenseNet-BC-100 training (BSD-3)",
              arch=DENSENET_ARCH),
    *[ModelSpec(f"resnet{d}", f"ResNet-{d}", "CIFAR-10", _resnet(d, 10, "A"),
                IMAGENET_MEAN, IMAGENET_STD, AKAMASTER,
                rename=(("module.", ""), ("linear.", "fc.")), feature_layers=RESNET_LAYERS,
                laood_layers=d, arch=f"resnet{d}")
      for d in (20, 32, 44, 56)],
    ModelSpec("resnet56_cifar100", "ResNet-56", "CIFAR-100", _resnet(56, 100, "B"),
              CIFAR100_MEAN, CIFAR100_STD,
              "chenyaofo/pytorch-cifar-models (BSD-3), "
              "https://github.com/chenyaofo/pytorch-cifar-models", feature_layers=RESNET_LAYERS,
              laood_layers=56, arch="resnet56-b"),
]}


# The models made from the user's files in this process (networks/from_files.py), by name.
FROM_FILES = {}


def register(spec):
    """Make ``spec`` (a model from files) known by its name for the rest of the process."""
    FROM_FILES[spec.name] = spec
    return spec


def get_spec(name):
    if name in FROM_FILES:
        return FROM_FILES[name]
    if name not in MODELS:
        raise UserError(f"unknown model {name!r}; choose from {', '.join(MODELS)}, or give "
                        "your own with --arch and --weights, or --model FILE.pt2")
    return MODELS[name]


def sha256_of(path):
    return file_digest(path, "sha256")


@contextlib.contextmanager
def release_module_names():
    """For the time of an unpickling, the top-level module names the release's pickles
    name (``densenet.DenseNet3``, ``wideresnet.WideResNet``) are this package's modules;
    whatever those names held before is put back after."""
    before = {name: sys.modules.get(name) for name in RELEASE_MODULES}
    sys.modules.update(RELEASE_MODULES)
    try:
        yield
    finally:
        for name, module in before.items():
            if module is None:
                del sys.modules[name]
            else:
                sys.modules[name] = module


def read_checkpoint(path):
    """Whatever the file holds, as loaded safely (see the module docstring)."""
    digest = sha256_of(path)
    if digest in RELEASE_PICKLES:
        with warnings.catch_warnings(), release_module_names():
            warnings.simplefilter("ignore")  # SourceChangeWarning: we only take the weights
            return torch.load(path, map_location="cpu", weights_only=False)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for bad files
        if "Unsupported global" in str(e):  # a pickle of classes, not just tensors
            raise UserError(
                f"{path} is a full pickle (sha256 {digest}) that is not a known ODIN release "
                "file; unpickling runs arbitrary code, so it is refused. If you trust it, "
                f"convert it to a state_dict: python code/convert_checkpoint.py {path} "
                f"{path}.state_dict.pt") from None
        raise UserError(f"{path}: not a readable PyTorch checkpoint "
                        f"({type(e).__name__}: {str(e).splitlines()[0]})") from None


def state_dict_of(obj, path):
    """The tensors of a module, a {'state_dict': ...} or {'model': ...} checkpoint or a plain
    state_dict."""
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"{path}: holds no state_dict of tensors")
    return obj


def renamed(state, rename):
    """``state`` with each key's prefix ``old`` replaced by ``new``, for (old, new) in rename."""
    out = {}
    for key, value in state.items():
        for old, new in rename:
            if key.startswith(old):
                key = new + key[len(old):]
        out[key] = value
    return out


def _listed(keys, most=4):
    return ", ".join(keys[:most]) + (f" and {len(keys) - most} more" if len(keys) > most else "")


def mismatch(model, state):
    """What keeps ``state`` from loading into ``model``: the missing, unexpected and wrongly
    shaped keys ('' when it fits). Old pickles lack BN's num_batches_tracked, which is fine."""
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    shaped = [f"{k} {tuple(state[k].shape)} (the model's: {tuple(own[k].shape)})"
              for k in state if k in own and state[k].shape != own[k].shape]
    parts = [f"{what} {len(keys)} key(s): {_listed(keys)}" for what, keys in
             (("missing", missing), ("unexpected", unexpected), ("wrongly shaped", shaped))
             if keys]
    return "; ".join(parts)


def load_weights(model, state, spec, path):
    """Load ``state`` into ``model``; a UserError naming every key that does not fit."""
    problem = mismatch(model, state)
    if problem:
        raise UserError(f"{path} does not fit {spec.name} ({spec.label}, "
                        f"{spec.num_classes} classes): {problem}")
    model.load_state_dict(state, strict=False)


def build_from(spec, path):
    """The network of ``spec`` with the weights of the checkpoint at ``path``, frozen, eval mode.
    An exported program (``spec.exported``) holds its weights: build() loads it whole."""
    model = spec.build()
    if not spec.exported:
        load_weights(model, renamed(state_dict_of(read_checkpoint(path), path), spec.rename),
                     spec, path)
    return model.eval().requires_grad_(False)


def require_weights(spec):
    if spec.weights_file is not None:
        if not spec.weights_file.is_file():
            raise UserError(f"model file {spec.weights_file} not found")
        return
    if not spec.path.exists():
        raise Unavailable(f"model file {shown(spec.path)} not found: run bash "
                          f"scripts/get_data.sh, or get it from {where_to_get(spec.asset)} "
                          f"into {shown(spec.path)} ({spec.origin})")


def weights_sha256(name):
    """The sha256 of a model's weights file (a cache key); a clear error when it is absent."""
    spec = get_spec(name)
    require_weights(spec)
    return sha256_of(spec.path)


def load_model(name, device="cpu"):
    spec = get_spec(name)
    require_weights(spec)
    return build_from(spec, spec.path).to(device), spec
