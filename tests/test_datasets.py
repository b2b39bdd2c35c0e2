"""Datasets: seeded noise, the 28x28 -> 32x32 conversion, rebuilt TIN sets, folder checks."""
import gzip

import numpy as np
import pytest
import torch
from PIL import Image

from oodbench.assets import rebuild
from oodbench.assets.catalog import REBUILT
from oodbench.commands import table
from oodbench.core.paths import UserError
from oodbench.datasets import greysets, image_sets


def test_noise_is_seeded_per_image_and_in_range():
    gauss = image_sets.NoiseImages("Gaussian", seed=0)
    assert len(gauss) == 10000
    a, b = gauss[1234][0], image_sets.NoiseImages("Gaussian", seed=0)[1234][0]
    assert torch.equal(a, b) and a.shape == (3, 32, 32) and a.dtype == torch.float32
    assert not torch.equal(a, image_sets.NoiseImages("Gaussian", seed=1)[1234][0])
    assert a.min() >= 0 and a.max() <= 1 and (a == 0).any() and (a == 1).any()  # clipped
    uni = image_sets.NoiseImages("Uniform", seed=0)[5][0]
    assert 0 <= uni.min() and uni.max() < 1 and abs(uni.mean().item() - 0.5) < 0.05


def test_grey28_to_rgb32_pads_and_replicates():
    digits = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    out = image_sets.grey28_to_rgb32(digits)
    assert out.shape == (2, 3, 32, 32) and out.dtype == torch.uint8
    assert torch.equal(out[:, 0], out[:, 2])
    assert torch.equal(out[1, 1, 2:30, 2:30], torch.from_numpy(digits[1]))
    assert out[:, :, :2].sum() == 0 and out[:, :, :, 30:].sum() == 0


def test_idx_reader_rejects_wrong_files(tmp_path):
    path = tmp_path / "x.gz"
    with gzip.open(path, "wb") as f:
        f.write(np.array([2051, 2, 28, 28], ">u4").tobytes() + b"\0" * 10)
    with pytest.raises(UserError, match="not an idx3 image file"):
        image_sets.read_idx_images(path)


def test_image_folder_errors(tmp_path):
    with pytest.raises(UserError, match="no images found"):
        image_sets.image_folder(tmp_path)
    (tmp_path / "c").mkdir()
    Image.new("RGB", (64, 64)).save(tmp_path / "c" / "0.png")
    with pytest.raises(UserError, match="expected 32x32"):
        image_sets.image_folder(tmp_path)
    (tmp_path / "c" / "0.png").write_bytes(b"broken")
    with pytest.raises(UserError, match="unreadable image"):
        image_sets.image_folder(tmp_path)


def test_unknown_and_unavailable_sets(nothing_installed):
    with pytest.raises(UserError, match="unknown OOD dataset 'SVHN'"):
        image_sets.get_ood_set("SVHN")
    with pytest.raises(UserError, match="Imagenet_resize is not available here: get it from "
                       r"https://\S+ \(md5 0f9ff11d45babf2eff5fe12281d1ac31\)"):
        image_sets.ood_dataset("Imagenet_resize")
    with pytest.raises(UserError, match="cifar100 is not available here.*"
                       "eb9058c3a382ffc7106e4002c42a8d85"):
        image_sets.cifar("CIFAR-100")


def test_loading_a_rebuilt_set_never_builds_it(nothing_installed, monkeypatch):
    monkeypatch.setattr(rebuild, "build", lambda name: pytest.fail("built while loading"))
    for name in rebuild.RECIPES:
        load = greysets.ood_set if name in rebuild.GREY else image_sets.ood_dataset
        with pytest.raises(UserError, match=f"{name} is not built here"):
            load(name)
    assert not list((nothing_installed / "data").iterdir())


def test_crop_corners_follow_the_documented_draw():
    """README: the corner of image i is row i of default_rng(0).integers(0, 33, (10000, 2))."""
    corners = rebuild.crop_corners(10000)
    documented = np.random.default_rng(0).integers(0, 33, size=(10000, 2))
    assert np.array_equal(corners, documented)
    assert corners.min() == 0 and corners.max() == 32


