"""A model from the user's files, made into a ModelSpec like a registry one (layer 2: networks).

Two ways in:

- ``--arch ARCH --weights FILE``: ARCH is one of the project's architectures
  (``densenet-bc-<depth>-<growth>``, ``resnet<depth>`` with the CIFAR option-A shortcut or
  ``resnet<depth>-b`` with option B, ``wrn-<depth>-<width>``) or any torchvision
  classification builder by its name (``resnet18``, ``densenet121``, ``vit_b_16``, ...). The
  weights are a plain state_dict, or one under ``state_dict`` / ``model``, read with
  ``torch.load(weights_only=True)``; ``module.`` prefixes (DataParallel) are dropped.
- ``--model FILE.pt2``: a program saved by ``torch.export.save``: no Python class is
  needed and nothing is unpickled. It is unflattened (``torch.export.unflatten``) so that
  its submodules keep their names and the feature pass can hook them.

The penultimate feature is the input of the model's last ``nn.Linear`` (in an exported
program: of its last module with a 2-D weight), unless ``classifier`` names another module.
A probe batch checks, before any work, that the model gives [N, classes] logits and that
the classifier's input, through its weight and bias, gives those logits.

The name a model from files is known by (``<arch>-<digest>``) hashes everything that
changes its scores: the weights' sha256, the architecture, the classes, the normalisation,
the input size, the classifier and the feature layers, and the content digests of the
image sets it is tested and fitted on (``set_identity``); run folders and cache keys carry
it, as they carry a registry model's name.
"""
import hashlib
import json
import re
import shlex
from dataclasses import replace
from pathlib import Path

import torch
import torchvision

from oodbench.core.paths import UserError
from oodbench.datasets import from_files as file_sets
from oodbench.networks import registry
from oodbench.networks.cifar_resnet import CifarResNet
from oodbench.networks.densenet import DenseNet3
from oodbench.networks.registry import (DENSENET_LAYERS, IMAGENET_MEAN, IMAGENET_STD,
                                        RESNET_LAYERS, WRN_LAYERS, FeatureLayer, ModelSpec)
from oodbench.networks.wideresnet import WideResNet

# The project's own architectures: pattern -> (label, builder(match, classes), key renames,
# feature layers). The CIFAR ResNets' original checkpoints name the classifier ``linear``.
OWN = {
    r"densenet-bc-(\d+)-(\d+)": (
        "DenseNet-BC-{0} (k={1})", lambda m, c: DenseNet3(int(m[1]), c, growth_rate=int(m[2])),
        (), DENSENET_LAYERS),
    r"resnet(\d+)(-b)?": (
        "ResNet-{0}", lambda m, c: CifarResNet(int(m[1]), c, "B" if m[2] else "A"),
        (("linear.", "fc."),), RESNET_LAYERS),
    r"wrn-(\d+)-(\d+)": (
        "Wide-ResNet-{0}-{1}", lambda m, c: WideResNet(int(m[1]), c, widen_factor=int(m[2])),
        (), WRN_LAYERS),
}
OWN_NAMES = "densenet-bc-<depth>-<growth>, resnet<depth>[-b], wrn-<depth>-<width>"
DEFAULT_IMAGE_SIZE = {"own": 32, "torchvision": 224}


def torchvision_names():
    return torchvision.models.list_models(module=torchvision.models)


def own_architecture(arch):
    """(label, builder(classes), renames, layers) of one of the project's architectures, or
    None when ``arch`` names none of them."""
    for pattern, (label, build, rename, layers) in OWN.items():
        match = re.fullmatch(pattern, arch)
        if match and arch not in torchvision_names():
            def builder(classes, match=match, build=build):
                try:
                    return build(match, classes)
                except (ValueError, ZeroDivisionError, RuntimeError) as e:
                    raise UserError(f"--arch {arch}: {e}") from None
            return label.format(*match.groups()), builder, rename, layers
    return None


def torchvision_builder(arch, image_size):
    if arch not in torchvision_names():
        raise UserError(f"unknown --arch {arch!r}: neither one of the project's ({OWN_NAMES}) "
                        "nor a torchvision classification model (torchvision.models."
                        "list_models(module=torchvision.models) lists them)")
    extra = {"image_size": image_size} if arch.startswith("vit_") else {}
    return lambda classes: torchvision.models.get_model(arch, weights=None,
                                                        num_classes=classes, **extra)


