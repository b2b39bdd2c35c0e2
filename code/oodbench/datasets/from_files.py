"""Image sets from the user's files (layer 2: datasets): ``folder:PATH`` and ``npz:PATH``.

- ``folder:PATH``: an ImageFolder tree (one sub-folder per class; labels from the sorted
  class folders, or from ``classes.txt`` in PATH, one class folder name per line, in label
  order), or a flat folder of images, unlabelled (label -1). Files are read in sorted order.
- ``npz:PATH``: an ``images`` array, uint8 [N, H, W, C] with C 1 or 3 (or [N, H, W] grey),
  and optionally ``labels`` [N].

The size policy: an image whose height and width are the model's input size is taken as it
is, pixel for pixel; any other is resized so that its shorter side is that size (PIL's
bilinear filter, torchvision's ``Resize``) and centre-cropped to a square
(``CenterCrop``). Grey images are made RGB by repeating the channel, as everywhere here.
A set of mixed sizes says so once. Items are ``(uint8 3xSxS tensor, label)``, as the
built-in sets'.

A set's content digest (``digest``) hashes the files' bytes, the labels and the size
policy; it keys every cache, and its first 8 hex digits name the set in run folders.
"""
import hashlib
from functools import cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS
from torchvision.transforms import CenterCrop, PILToTensor, Resize

from oodbench.core.digests import array_digest
from oodbench.core.paths import UserError

PREFIXES = ("folder:", "npz:")
POLICY = "shorter side to S, bilinear (PIL), centre crop SxS; exact size kept as is; v1"


def is_file_set(name):
    return isinstance(name, str) and name.startswith(PREFIXES)


def source_path(name):
    """The path of a ``folder:PATH`` or ``npz:PATH`` set."""
    path = Path(name.split(":", 1)[1]).expanduser()
    if not str(path) or str(path) == ".":
        raise UserError(f"{name}: give a path after the colon")
    return path


def fit_to(image, size):
    """``image`` (PIL, RGB) at ``size`` x ``size`` by the size policy (module docstring)."""
    if image.size == (size, size):
        return image
    return CenterCrop(size)(Resize(size)(image))


def _is_image(path):
    return path.is_file() and path.suffix.lower() in IMG_EXTENSIONS


def _tree(root):
    """(files, labels) of an ImageFolder tree or a flat folder (module docstring)."""
    classes_file = root / "classes.txt"
    folders = sorted(p.name for p in root.iterdir() if p.is_dir())
    if classes_file.is_file():
        classes = [line.strip() for line in classes_file.read_text().splitlines()
                   if line.strip()]
        unknown = [c for c in classes if not (root / c).is_dir()]
        if unknown:
            raise UserError(f"{classes_file}: no folder {', '.join(unknown[:3])} in {root}")
    elif any(_is_image(p) for c in folders for p in (root / c).rglob("*")):
        classes = [c for c in folders if not c.startswith(".")]
    else:
        classes = []
    if classes:
        files, labels = [], []
        for label, name in enumerate(classes):
            found = sorted(p for p in (root / name).rglob("*") if _is_image(p))
            if not found:       # torchvision's ImageFolder refuses it too: labels would shift
                raise UserError(f"{root / name}: a class folder with no images (its class "
                                f"would be label {label}); remove it or add its images")
            files += found
            labels += [label] * len(found)
        return files, np.asarray(labels, dtype=np.int64)
    files = sorted(p for p in root.iterdir() if _is_image(p))
    return files, np.full(len(files), -1, dtype=np.int64)


def _sizes(files):
    """Each file's (width, height), read from its header; a UserError naming one that is not
    an image."""
    sizes = []
    for path in files:
        try:
            with Image.open(path) as image:
                sizes.append(image.size)
        except (UnidentifiedImageError, OSError) as e:
            raise UserError(f"{path}: unreadable image ({e})") from None
    return sizes


def _mixed_note(name, sizes, size):
    """A one-line note when a set's images are not all ``size`` x ``size``."""
    distinct = sorted(set(sizes))
    if distinct == [(size, size)]:
        return None
    shown = ", ".join(f"{w}x{h}" for w, h in distinct[:4]) + (", ..." if len(distinct) > 4
                                                              else "")
    return (f"Note: {name}: images of {len(distinct)} size(s) ({shown}) are resized to "
            f"{size}x{size} (shorter side, then centre crop)")


