"""Model registry and loading: safe unpickling, clear errors, checkpoints that fit."""
import pytest
import torch

import models
from densenet import DenseNet3
from paths import UserError
from wideresnet import WideResNet


def spec_at(path, name="densenet10"):
    """The registry entry ``name`` pointed at another file."""
    base = models.get_spec(name)
    return models.ModelSpec(base.name, base.label, base.in_dataset, base.build, base.mean,
                            base.std, str(path), base.origin, base.rename)


def load_from(spec):
    model = spec.build()
    models.load_weights(model, models.extract_state_dict(models.read_checkpoint(spec.path), spec),
                        spec)
    return model


def test_release_layer_counts():
    net = DenseNet3(100, 10)
    assert sum(p.numel() for p in net.parameters()) == 769162   # densenet10.pth
    assert len(net.block1.layer) == 16 and net.in_planes == 342
    wrn = WideResNet(28, 10, widen_factor=10)
    assert len(wrn.block1.layer) == 4 and wrn.nChannels == 640


def test_state_dict_loads_and_shape_mismatch_is_explained(tmp_path):
    good = tmp_path / "good.pt"
    torch.save({"state_dict": DenseNet3(100, 10).state_dict()}, good)
    load_from(spec_at(good))
    bad = tmp_path / "bad.pt"
    torch.save(DenseNet3(100, 100).state_dict(), bad)     # CIFAR-100 head
    with pytest.raises(UserError, match="does not fit densenet10.*size mismatch"):
        load_from(spec_at(bad))


def test_unknown_pickle_is_refused_with_conversion_hint(tmp_path):
    path = tmp_path / "net.pth"
    torch.save(DenseNet3(16, 10), path)                   # a full pickle, like the release's
    with pytest.raises(UserError, match="not a known ODIN release file.*convert_checkpoint"):
        models.read_checkpoint(path)


def test_corrupt_and_missing_files(tmp_path):
    path = tmp_path / "junk.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a readable PyTorch checkpoint"):
        models.read_checkpoint(path)
    with pytest.raises(UserError, match="not found.*get_data.sh.*dropbox"):
        models.load_model("densenet100")   # the release file is not on this machine
    with pytest.raises(UserError, match="unknown model 'densenet1000'"):
        models.get_spec("densenet1000")


def test_convert_checkpoint_roundtrip(tmp_path):
    import convert_checkpoint
    net = DenseNet3(100, 10)
    torch.save(net, tmp_path / "pickle.pth")
    assert convert_checkpoint.main([str(tmp_path / "pickle.pth"), str(tmp_path / "sd.pt")]) == 0
    loaded = load_from(spec_at(tmp_path / "sd.pt"))
    assert torch.equal(loaded.fc.weight, net.fc.weight)


@pytest.mark.parametrize("name", [n for n, s in models.MODELS.items()
                                  if not s.name.startswith(("densenet100", "wideresnet"))])
def test_every_mirrored_checkpoint_loads(installed, name):
    import fetch
    fetch.ensure(fetch.ITEMS_BY_NAME[name], quiet=True)
    model, spec = models.load_model(name)
    assert model.fc.out_features == spec.num_classes
    assert not model.training and not any(p.requires_grad for p in model.parameters())