def default_layers(arch, model):
    """The per-block layers Mahalanobis in full and FSSD read on a torchvision model, by
    family: the four stages of a ResNet (layer1..layer4); DenseNet's transitions and its
    final BN (with the ReLU applied functionally after it); VGG's max-pools; the blocks of
    ``features`` (MobileNet, EfficientNet, ConvNeXt, ...); a ViT's encoder layers (tokens
    averaged). () when the family has none: --layers names them."""
    names = dict(model.named_modules())
    if all(f"layer{i}" in names for i in (1, 2, 3, 4)):
        return tuple(FeatureLayer(f"layer{i}", f"layer{i}") for i in (1, 2, 3, 4))
    if arch.startswith("densenet"):
        return (*(FeatureLayer(f"transition{i}", f"features.transition{i}") for i in (1, 2, 3)),
                FeatureLayer("norm5", "features.norm5", relu=True))
    if arch.startswith("vgg"):
        return tuple(FeatureLayer(f"pool{i + 1}", name) for i, name in enumerate(
            n for n, m in names.items() if isinstance(m, torch.nn.MaxPool2d)))
    if arch.startswith("vit_"):
        return tuple(FeatureLayer(child, f"encoder.layers.{child}")
                     for child, _ in model.encoder.layers.named_children())
    features = names.get("features")
    if isinstance(features, torch.nn.Sequential) and not arch.startswith("swin"):
        # (Swin's blocks give channels-last maps, which the pooling would misread)
        return tuple(FeatureLayer(f"features{n}", f"features.{n}")
                     for n, _ in features.named_children())
    return ()


def last_linear(model):
    """The name of the model's last ``nn.Linear`` in definition order (in an exported
    program: its last leaf module with a 2-D weight), or None."""
    found = None
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if isinstance(module, torch.nn.Linear) or (
                not isinstance(module, torch.nn.modules.conv._ConvNd)
                and not list(module.children()) and isinstance(weight, torch.Tensor)
                and weight.dim() == 2 and name):
            found = name
    return found


def named_layers(text, model):
    """FeatureLayers of --layers M1,M2,... (``named_modules()`` names); a UserError naming
    an unknown one."""
    names = dict(model.named_modules())
    chosen = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in names]
    if unknown:
        raise UserError(f"--layers: the model has no module {', '.join(unknown)} (its "
                        f"modules: {', '.join(list(n for n in names if n)[:12])}, ...)")
    return tuple(FeatureLayer(n, n) for n in chosen)


def load_exported(path):
    """The unflattened module of a ``torch.export`` program and its input's (height, width)."""
    try:
        program = torch.export.load(str(path))
    except Exception as e:   # torch raises several types for a file that is not a program
        raise UserError(f"{path}: not a program saved by torch.export.save "
                        f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
                        ) from None
    inputs = [spec for spec in program.graph_signature.input_specs
              if spec.kind == torch.export.graph_signature.InputKind.USER_INPUT]
    if len(inputs) != 1:
        raise UserError(f"{path}: the program takes {len(inputs)} inputs; a classifier of one "
                        "image batch is expected")
    shape = next(node.meta["val"].shape for node in program.graph.nodes
                 if node.op == "placeholder" and node.name == inputs[0].arg.name)
    if len(shape) != 4 or shape[1] != 3:
        raise UserError(f"{path}: the program's input is {tuple(shape)}; [N, 3, H, W] expected")
    if not isinstance(shape[0], torch.SymInt):
        raise UserError(f"{path}: the program was exported for batches of {shape[0]} only; "
                        "export it with a dynamic batch dimension (dynamic_shapes="
                        "({0: torch.export.Dim('batch')},))")
    return torch.export.unflatten(program), (int(shape[2]), int(shape[3]))


def parse_floats(text, flag):
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise UserError(f"{flag} must be three numbers, one per channel (e.g. "
                        f"0.485,0.456,0.406), got {text!r}")
    if flag == "--std" and min(values) <= 0:
        raise UserError(f"--std must be > 0 per channel, got {text}")
    return values


def set_identity(name, size):
    """What a model's name records of an image set: a built-in set's name; a set from files,
    its content digest at ``size`` (so that other images, or the same images by another
    path, are told apart or not by what they are)."""
    if name is None or not file_sets.is_file_set(name):
        return name
    images = file_sets.file_set(name, size)
    return f"{name.split(':')[0]}:{images.digest(range(len(images)))}"


