"""The 28x28 grey image sets of the FSSD benchmark (layer 2): Fashion-MNIST (in-distribution,
training and test), and the OOD sets a Fashion-MNIST model can meet here.

Every set is a uint8 tensor [N, 1, 28, 28] (noise: float32 in [0, 1]) with labels, read
from installed files only. The colour sets were made grey 28x28 at setup (assets/rebuild.py).
"""
import functools
import gzip

import numpy as np
import torch

from oodbench.assets.catalog import require, require_rebuilt
from oodbench.core.paths import UserError
from oodbench.datasets.image_sets import NoiseImages, read_idx_images

SIZE = 28
NOISE_COUNT = 10000
# name -> what it is; the OOD test sets of the benchmark (MNIST first: FSSD's own).
OOD_SETS = {
    "MNIST": "MNIST test set (FSSD's OOD set)",
    "Uniform": "uniform noise U[0, 1), 10,000 images, seeded",
    "Gaussian": "Gaussian noise clip(N(0.5, 1), 0, 1), 10,000 images, seeded",
    "CIFAR10_grey": "CIFAR-10 test set, grey, resized to 28x28",
    "TIN_grey": "Tiny-ImageNet test split, grey, resized to 28x28",
}
OUTLIER_SET = "TIN_val_grey"   # Outlier Exposure's training outliers (train.py --oe)


def read_idx_labels(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, count = np.frombuffer(data[:8], dtype=">u4")
    if magic != 2049 or len(data) != 8 + count:
        raise UserError(f"{path}: not an idx1 label file of the expected length")
    return np.frombuffer(data, dtype=np.uint8, offset=8).astype(np.int64)


def _idx_set(family, train=False):
    suffix = "-train" if train else ""
    images = read_idx_images(require(f"{family}-images{suffix}"))
    labels = read_idx_labels(require(f"{family}-labels{suffix}"))
    if len(images) != len(labels):
        raise UserError(f"{family}: {len(images)} images but {len(labels)} labels")
    return torch.from_numpy(images.copy())[:, None], labels


def fashion_mnist(train=False):
    """(images, labels) of the Fashion-MNIST test set (``train``: training set)."""
    return _idx_set("fashion-mnist", train)


def noise(kind, seed, count=NOISE_COUNT):
    """Seeded 1x28x28 noise images, drawn as datasets.NoiseImages draws them."""
    images = NoiseImages(kind, seed, count, shape=(1, SIZE, SIZE))
    return torch.stack([images[i][0] for i in range(count)]), np.full(count, -1)


def rebuilt_grey(name):
    with np.load(require_rebuilt(name) / "images.npz") as npz:
        images = npz["images"]
    return torch.from_numpy(images)[:, None], np.full(len(images), -1)


def ood_set(name, seed=0):
    """(images, labels) of the named OOD set (or the outlier set); labels are -1 unless MNIST."""
    if name == "MNIST":
        return _idx_set("mnist")
    if name in ("Uniform", "Gaussian"):
        return noise(name, seed)
    if name in ("CIFAR10_grey", "TIN_grey", OUTLIER_SET):
        return rebuilt_grey(name)
    raise UserError(f"unknown OOD set {name!r} for the Fashion-MNIST benchmark; choose from "
                    f"{', '.join(OOD_SETS)}")


@functools.lru_cache(maxsize=2)
def outlier_images(name=OUTLIER_SET):
    """The images of set ``name`` that no test set of the benchmark holds: Outlier Exposure's
    training outliers, and the stand-in OOD images of the validation without OOD data.
    A test set itself is refused: neither may ever see a test image."""
    if name in OOD_SETS:
        raise UserError(f"{name} is a test set of the benchmark: outliers must never include a "
                        f"test image (use {OUTLIER_SET})")
    outliers, _ = ood_set(name)
    stored = [test for test in OOD_SETS if test not in ("Uniform", "Gaussian")]
    tests = [fashion_mnist()[0]] + [ood_set(test)[0] for test in stored]
    seen = {image.numpy().tobytes() for images in tests for image in images}
    kept = torch.tensor([image.numpy().tobytes() not in seen for image in outliers])
    if not kept.all():
        print(f"{name}: left out {int((~kept).sum())} image(s) that a test set holds too "
              f"(indices {torch.nonzero(~kept).flatten().tolist()[:10]})")
    return outliers[kept]
