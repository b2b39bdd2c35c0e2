"""Model registry and loading: safe unpickling, clear errors, checkpoints that fit."""
import pytest
import torch

from oodbench.core.paths import UserError
from oodbench.networks import registry
from oodbench.networks.densenet import DenseNet3
from oodbench.networks.wideresnet import WideResNet


def load_from(path, name="densenet10"):
    """The registry entry ``name`` with the weights of another file."""
    return registry.build_from(registry.get_spec(name), path)


def test_release_layer_counts():
    net = DenseNet3(100, 10)
    assert sum(p.numel() for p in net.parameters()) == 769162   # densenet10.pth
    assert len(net.block1.layer) == 16 and net.in_planes == 342
    wrn = WideResNet(28, 10, widen_factor=10)
    assert len(wrn.block1.layer) == 4 and wrn.nChannels == 640


def test_state_dict_loads_and_shape_mismatch_is_explained(tmp_path):
    good = tmp_path / "good.pt"
    torch.save({"state_dict": DenseNet3(100, 10).state_dict()}, good)
    load_from(good)
    bad = tmp_path / "bad.pt"
    torch.save(DenseNet3(100, 100).state_dict(), bad)     # CIFAR-100 head
    with pytest.raises(UserError, match=r"does not fit densenet10.*wrongly shaped 2 key\(s\): "
                                        r"fc.weight \(100, 342\) \(the model's: \(10, 342\)\)"):
        load_from(bad)


def test_unknown_pickle_is_refused_with_conversion_hint(tmp_path):
    path = tmp_path / "net.pth"
    torch.save(DenseNet3(16, 10), path)                   # a full pickle, like the release's
    with pytest.raises(UserError, match="not a known ODIN release file.*convert_checkpoint"):
        registry.read_checkpoint(path)


def test_an_allowlisted_pickle_loads_and_a_one_byte_change_is_refused(tmp_path, monkeypatch):
    net = DenseNet3(16, 10)
    path = tmp_path / "release.pth"
    torch.save(net, path)                                   # a full pickle, like the release's
    monkeypatch.setitem(registry.RELEASE_PICKLES, registry.sha256_of(path), "test pickle")
    loaded = registry.read_checkpoint(path)
    assert isinstance(loaded, DenseNet3) and torch.equal(loaded.fc.weight, net.fc.weight)

    data = bytearray(path.read_bytes())
    offset = data.index(net.fc.bias.detach().numpy().tobytes())   # a byte of the fc bias
    data[offset] ^= 1
    changed = tmp_path / "changed.pth"
    changed.write_bytes(bytes(data))
    with pytest.raises(UserError, match="is a full pickle .* not a known ODIN release file"):
        registry.read_checkpoint(changed)


def test_corrupt_and_missing_files(tmp_path, nothing_installed):
    path = tmp_path / "junk.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a readable PyTorch checkpoint"):
        registry.read_checkpoint(path)
    with pytest.raises(UserError, match="densenet10.pth not found.*get_data.sh.*dropbox"):
        registry.load_model("densenet10")                     # absent from the empty models/
    with pytest.raises(UserError, match="unknown model 'densenet1000'"):
        registry.get_spec("densenet1000")


def test_convert_checkpoint_roundtrip(tmp_path):
    from oodbench.commands import convert_checkpoint
    net = DenseNet3(100, 10)
    torch.save(net, tmp_path / "pickle.pth")
    assert convert_checkpoint.main([str(tmp_path / "pickle.pth"), str(tmp_path / "sd.pt")]) == 0
    loaded = load_from(tmp_path / "sd.pt")
    assert torch.equal(loaded.fc.weight, net.fc.weight)


@pytest.mark.parametrize("name", [n for n, s in registry.MODELS.items()
                                  if not s.name.startswith(("densenet100", "wideresnet"))])
def test_every_mirrored_checkpoint_loads(installed, name):
    from oodbench.assets import fetch
    from oodbench.assets.catalog import ITEMS_BY_NAME
    fetch.ensure(ITEMS_BY_NAME[name], quiet=True)
    model, spec = registry.load_model(name)
    assert model.fc.out_features == spec.num_classes
    assert not model.training and not any(p.requires_grad for p in model.parameters())


def release_style_pickle(path, monkeypatch):
    """A full pickle whose classes are named as the release's are: densenet.DenseNet3 and so
    on, top-level modules that exist nowhere but in the release's code."""
    from oodbench.networks import densenet
    for value in vars(densenet).values():
        if isinstance(value, type) and value.__module__ == densenet.__name__:
            monkeypatch.setattr(value, "__module__", "densenet")
    with monkeypatch.context() as m:
        m.setitem(__import__("sys").modules, "densenet", densenet)
        net = DenseNet3(16, 10)
        torch.save(net, path)
    monkeypatch.undo()
    return net


def test_release_pickles_unpickle_by_their_module_names(tmp_path, monkeypatch):
    """The release pickles name top-level modules densenet and wideresnet: those names mean
    this package's modules while the registry or convert_checkpoint unpickles, and nothing
    else afterwards."""
    import sys
    path = tmp_path / "release.pth"
    net = release_style_pickle(path, monkeypatch)
    assert "densenet" not in sys.modules
    with pytest.raises(ModuleNotFoundError, match="densenet"):
        torch.load(path, weights_only=False)                 # no such top-level module
    monkeypatch.setitem(registry.RELEASE_PICKLES, registry.sha256_of(path), "test pickle")
    loaded = registry.read_checkpoint(path)
    assert isinstance(loaded, DenseNet3) and torch.equal(loaded.fc.weight, net.fc.weight)
    assert "densenet" not in sys.modules and "wideresnet" not in sys.modules

    from oodbench.commands import convert_checkpoint
    assert convert_checkpoint.main([str(path), str(tmp_path / "sd.pt")]) == 0
    state = torch.load(tmp_path / "sd.pt", weights_only=True)
    assert torch.equal(state["fc.weight"], net.fc.weight)
    assert "densenet" not in sys.modules
