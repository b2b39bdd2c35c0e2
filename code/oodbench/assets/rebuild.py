"""Rebuild the paper's Tiny-ImageNet OOD sets from the original test images (layer 1: a step
of setup, run by code/get_data.py; loading a dataset never builds one).

The ODIN release's ``Imagenet`` (crop) and ``Imagenet_resize`` sets were made
from the 10,000 Tiny-ImageNet test images (64x64) by taking a random 32x32
crop of each, or by downsampling each to 32x32; the crop positions, filter and
JPEG settings of those files are not known. These rebuilt sets follow the same
recipe, deterministically, and are named differently (``TIN_crop``,
``TIN_resize``) so they are never mistaken for the released files:

* images in their original order ``test_0 .. test_9999``, greyscale ones
  (189) converted to RGB by replicating the channel;
* crop: the top-left corner of image i is the i-th pair drawn from
  ``numpy.random.default_rng(0).integers(0, 33, size=(10000, 2))`` (row, col);
* resize: PIL's BOX filter, which for 64 -> 32 is the exact mean of each 2x2 block;
* saved as lossless PNG, ``<set>/test/<i:05d>.png``, so ImageFolder order is index order.

``TIN_lanczos`` is LA-OOD's Tiny-ImageNet: the same test images resized with PIL's LANCZOS
filter, as the LA-OOD authors' generate_datasets.py (torchvision Resize([32, 32], LANCZOS)
on the RGB-converted images; greyscale ones kept, converted).

``TIN_val`` is the same resize recipe applied to the 10,000 Tiny-ImageNet
*validation* images (``val_0 .. val_9999``): an OOD set for choosing T and eps
that no test set shares an image with (tune.py's transfer mode).

The grey sets of the Fashion-MNIST benchmark (``CIFAR10_grey``, ``TIN_grey``,
``TIN_val_grey``) are the CIFAR-10 test images and the Tiny-ImageNet test and validation
images made grey 28x28: PIL ``convert("L")`` (ITU-R 601 luma), then a bilinear resize (the
Outlier Exposure code makes its 28x28 outliers the other way round, resize then grey with
weights 0.2989, 0.587, 0.114); saved as one ``images.npz``
(uint8 [N, 28, 28]) in index order.
"""
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from oodbench.assets.catalog import REBUILT, STAMP, rebuilt_path, require
from oodbench.core.paths import shown

SEED = 0
SIZE = 32
GREY_SIZE = 28
GREY = ("CIFAR10_grey", "TIN_grey", "TIN_val_grey")
RECIPES = tuple(REBUILT)


def tin_images(item):
    """Paths of the 10,000 images of an installed Tiny-ImageNet split, in index order."""
    split = item.rsplit("-", 1)[1]   # 'tinyimagenet-test' -> 'test'
    folder = require(item) / split / "images"
    return [folder / f"{split}_{i}.JPEG" for i in range(10000)]


def crop_corners(count, seed=SEED, full=64):
    return np.random.default_rng(seed).integers(0, full - SIZE + 1, size=(count, 2))


def transform(image, recipe, corner):
    if recipe == "TIN_crop":
        top, left = (int(v) for v in corner)
        return image.crop((left, top, left + SIZE, top + SIZE))
    if recipe == "TIN_lanczos":
        return image.resize((SIZE, SIZE), Image.LANCZOS)
    return image.resize((SIZE, SIZE), Image.BOX)


def to_grey28(image):
    return np.asarray(image.convert("L").resize((GREY_SIZE, GREY_SIZE), Image.BILINEAR))


def grey_images(recipe):
    """The uint8 [N, 28, 28] images of a grey recipe."""
    if recipe == "CIFAR10_grey":
        with np.load(require("cifar10")) as npz:
            images = (Image.fromarray(a) for a in npz["images"])
            return np.stack([to_grey28(image) for image in images])
    out = []
    for path in tqdm(tin_images(REBUILT[recipe]), desc=recipe, unit="img", leave=False):
        with Image.open(path) as image:
            out.append(to_grey28(image))
    return np.stack(out)


def _build_folder(recipe, dest, write, what):
    """Build ``dest`` atomically: ``write(staging folder)``, stamp, then move into place."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{recipe}-"))
    try:
        write(staging)
        (staging / STAMP).write_text(f"{recipe}: rebuilt from {REBUILT[recipe]}, seed {SEED}\n")
        if dest.exists():
            shutil.rmtree(dest)
        staging.replace(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"  {recipe}: built {shown(dest)} ({what})")
    return dest


def _write_tin(recipe, staging):
    sources = tin_images(REBUILT[recipe])
    out = staging / "test"
    out.mkdir()
    for i, (path, corner) in enumerate(tqdm(list(zip(sources, crop_corners(len(sources)))),
                                            desc=recipe, unit="img", leave=False)):
        with Image.open(path) as image:
            transform(image.convert("RGB"), recipe, corner).save(out / f"{i:05d}.png")


def build(recipe):
    """Write ``data/<recipe>`` atomically; a no-op when it is already complete.
    Unavailable when its source (Tiny-ImageNet split, CIFAR-10) is not installed."""
    dest = rebuilt_path(recipe)
    if (dest / STAMP).is_file():
        return dest
    if recipe in GREY:
        return _build_folder(recipe, dest, lambda out: np.savez_compressed(
            out / "images.npz", images=grey_images(recipe)), "10000 grey 28x28 images")
    return _build_folder(recipe, dest, lambda out: _write_tin(recipe, out), "10000 images")
