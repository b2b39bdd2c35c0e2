"""The in-distribution and out-of-distribution image sets, as torch Datasets (layer 2).

Datasets read installed files only (the asset catalogue says where they are); a set that
is not installed or not built is a clear error, never built or downloaded here.

Every dataset yields ``(image, label)`` with ``image`` a 3x32x32 tensor in
[0, 1] pixel units: uint8 for stored images (divided by 255 on the device, the
same arithmetic as torchvision's ToTensor), float32 for synthetic noise.
Normalisation is the model's business (scoring/odin_scoring.py), not the dataset's.
"""
import gzip
import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.datasets import CIFAR10, CIFAR100, ImageFolder
from torchvision.transforms import PILToTensor

from oodbench.assets.catalog import require, require_rebuilt
from oodbench.core.digests import array_digest
from oodbench.core.paths import UserError, data_dir
from oodbench.datasets import from_files
from oodbench.datasets.from_files import is_file_set

IMAGE_SIZE = 32
NOISE_COUNT = 10000


class ArrayImages(Dataset):
    """Images held in memory as a uint8 NCHW tensor."""

    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], int(self.labels[i])


class NoiseImages(Dataset):
    """The release's synthetic OOD sets, seeded per image so any batching repeats.

    Gaussian: ``clip(N(0.5, 1), 0, 1)``; Uniform: ``U[0, 1)``; PureColour (LA-OOD's): one
    colour per image, each channel floor(255 U[0, 1)) / 255; image ``i`` is drawn
    from ``numpy.random.default_rng([seed, i])``.
    """

    def __init__(self, kind, seed, count=NOISE_COUNT, shape=(3, IMAGE_SIZE, IMAGE_SIZE)):
        self.kind, self.seed, self.count, self.shape = kind, seed, count, shape

    def __len__(self):
        return self.count

    def __getitem__(self, i):
        rng = np.random.default_rng([self.seed, i])
        if self.kind == "Gaussian":
            image = np.clip(rng.standard_normal(self.shape, dtype=np.float32) + 0.5, 0, 1)
        elif self.kind == "PureColour":   # LA-OOD's: uint8(U[0, 1) * 255) per channel
            colour = np.floor(rng.random(self.shape[0]) * 255).astype(np.float32) / 255
            image = np.broadcast_to(colour[:, None, None], self.shape).copy()
        else:
            image = rng.random(self.shape, dtype=np.float32)
        return torch.from_numpy(image), -1


def _load_rgb(path):
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except OSError as e:
        raise UserError(f"{path}: unreadable image ({e})") from None


def image_folder(root):
    """An ImageFolder of 32x32 images (release order: sorted class folders, sorted files)."""
    try:
        dataset = ImageFolder(str(root), transform=PILToTensor(), loader=_load_rgb)
    except (FileNotFoundError, OSError) as e:
        raise UserError(f"{root}: no images found ({e})") from None
    first = dataset[0][0]
    if tuple(first.shape) != (3, IMAGE_SIZE, IMAGE_SIZE):
        raise UserError(f"{dataset.samples[0][0]}: image is {tuple(first.shape[1:])}, expected "
                        f"{IMAGE_SIZE}x{IMAGE_SIZE} (OOD images are read as they are, not resized)")
    return dataset


