"""The shared feature pass: hooks give what a manual forward gives, batches change nothing,
the MSP detector is the ODIN run's baseline column, and the feature cache is never stale,
corrupt or half-written."""
import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from oodbench import detectors
from oodbench.networks.cifar_resnet import CifarResNet
from oodbench.networks.densenet import DenseNet3
from oodbench.networks.registry import MODELS, get_spec
from oodbench.scoring import cache, features, odin_scoring

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def random_net(build, seed=0):
    """A network with seeded random weights and non-trivial BN statistics, eval mode."""
    torch.manual_seed(seed)
    net = build()
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return net.eval().requires_grad_(False)


def images(count, seed=0):
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=generator)
    return TensorDataset(pixels, torch.arange(count) % 10)


def pooled(x):
    return x.mean(dim=(2, 3)).numpy()


def manual_densenet(net, x):
    """Lee et al.'s feature list of a DenseNet-BC, written out from its forward."""
    stem = net.conv1(x)
    trans1 = net.trans1(net.block1(stem))
    trans2 = net.trans2(net.block2(trans1))
    last = net.relu(net.bn1(net.block3(trans2)))
    penultimate = F.avg_pool2d(last, 8).flatten(1)
    return ({"conv1": pooled(stem), "trans1": pooled(trans1), "trans2": pooled(trans2),
             "block3": pooled(last)}, penultimate.numpy(), net.fc(penultimate).numpy())


def manual_resnet(net, x):
    stem = F.relu(net.bn1(net.conv1(x)))
    layer1 = net.layer1(stem)
    layer2 = net.layer2(layer1)
    layer3 = net.layer3(layer2)
    penultimate = layer3.mean(dim=(2, 3))
    return ({"stem": pooled(stem), "layer1": pooled(layer1), "layer2": pooled(layer2),
             "layer3": pooled(layer3)}, penultimate.numpy(), net.fc(penultimate).numpy())


class Spec:
    """The parts of a ModelSpec that the feature pass reads."""
    def __init__(self, model_name):
        self.feature_layers = get_spec(model_name).feature_layers
        self.classifier = get_spec(model_name).classifier
        self.mean, self.std = MEAN, STD


@pytest.mark.parametrize("model_name, build, manual", [
    ("densenet10", lambda: DenseNet3(100, 10), manual_densenet),
    ("resnet20", lambda: CifarResNet(20, 10, "A"), manual_resnet)])