def spec_name(base, parts):
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
    return f"{re.sub(r'[^A-Za-z0-9.+-]', '-', base)}-{digest[:10]}"


def probe(model, spec):
    """Check on two blank images, before any work, that ``model`` gives [N, classes] logits
    (a UserError otherwise); return why its classifier's input is not the penultimate
    feature, or None when it is."""
    kept = {}
    try:
        module = model.get_submodule(spec.classifier)
    except AttributeError:
        raise UserError(f"--penultimate: the model has no module {spec.classifier!r}") from None
    handle = module.register_forward_pre_hook(lambda m, inputs: kept.update(x=inputs[0]))
    try:
        with torch.no_grad():
            logits = model(torch.zeros(2, 3, spec.image_size, spec.image_size))
    except Exception as e:  # whatever the network raises on input of this size
        raise UserError(f"{spec.command}: the model fails on [2, 3, {spec.image_size}, "
                        f"{spec.image_size}] input ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''}); check --image-size"
                        ) from None
    finally:
        handle.remove()
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (2, spec.num_classes):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise UserError(f"{spec.command}: the model's output is {shape} for 2 images, not "
                        f"[N, {spec.num_classes}] logits; check --num-classes")
    weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
    if bias is None and isinstance(weight, torch.Tensor):
        bias = torch.zeros(weight.shape[0])         # nn.Linear(..., bias=False)
    feature = kept.get("x")
    fits = (isinstance(weight, torch.Tensor) and isinstance(bias, torch.Tensor)
            and feature is not None and feature.dim() == 2
            and feature.shape[1] == weight.shape[1]
            and torch.allclose(feature @ weight.T + bias, logits, rtol=1e-4, atol=1e-4))
    if not fits:
        return (f"the input of {spec.classifier!r} does not give the logits through its "
                "weight and bias")
    return None


def architecture(arch, exported, image_size):
    """(label, builder(classes), key renames, family layers or None, input size, kind, name)
    of ``--arch ARCH`` or of the exported program at ``exported``."""
    if exported:
        _, size = load_exported(exported)       # checked now; each build loads its own copy
        if image_size is not None and image_size != size[0] or size[0] != size[1]:
            raise UserError(f"{exported}: the program takes {size[0]}x{size[1]} images"
                            + (f", not --image-size {image_size}" if image_size else
                               "; square images are expected"))
        return (f"exported {exported.name}", lambda classes: load_exported(exported)[0], (), (),
                size[0], "exported", exported.stem)
    own = own_architecture(arch)
    kind = "own" if own else "torchvision"
    image_size = image_size or DEFAULT_IMAGE_SIZE[kind]
    label, builder, rename, family = own or (arch, torchvision_builder(arch, image_size), (),
                                             None)
    return label, builder, rename, family, image_size, kind, arch