def read_idx_images(path):
    """An idx3 (MNIST-format) gz file as a uint8 array [N, rows, cols]."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, count, rows, cols = np.frombuffer(data[:16], dtype=">u4")
    if magic != 2051 or len(data) != 16 + count * rows * cols:
        raise UserError(f"{path}: not an idx3 image file of the expected length")
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(count, rows, cols)


def grey28_to_rgb32(images):
    """28x28 grey -> 32x32 RGB: 2 black pixels of padding each side, channel replicated."""
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2)))
    return torch.from_numpy(np.repeat(padded[:, None], 3, axis=1))


def _in_memory(dataset):
    """(images, labels) arrays of an in-memory dataset, else None."""
    if isinstance(dataset, ArrayImages):
        return dataset.images.numpy(), np.asarray(dataset.labels)
    if isinstance(dataset, (CIFAR10, CIFAR100)):
        return dataset.data, np.asarray(dataset.targets)
    return None


class Resized(Dataset):
    """A built-in set at another input size than its 32x32, by from_files' size policy."""

    def __init__(self, dataset, size):
        self.dataset, self.size = dataset, size

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        image, label = self.dataset[i]
        if image.dtype != torch.uint8:     # noise: float in [0, 1]
            image = (image * 255).round().to(torch.uint8)
        picture = Image.fromarray(image.permute(1, 2, 0).numpy())
        return PILToTensor()(from_files.fit_to(picture, self.size)), label

    def digest(self, indices):
        return hashlib.sha256(f"{from_files.POLICY} {self.size} "
                              f"{content_digest(self.dataset, indices)}".encode()).hexdigest()


def sized(dataset, size):
    """``dataset`` at ``size`` x ``size`` (itself at 32)."""
    return dataset if size == IMAGE_SIZE else Resized(dataset, size)


def content_digest(dataset, indices=None):
    """sha256 of what ``dataset`` holds at ``indices`` (a range; default all): the part of a
    cache key that changes when a set is rebuilt, re-seeded or replaced. In-memory sets
    hash their arrays; sets from files and resized sets say their own (``digest``); the
    others hash every image and label they yield."""
    indices = range(len(dataset)) if indices is None else indices
    if hasattr(dataset, "digest"):
        return dataset.digest(indices)
    arrays = _in_memory(dataset)
    if arrays is not None:
        part = slice(indices.start, indices.stop, indices.step)
        return array_digest(*(array[part] for array in arrays))
    h = hashlib.sha256()
    for i in indices:
        image, label = dataset[i]
        h.update(array_digest(np.asarray(image), np.asarray(label)).encode())
    return h.hexdigest()


def read_npz_images(path):
    """(images NCHW uint8 tensor, labels) of a CIFAR npz; a clear error if it is damaged."""
    try:
        with np.load(path) as npz:
            images, labels = npz["images"], npz["labels"]
    except Exception as e:  # a truncated zip, a missing array, ...: all one message
        raise UserError(f"{path}: unreadable ({type(e).__name__}: {e}); delete it and run "
                        "bash scripts/get_data.sh to install it again") from None
    if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3) or len(images) != len(labels):
        raise UserError(f"{path}: images of shape {images.shape}, labels {labels.shape}; "
                        "expected [N, 32, 32, 3] and [N]")
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), labels


def cifar(in_dataset, train=False):
    """The CIFAR-10 or CIFAR-100 test set (``train``: training set) in its original order."""
    if in_dataset not in ("CIFAR-10", "CIFAR-100"):
        raise UserError(f"unknown in-distribution set {in_dataset!r}: CIFAR-10, CIFAR-100, "
                        "folder:PATH or npz:PATH")
    if in_dataset == "CIFAR-10":
        path = require("cifar10-train" if train else "cifar10")
        if path.suffix == ".npz":
            return ArrayImages(*read_npz_images(path))
        return CIFAR10(str(data_dir()), train=train, transform=PILToTensor())
    require("cifar100")
    return CIFAR100(str(data_dir()), train=train, transform=PILToTensor())


@dataclass(frozen=True)
class OODSet:
    name: str        # the --out_dataset value
    label: str       # as the metric block prints it
    kind: str        # 'release', 'rebuilt', 'noise', 'idx'
    origin: str
    tuning_only: bool = False   # a validation OOD set: never a row of a results table
    in_tables: bool = True      # a column of the ODIN and comparison tables (table.py)