class FolderImages(Dataset):
    """A ``folder:`` set, read lazily, file by file."""

    def __init__(self, name, files, labels, size):
        self.name, self.files, self.labels, self.size = name, files, labels, size
        self._digests = {}      # read once per range: the files do not change during a run

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        try:
            with Image.open(self.files[i]) as image:
                image = image.convert("RGB")
        except OSError as e:
            raise UserError(f"{self.files[i]}: unreadable image ({e})") from None
        return PILToTensor()(fit_to(image, self.size)), int(self.labels[i])

    def digest(self, indices):
        key = (indices.start, indices.stop, indices.step)
        if key not in self._digests:
            self._digests[key] = self._digest(indices)
        return self._digests[key]

    def _digest(self, indices):
        h = hashlib.sha256(f"{POLICY} {self.size}".encode())
        for i in indices:
            h.update(hashlib.sha256(self.files[i].read_bytes()).digest())
            h.update(str(int(self.labels[i])).encode())
        return h.hexdigest()


class ArrayFileImages(Dataset):
    """An ``npz:`` set, held in memory at the model's input size."""

    def __init__(self, name, images, labels):
        self.name, self.images, self.labels = name, images, labels

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], int(self.labels[i])

    def digest(self, indices):
        part = slice(indices.start, indices.stop, indices.step)
        return array_digest(self.images[part].numpy(), self.labels[part])


def _folder_set(name, size):
    root = source_path(name)
    if not root.is_dir():
        raise UserError(f"{name}: {root} is not a folder")
    files, labels = _tree(root)
    if not files:
        raise UserError(f"{name}: no images in {root} (looked for {', '.join(IMG_EXTENSIONS)} "
                        "files, in class sub-folders or directly in it)")
    note = _mixed_note(name, _sizes(files), size)
    if note:
        print(note)
    return FolderImages(name, files, labels, size)


def _npz_set(name, size):
    path = source_path(name)
    try:
        with np.load(path) as npz:
            images = npz["images"]
            labels = npz["labels"] if "labels" in npz.files else None
    except Exception as e:  # a missing file, a truncated zip, no 'images': one message
        raise UserError(f"{name}: unreadable ({type(e).__name__}: {e}); an npz with 'images' "
                        "uint8 [N, H, W, C] and optional 'labels' [N] is expected") from None
    if images.ndim == 3:
        images = images[..., None]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] not in (1, 3) \
            or not len(images):
        raise UserError(f"{name}: 'images' is {images.dtype} {images.shape}; uint8 [N, H, W, C] "
                        "with C 1 or 3 and N >= 1 is expected")
    if labels is None:
        labels = np.full(len(images), -1, dtype=np.int64)
    labels = np.asarray(labels)
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
        raise UserError(f"{name}: 'labels' is {labels.dtype} {labels.shape}; integers [N] with "
                        f"N = {len(images)} are expected")
    if images.shape[3] == 1:
        images = np.repeat(images, 3, axis=3)
    if images.shape[1:3] != (size, size):
        print(_mixed_note(name, [images.shape[2:0:-1]], size))
        images = np.stack([np.asarray(fit_to(Image.fromarray(image), size))
                           for image in images])
    tensor = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()
    return ArrayFileImages(name, tensor, labels.astype(np.int64))


@cache
def file_set(name, size):
    """The ``folder:`` or ``npz:`` set ``name`` at ``size`` x ``size`` (read once per
    process); a UserError, before any work, for a missing path, no image, an unreadable file
    or a malformed array."""
    if name.startswith("folder:"):
        return _folder_set(name, size)
    if name.startswith("npz:"):
        return _npz_set(name, size)
    raise UserError(f"{name}: a set from files is folder:PATH or npz:PATH")


def has_labels(dataset):
    """Whether every image of a set from files has a class label."""
    return bool(len(dataset.labels)) and bool((np.asarray(dataset.labels) >= 0).all())


@cache
def tag(name, size):
    """A set from files as run folders name it: the path's last part and 8 hex digits of
    its content digest."""
    dataset = file_set(name, size)
    stem = source_path(name).name.replace(".npz", "") or "set"
    return f"{stem}-{dataset.digest(range(len(dataset)))[:8]}"