def from_files(arch=None, weights=None, exported=None, num_classes=None, mean=None, std=None,
               image_size=None, penultimate=None, layers=None, in_dataset=None,
               train_dataset=None):
    """The ModelSpec of a model from files, registered under its name (see the module
    docstring); every check is made here, before any work."""
    if (arch is None) == (exported is None):
        raise UserError("give either --arch ARCH with --weights FILE, or --model FILE.pt2")
    if arch is not None and weights is None:
        raise UserError(f"--arch {arch} needs --weights FILE (a state_dict)")
    if exported is not None and weights is not None:
        raise UserError("--model FILE.pt2 holds its weights: leave --weights out")
    path = Path(weights if weights is not None else exported)
    if not path.is_file():
        raise UserError(f"model file {path} not found")
    classes = 10 if num_classes is None else num_classes
    if classes < 2:
        raise UserError(f"--num-classes must be at least 2, got {classes}")
    mean = IMAGENET_MEAN if mean is None else parse_floats(mean, "--mean")
    std = IMAGENET_STD if std is None else parse_floats(std, "--std")
    if in_dataset is None:
        if classes not in (10, 100):
            raise UserError(f"a model of {classes} classes needs --in-dataset (its test set: "
                            "folder:PATH or npz:PATH)")
        in_dataset = f"CIFAR-{classes}"
    label, builder, rename, family, image_size, kind, arch_name = architecture(
        arch, exported and path, image_size)
    if image_size < 8:
        raise UserError(f"--image-size must be at least 8, got {image_size}")
    model = builder(classes)
    classifier = penultimate or last_linear(model)
    if classifier is None:
        raise UserError(f"{label}: no nn.Linear found; name the classifier layer with "
                        "--penultimate MODULE")
    if layers:
        feature_layers = named_layers(layers, model)
    else:
        feature_layers = family if family is not None else default_layers(arch, model)
    flags = (["--model", str(path.resolve())] if exported is not None else
             ["--arch", arch, "--weights", str(path.resolve())])
    flags += ["--num-classes", str(classes), "--mean", ",".join(map(str, mean)),
              "--std", ",".join(map(str, std)), "--image-size", str(image_size),
              "--penultimate", classifier, "--in-dataset", in_dataset]
    if layers:
        flags += ["--layers", layers]
    if train_dataset:
        flags += ["--train-dataset", train_dataset]
    sha = registry.sha256_of(path)
    name = spec_name(arch_name, [sha, kind, arch_name, classes, mean, std, image_size,
                                 classifier, [(f.name, f.module, f.relu) for f in feature_layers],
                                 set_identity(in_dataset, image_size),
                                 set_identity(train_dataset, image_size)])
    spec = ModelSpec(name, label, in_dataset, lambda: builder(classes), tuple(mean), tuple(std),
                     f"your file {path} (sha256 {sha})",
                     rename=(("module.", ""), *rename), feature_layers=feature_layers,
                     laood_layers=0, classes=classes, classifier=classifier,
                     image_size=image_size, weights_file=path, exported=exported is not None,
                     train_dataset=train_dataset, command=shlex.join(flags),
                     arch=None if exported is not None else arch)
    problem = probe(registry.build_from(spec, path), spec)
    if problem and penultimate:
        raise UserError(f"--penultimate {penultimate}: {problem}, so it is not the "
                        "penultimate feature")
    if problem:
        print(f"Note: {label}: {problem}, so the penultimate feature is not known: detectors "
              "of the logits (odin, msp, energy, maxlogit, gen) and laood run; the others "
              "need --penultimate MODULE")
        spec = replace(spec, classifier=None)
    return registry.register(spec)


def with_sets(spec, in_dataset=None, train_dataset=None):
    """A registry model tested or fitted on other image sets (--in-dataset, --train-dataset):
    the same weights under a name of its own, registered."""
    if (in_dataset is None or in_dataset == spec.in_dataset) and train_dataset is None:
        return spec
    registry.require_weights(spec)
    same_test_set = in_dataset is None or in_dataset == spec.in_dataset
    in_dataset = in_dataset or spec.in_dataset
    name = spec_name(spec.name, [set_identity(in_dataset, spec.image_size),
                                 set_identity(train_dataset, spec.image_size)])
    flags = ["--nn", spec.name] + (["--in-dataset", in_dataset] if in_dataset else []) + (
        ["--train-dataset", train_dataset] if train_dataset else [])
    return registry.register(replace(spec, name=name, in_dataset=in_dataset,
                                     classes=spec.num_classes, weights_file=spec.path,
                                     train_dataset=train_dataset, command=shlex.join(flags),
                                     registry_name=spec.name if same_test_set else None))


def retrained_flags(spec, weights):
    """The model flags of ``spec``'s network with the retrained state_dict ``weights`` (the
    co-training's checkpoints): the same architecture, classes, normalisation, input size,
    classifier, layers and image sets."""
    if spec.arch is None:
        raise UserError(f"{spec.name} is an exported program ({spec.label}): it cannot be "
                        "retrained here; give its network as --arch ARCH --weights FILE")
    flags = ["--arch", spec.arch, "--weights", str(Path(weights).resolve()),
             "--num-classes", str(spec.num_classes), "--mean", ",".join(map(str, spec.mean)),
             "--std", ",".join(map(str, spec.std)), "--image-size", str(spec.image_size),
             "--in-dataset", spec.in_dataset]
    if spec.classifier is not None:
        flags += ["--penultimate", spec.classifier]
    given = shlex.split(spec.command)
    if "--layers" in given:
        flags += ["--layers", given[given.index("--layers") + 1]]
    if spec.train_dataset:
        flags += ["--train-dataset", spec.train_dataset]
    return flags