def test_hook_features_equal_a_manual_forward(model_name, build, manual):
    net, data = random_net(build), images(6)
    found = features.extract(net, Spec(model_name), data, "cpu", batch_size=4)
    normalise, _ = odin_scoring.normaliser(MEAN, STD, "cpu")
    with torch.no_grad():
        layers, penultimate, logits = manual(net, normalise(data.tensors[0]))
    assert list(found.layers) == [layer.name for layer in get_spec(model_name).feature_layers]
    for name, values in layers.items():
        np.testing.assert_allclose(found.layers[name], values, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(found.penultimate, penultimate, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(found.logits, logits, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(found.labels, np.arange(6) % 10)
    # the last declared layer, pooled, is the classifier's input
    np.testing.assert_allclose(found.layers[list(layers)[-1]], found.penultimate, atol=1e-6)


def test_every_model_declares_layers_that_exist():
    for spec in MODELS.values():
        net = spec.build()
        for layer in spec.feature_layers:
            net.get_submodule(layer.module)
        assert isinstance(net.get_submodule(spec.classifier), torch.nn.Linear)


def test_features_do_not_depend_on_the_batch_size():
    net, data = random_net(lambda: CifarResNet(20, 10, "A")), images(10)
    one = features.extract(net, Spec("resnet20"), data, "cpu", batch_size=3)
    other = features.extract(net, Spec("resnet20"), data, "cpu", batch_size=10)
    for name, values in one.arrays().items():
        np.testing.assert_allclose(values, other.arrays()[name], rtol=1e-5, atol=1e-6)


def test_the_msp_detector_is_the_odin_runs_baseline_column():
    net, data = random_net(lambda: CifarResNet(20, 10, "A")), images(8)
    found = features.extract(net, Spec("resnet20"), data, "cpu", batch_size=8)
    odin = odin_scoring.score_dataset(net, data, MEAN, STD, 1000, 0.0014, "cpu", batch_size=8)
    msp = detectors.make("msp").fit(None, None).score(found)
    np.testing.assert_array_equal(msp, odin.baseline)
    assert not np.allclose(msp, odin.odin)   # the test can tell the two columns apart


# ---- the feature cache ----

def key_parts(**changed):
    spec = get_spec("densenet10")
    parts = dict(spec=spec, weights="w", images="i", device="cpu")
    parts.update(changed)
    return features.feature_key(**parts)


FEWER_LAYERS = dataclasses.replace(get_spec("densenet10"),
                                   feature_layers=get_spec("densenet10").feature_layers[:3])


@pytest.mark.parametrize("part, other", [("weights", "w2"), ("images", "i2"),
                                         ("device", "cuda"), ("spec", get_spec("resnet20")),
                                         ("spec", get_spec("dice_densenet10")),
                                         ("spec", FEWER_LAYERS)])
def test_every_part_changes_the_feature_key(part, other):
    assert key_parts(**{part: other}) != key_parts()


def test_the_feature_version_is_in_the_key(monkeypatch):
    key = key_parts()
    monkeypatch.setattr(features, "FEATURE_VERSION", features.FEATURE_VERSION + 1)
    assert key_parts() != key


@pytest.fixture
def counted_net():
    net = random_net(lambda: CifarResNet(20, 10, "A"))
    loads = []

    def get_model():
        loads.append(1)
        return net
    return get_model, loads


def test_feature_cache_round_trip_and_range(counted_net, capsys):
    get_model, loads = counted_net
    data, spec = images(12), Spec("resnet20")
    first, reused = features.features_of(get_model, spec, "fk", data, range(2, 12), "cpu")
    assert not reused and len(loads) == 1 and len(first) == 10
    part, reused = features.features_of(get_model, spec, "fk", data, range(4, 8), "cpu")
    assert reused and len(loads) == 1 and "reused from" in capsys.readouterr().out
    for name, values in part.arrays().items():
        np.testing.assert_array_equal(values, first.arrays()[name][2:6])


@pytest.mark.parametrize("damage", ["truncate", "change"])
def test_a_corrupt_feature_entry_is_recomputed_and_said_so(damage, counted_net, capsys):
    get_model, loads = counted_net
    data, spec = images(4), Spec("resnet20")
    first, _ = features.features_of(get_model, spec, "fk", data, range(4), "cpu")
    path = cache.cache_dir() / "fk.npz"
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:1000])
    else:
        with np.load(path) as npz:
            arrays = dict(npz)
        arrays["penultimate"] = arrays["penultimate"] + 1     # checksum no longer matches
        np.savez(path, **arrays)
    again, reused = features.features_of(get_model, spec, "fk", data, range(4), "cpu")
    out = capsys.readouterr().out
    assert not reused and len(loads) == 2 and "recomputing" in out
    np.testing.assert_array_equal(again.penultimate, first.penultimate)
    _, reused = features.features_of(get_model, spec, "fk", data, range(4), "cpu")
    assert reused                                          # the entry was replaced


def test_a_write_stopped_half_way_leaves_no_entry(counted_net, monkeypatch):
    get_model, loads = counted_net
    real_savez = np.savez

    def stopped(path, **arrays):
        real_savez(path, **dict(list(arrays.items())[:2]))    # part of the file written,
        raise KeyboardInterrupt                                 # then the user stops it
    monkeypatch.setattr(np, "savez", stopped)
    with pytest.raises(KeyboardInterrupt):
        features.features_of(get_model, Spec("resnet20"), "fk", images(4), range(4), "cpu")
    monkeypatch.setattr(np, "savez", real_savez)
    assert not list(cache.cache_dir().iterdir())
    _, reused = features.features_of(get_model, Spec("resnet20"), "fk", images(4), range(4),
                                     "cpu")
    assert not reused and len(loads) == 2


def test_a_refresh_recomputes_but_keeps_a_larger_entry(counted_net):
    get_model, loads = counted_net
    data, spec = images(8), Spec("resnet20")
    features.features_of(get_model, spec, "fk", data, range(8), "cpu")
    _, reused = features.features_of(get_model, spec, "fk", data, range(2, 5), "cpu",
                                     refresh=True)
    assert not reused and len(loads) == 2
    _, reused = features.features_of(get_model, spec, "fk", data, range(0, 8), "cpu")
    assert reused and len(loads) == 2