def test_tin_recipes():
    image = Image.fromarray(np.arange(64 * 64 * 3, dtype=np.uint32).reshape(64, 64, 3)
                            .astype(np.uint8))
    crop = np.asarray(rebuild.transform(image, "TIN_crop", (3, 5)))   # (row, col)
    assert np.array_equal(crop, np.asarray(image)[3:35, 5:37])
    small = np.asarray(rebuild.transform(image, "TIN_resize", None)).astype(int)
    blocks = np.asarray(image).astype(float).reshape(32, 2, 32, 2, 3).mean(axis=(1, 3))
    assert np.abs(small - blocks).max() <= 1            # a 2x2 box mean, rounded
    lanczos = np.asarray(rebuild.transform(image, "TIN_lanczos", None))
    assert np.array_equal(lanczos, np.asarray(image.resize((32, 32), Image.LANCZOS)))


def test_built_sets_hold_the_recipe_of_each_source_image(installed):
    """Image i of TIN_crop / TIN_resize / TIN_val is the recipe applied to source image i."""
    corners = rebuild.crop_corners(10000)
    for name in (r for r in rebuild.RECIPES if r not in rebuild.GREY):
        built = image_sets.ood_dataset(name)
        sources = rebuild.tin_images(REBUILT[name])
        for i in (0, 1, 4321, 9999):
            with Image.open(sources[i]) as source:
                source = source.convert("RGB")
            expected = np.asarray(source)
            if name == "TIN_crop":
                top, left = corners[i]
                expected = expected[top:top + 32, left:left + 32]
            elif name == "TIN_lanczos":
                expected = np.asarray(source.resize((32, 32), Image.LANCZOS))
            else:
                expected = expected.reshape(32, 2, 32, 2, 3).mean(axis=(1, 3))
            got = built[i][0].permute(1, 2, 0).numpy().astype(float)
            assert np.abs(got - expected).max() <= 1, (name, i)


def test_real_sets_have_release_sizes_and_order(installed):
    isun = image_sets.ood_dataset("iSUN")
    assert len(isun) == 8925
    # ImageFolder order is string order of file names, as in the release: 0, 1, 10, 100, ...
    assert [p.rsplit("/", 1)[1] for p, _ in isun.samples[:4]] == \
        ["0.jpeg", "1.jpeg", "10.jpeg", "100.jpeg"]
    cifar = image_sets.cifar("CIFAR-10")
    assert len(cifar) == 10000 and np.bincount(cifar.labels).tolist() == [1000] * 10
    for name in ("MNIST", "FashionMNIST", "TIN_crop", "TIN_resize"):
        data = image_sets.ood_dataset(name)
        image, _ = data[0]
        assert len(data) == 10000 and image.shape == (3, 32, 32) and image.dtype == torch.uint8


def test_grey_sets_hold_each_source_image_grey_at_28(installed):
    """Image i of a grey set is source image i, PIL convert('L') then a bilinear resize."""
    cifar = image_sets.cifar("CIFAR-10")
    for name in rebuild.GREY:
        built, _ = greysets.ood_set(name)
        for i in (0, 4321, 9999):
            if name == "CIFAR10_grey":
                source = Image.fromarray(cifar[i][0].permute(1, 2, 0).numpy())
            else:
                source = Image.open(rebuild.tin_images(REBUILT[name])[i])
            expected = np.asarray(source.convert("L").resize((28, 28), Image.BILINEAR))
            assert np.array_equal(built[i, 0].numpy(), expected), (name, i)


def test_pure_colour_images_are_one_seeded_colour_each():
    """LA-OOD's pure-colour set: every pixel of image i the same colour, each channel
    floor(255 u) / 255 (the authors' uint8 cast of U[0, 1) * 255: 0..254), seeded per image."""
    images = image_sets.ood_dataset("PureColour", seed=3)
    assert len(images) == 10000
    colours = []
    for i in (0, 1, 777):
        image, _ = images[i]
        assert image.shape == (3, 32, 32)
        colour = image[:, 0, 0]
        assert torch.equal(image, colour[:, None, None].expand(3, 32, 32))
        levels = colour * 255
        assert torch.allclose(levels, levels.round(), atol=1e-4) and levels.max() <= 254
        colours.append(colour)
        assert torch.equal(image_sets.ood_dataset("PureColour", seed=3)[i][0], image)
    assert not torch.equal(colours[0], colours[1])
    assert not torch.equal(image_sets.ood_dataset("PureColour", seed=4)[0][0], colours[0])
    assert "PureColour" not in table.tested_sets() and "TIN_lanczos" not in table.tested_sets()