OOD_SETS = {s.name: s for s in [
    OODSet("Imagenet", "Tiny-ImageNet (crop)", "release", "ODIN release"),
    OODSet("Imagenet_resize", "Tiny-ImageNet (resize)", "release", "ODIN release"),
    OODSet("LSUN", "LSUN (crop)", "release", "ODIN release"),
    OODSet("LSUN_resize", "LSUN (resize)", "release", "ODIN release"),
    OODSet("iSUN", "iSUN", "release", "ODIN release"),
    OODSet("Uniform", "Uniform Noise", "noise", "synthetic, seeded"),
    OODSet("Gaussian", "Gaussian noise", "noise", "synthetic, seeded"),
    OODSet("TIN_crop", "Tiny-ImageNet (crop, rebuilt)", "rebuilt",
           "rebuilt from the Tiny-ImageNet test split (assets/rebuild.py)"),
    OODSet("TIN_resize", "Tiny-ImageNet (resize, rebuilt)", "rebuilt",
           "rebuilt from the Tiny-ImageNet test split (assets/rebuild.py)"),
    OODSet("TIN_val", "Tiny-ImageNet val (resize)", "rebuilt",
           "Tiny-ImageNet validation split resized (assets/rebuild.py); for tuning only",
           tuning_only=True),
    # LA-OOD's own sets (reproduce_laood.sh), not columns of the ODIN tables
    OODSet("TIN_lanczos", "Tiny-ImageNet (Lanczos resize, rebuilt)", "rebuilt",
           "the Tiny-ImageNet test split resized as LA-OOD's code (assets/rebuild.py)",
           in_tables=False),
    OODSet("PureColour", "Pure colour", "noise", "synthetic, seeded: one RGB colour per image, "
           "as LA-OOD's", in_tables=False),
    OODSet("MNIST", "MNIST", "idx", "MNIST test set"),
    OODSet("FashionMNIST", "Fashion-MNIST", "idx", "Fashion-MNIST test set"),
]}


def get_ood_set(name):
    if is_file_set(name):
        path = from_files.source_path(name)
        return OODSet(name, f"{path.name} ({name.split(':')[0]})", "files", str(path))
    if name not in OOD_SETS:
        raise UserError(f"unknown OOD dataset {name!r}; choose from {', '.join(OOD_SETS)}, or "
                        "give your own as folder:PATH or npz:PATH")
    return OOD_SETS[name]


def set_tag(name, size=IMAGE_SIZE):
    """A set's name in run folder names: its name; a set from files, from_files.tag."""
    return from_files.tag(name, size) if is_file_set(name) else name


def test_set(in_dataset, size=IMAGE_SIZE):
    """A model's in-distribution test set (CIFAR-10, CIFAR-100 or a set from files) at its
    input size."""
    if is_file_set(in_dataset):
        return from_files.file_set(in_dataset, size)
    return sized(cifar(in_dataset), size)


def train_set(in_dataset, train_dataset, size=IMAGE_SIZE):
    """The set the fitted detectors fit on: ``train_dataset`` (a set from files) when given,
    else the CIFAR training set of ``in_dataset``; a UserError naming --train-dataset when
    the test set is the user's and no training set is given."""
    if train_dataset:
        return from_files.file_set(train_dataset, size)
    if is_file_set(in_dataset):
        raise UserError(f"no training set for a model tested on {in_dataset}: give the set "
                        "the fitted detectors fit on with --train-dataset folder:PATH or "
                        "npz:PATH")
    return sized(cifar(in_dataset, train=True), size)


def ood_dataset(name, seed=0, size=IMAGE_SIZE):
    """The named OOD set as a Dataset at ``size`` x ``size``, in the order the release reads
    it."""
    spec = get_ood_set(name)
    if spec.kind == "files":
        return from_files.file_set(name, size)
    if spec.kind == "noise":
        return NoiseImages(name, seed, shape=(3, size, size))
    return sized(_built_in(name, spec), size)


def _built_in(name, spec):
    if spec.kind == "release":
        return image_folder(require(name))
    if spec.kind == "rebuilt":
        return image_folder(require_rebuilt(name))
    family = "mnist" if name == "MNIST" else "fashion-mnist"
    images = read_idx_images(require(f"{family}-images"))
    return ArrayImages(grey28_to_rgb32(images), np.full(len(images), -1))
