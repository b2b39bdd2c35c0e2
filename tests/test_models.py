"""Model registry and loading: safe unpickling, clear errors, checkpoints that fit."""
import pytest
import torch

import models
from densenet import DenseNet3
from paths import UserError
from wideresnet import WideResNet


def load_from(path, name="densenet10"):
    """The registry entry ``name`` with the weights of another file."""
    return models.build_from(models.get_spec(name), path)


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
    with pytest.raises(UserError, match="does not fit densenet10.*size mismatch"):
        load_from(bad)


def test_unknown_pickle_is_refused_with_conversion_hint(tmp_path):
    path = tmp_path / "net.pth"
    torch.save(DenseNet3(16, 10), path)                   # a full pickle, like the release's
    with pytest.raises(UserError, match="not a known ODIN release file.*convert_checkpoint"):
        models.read_checkpoint(path)


def test_an_allowlisted_pickle_loads_and_a_one_byte_change_is_refused(tmp_path, monkeypatch):
    net = DenseNet3(16, 10)
    path = tmp_path / "release.pth"
    torch.save(net, path)                                   # a full pickle, like the release's
    monkeypatch.setitem(models.RELEASE_PICKLES, models.sha256_of(path), "test pickle")
    loaded = models.read_checkpoint(path)
    assert isinstance(loaded, DenseNet3) and torch.equal(loaded.fc.weight, net.fc.weight)

    data = bytearray(path.read_bytes())
    offset = data.index(net.fc.bias.detach().numpy().tobytes())   # a byte of the fc bias
    data[offset] ^= 1
    changed = tmp_path / "changed.pth"
    changed.write_bytes(bytes(data))
    with pytest.raises(UserError, match="is a full pickle .* not a known ODIN release file"):
        models.read_checkpoint(changed)


def test_corrupt_and_missing_files(tmp_path, nothing_installed):
    path = tmp_path / "junk.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a readable PyTorch checkpoint"):
        models.read_checkpoint(path)
    with pytest.raises(UserError, match="densenet10.pth not found.*get_data.sh.*dropbox"):
        models.load_model("densenet10")                     # absent from the empty models/
    with pytest.raises(UserError, match="unknown model 'densenet1000'"):
        models.get_spec("densenet1000")


def test_convert_checkpoint_roundtrip(tmp_path):
    import convert_checkpoint
    net = DenseNet3(100, 10)
    torch.save(net, tmp_path / "pickle.pth")
    assert convert_checkpoint.main([str(tmp_path / "pickle.pth"), str(tmp_path / "sd.pt")]) == 0
    loaded = load_from(tmp_path / "sd.pt")
    assert torch.equal(loaded.fc.weight, net.fc.weight)


@pytest.mark.parametrize("name", [n for n, s in models.MODELS.items()
                                  if not s.name.startswith(("densenet100", "wideresnet"))])
def test_every_mirrored_checkpoint_loads(installed, name):
    import fetch
    from assets import ITEMS_BY_NAME
    fetch.ensure(ITEMS_BY_NAME[name], quiet=True)
    model, spec = models.load_model(name)
    assert model.fc.out_features == spec.num_classes
    assert not model.training and not any(p.requires_grad for p in model.parameters())
